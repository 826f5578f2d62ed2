/*
 * The switchyard console: one page over the admin API. Everything that came
 * from outside (event fields, errors, bodies) is put in the page as text
 * nodes, never as HTML; the server's Content-Security-Policy allows only
 * this file as script.
 */
"use strict";

const state = { csrf: null, tokenRequired: false };

/* el("td", {class: "x"}, "text", child): children are nodes or text, never HTML */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick" || k === "onsubmit" || k === "onchange") {
      e.addEventListener(k.slice(2), v);
    } else if (v !== undefined && v !== null && v !== false) {
      e.setAttribute(k, v === true ? "" : String(v));
    }
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
  return e;
}

function toast(text) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.style.display = "block";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.style.display = "none"; }, 5000);
}

async function api(path, opts) {
  const o = Object.assign({ method: "GET", headers: {} }, opts || {});
  o.credentials = "same-origin";
  if (o.method !== "GET") {
    o.headers["content-type"] = "application/json";
    if (state.csrf) o.headers["x-csrf-token"] = state.csrf;
  }
  const r = await fetch(path, o);
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (r.status === 401) { showLogin(); throw new Error("login needed"); }
  if (!r.ok) {
    const msg = body && (body.detail || body.error) ? (body.detail || body.error) : ("HTTP " + r.status);
    throw new Error(msg);
  }
  return body;
}

function when(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function states(counts) {
  return Object.entries(counts || {}).map(([s, n]) => el("span", { class: "state " + s }, s + " " + n));
}

function setPage(name) {
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("on", a.dataset.page === name);
  }
}

function main(...nodes) {
  const m = document.getElementById("main");
  m.replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined));
}

/* ---- login ---- */

function showLogin() {
  setPage("");
  const input = el("input", { type: "password", id: "token", autocomplete: "current-password" });
  const err = el("div", { class: "error", id: "login-error" });
  main(el("form", {
    class: "login", id: "login", onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const r = await fetch("/console/login", {
          method: "POST", credentials: "same-origin",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ token: input.value }),
        });
        const b = await r.json();
        if (!r.ok) throw new Error(b.detail || "refused");
        state.csrf = b.csrf;
        route();
      } catch (e) {
        err.textContent = e.message;
      }
    },
  }, el("h1", {}, "switchyard console"),
     el("label", { for: "token" }, "Admin token"), input,
     el("button", { class: "primary", type: "submit" }, "Log in"), err));
}

/* ---- overview ---- */

function spark(values) {
  const w = 200, h = 36, max = Math.max(1, ...values);
  const pts = values.map((v, i) => [values.length > 1 ? i * w / (values.length - 1) : 0, h - v / max * (h - 2) - 1]);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 " + w + " " + h);
  svg.setAttribute("preserveAspectRatio", "none");
  const p = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  p.setAttribute("points", pts.map((x) => x.join(",")).join(" "));
  p.setAttribute("fill", "none");
  p.setAttribute("stroke", "#2d5bd7");
  p.setAttribute("stroke-width", "1.5");
  svg.appendChild(p);
  return svg;
}

async function overview() {
  setPage("overview");
  const o = await api("/admin/overview");
  const cards = o.series.map((s) => el("a", { class: "card", href: s.link || "#/overview", "data-series": s.name },
    el("div", { class: "l" }, s.label),
    el("div", { class: "n" }, s.now + (s.unit ? " " + s.unit : "")),
    spark(s.values)));
  main(el("h1", {}, "Overview"),
       el("p", { class: "muted" }, "The last hour, one sample every " + o.every_s + " s (the server keeps them; no Prometheus needed)."),
       el("div", { class: "cards" }, cards));
}

/* ---- events ---- */

const STATES = ["", "pending", "retrying", "dead", "done", "skipped", "routed", "unrouted", "quarantined"];

function filterForm(q, onGo, fixedState) {
  const text = (name, placeholder, size) => el("input", { name: name, placeholder: placeholder, size: size, value: q.get(name) || "" });
  const f = el("form", { class: "filters", id: "filters", onsubmit: (ev) => { ev.preventDefault(); onGo(new FormData(f)); } },
    fixedState ? null : el("select", { name: "state" }, STATES
      .map((s) => el("option", { value: s, selected: (q.get("state") || "") === s }, s || "any state"))),
    text("type", "type pattern (scm.*)", 18),
    text("integration", "integration", 10),
    text("category", "category", 9),
    text("since", "since (2h, 2026-12-01)", 16),
    text("until", "until", 10),
    text("q", "event id or text", 20),
    el("button", { type: "submit" }, "Filter"));
  return f;
}

async function events(params, title) {
  const quarantine = title === "Quarantine";
  const q = new URLSearchParams(params);
  const base = quarantine ? "#/quarantine?" : "#/events?";
  setPage(quarantine ? "quarantine" : "events");
  if (q.get("status") && !q.get("state")) { q.set("state", q.get("status")); q.delete("status"); }
  if (quarantine) q.set("state", "quarantined");
  if (!q.get("limit")) q.set("limit", "50");
  const r = await api("/admin/events?" + q.toString());
  const rows = r.events.map((e) => el("tr", { class: "link", "data-id": e.id, onclick: () => { location.hash = "#/event/" + encodeURIComponent(e.id); } },
    el("td", {}, el("code", {}, e.id)),
    el("td", {}, e.type || ""),
    el("td", {}, e.integration || ""),
    el("td", {}, when(e.received_at)),
    el("td", {}, el("span", { class: "state " + e.state }, e.state), " ", states(e.jobs)),
    el("td", {}, e.reason || ""),
    quarantine ? el("td", {}, el("button", { class: "replay-q", onclick: (ev) => { ev.stopPropagation(); replayEvent(e.id); } }, "Replay")) : null));
  const go = (fd) => {
    const p = new URLSearchParams();
    for (const [k, v] of fd.entries()) if (v) p.set(k, v);
    location.hash = base + p.toString();
  };
  const pager = el("div", { class: "pager" });
  if (q.get("cursor")) {
    const p = new URLSearchParams(q);
    p.delete("cursor");
    pager.appendChild(el("a", { href: base + p.toString(), id: "newest" }, "← Newest"));
  }
  if (r.next) {
    const p = new URLSearchParams(q);
    p.set("cursor", r.next);
    pager.appendChild(el("a", { href: base + p.toString(), id: "older" },
      r.events.length ? "Older →" : "Search older events →"));
  }
  const extra = [];
  if (!quarantine) {
    /* a replay selects by time and type only: with other filters it would take more than is listed */
    const other = ["state", "integration", "category", "q"].filter((k) => q.get(k) && !(k === "state" && q.get(k) === "dead"));
    extra.push(el("div", { class: "actions" },
      el("button", { class: "danger", id: "replay-filter", disabled: other.length > 0, onclick: () => replayByFilter(q) }, "Replay the dead jobs of these events…"),
      other.length ? el("span", { class: "muted" }, "A replay by filter takes the type and the time range; clear " + other.join(", ") + " to use it.") : null));
  }
  let empty = null;
  if (r.events.length === 0) {
    empty = el("p", { class: "muted", id: "no-match" }, r.next
      ? "No match in this stretch of the store (a page reads a bounded number of events, so it stays fast on any size of store)."
      : "No events match.");
  }
  main(el("h1", {}, title), filterForm(q, go, quarantine), ...extra,
       el("table", { id: "events" }, el("tr", {}, ["id", "type", "integration", "received", "state and jobs", "reason", quarantine ? "" : null]
         .filter((h) => h !== null).map((h) => el("th", {}, h))), rows),
       empty, pager);
}

async function replayByFilter(q) {
  const body = { dry_run: true, state: "dead" };
  for (const k of ["since", "until", "type"]) if (q.get(k)) body[k] = q.get(k);
  if (!body.since) body.since = "3650d";
  try {
    const dry = await api("/admin/replay", { method: "POST", body: JSON.stringify(body) });
    const n = (dry.jobs || []).length;
    if (!confirm("This runs " + n + " dead job(s) again over " + dry.events + " event(s). Go on?")) return;
    body.dry_run = false;
    const r = await api("/admin/replay", { method: "POST", body: JSON.stringify(body) });
    toast("Queued again: " + r.again + ", new: " + r.new);
  } catch (e) { toast(e.message); }
}

/* ---- one event ---- */

function callRow(c) {
  return el("tr", {},
    el("td", {}, String(c.attempt) + "." + String(c.n)),
    el("td", {}, c.method + " " + c.path),
    el("td", {}, String(c.status)),
    el("td", {}, el("code", {}, c.key || "")),
    el("td", {}, c.replayed ? "replayed from the journal" : (c.dry_run ? "dry run" : "sent")),
    el("td", {}, c.error || ""));
}

async function eventPage(id) {
  setPage("events");
  const e = await api("/admin/events/" + encodeURIComponent(id));
  const head = el("div", { class: "kv" },
    el("span", { class: "muted" }, "id"), el("code", { id: "event-id" }, e.id),
    el("span", { class: "muted" }, "type"), el("span", {}, e.type || ""),
    el("span", { class: "muted" }, "integration"), el("span", {}, e.integration || ""),
    el("span", { class: "muted" }, "category"), el("span", {}, e.category || ""),
    el("span", { class: "muted" }, "received"), el("span", {}, when(e.received_at)),
    el("span", { class: "muted" }, "state"), el("span", { class: "state " + e.state }, e.state),
    e.reason ? el("span", { class: "muted" }, "reason") : null, e.reason ? el("span", { class: "error" }, e.reason) : null);
  const jobs = (e.jobs || []).map((j) => el("section", { class: "job", "data-rule": j.handler },
    el("h2", {}, "Rule " + j.handler + " ", el("span", { class: "state " + j.state }, j.state),
       " ", el("span", { class: "muted" }, j.attempts + " attempt(s)" + (j.key ? ", key " + j.key : ""))),
    j.last_error ? el("pre", { class: "error" }, j.last_error) : null,
    el("div", { class: "actions" },
      el("button", { onclick: () => rerun(e.id, j.handler) }, "Run again through " + j.handler)),
    (j.calls || []).length ? el("table", { class: "calls" },
      el("tr", {}, ["#", "call", "status", "Idempotency-Key", "", "error"].map((h) => el("th", {}, h))),
      j.calls.map(callRow)) : el("p", { class: "muted" }, "No Unizo calls.")));
  const hasDead = (e.jobs || []).some((j) => j.state === "dead") || e.state === "quarantined";
  main(el("h1", {}, "Event"), head,
       el("div", { class: "actions" }, hasDead ? el("button", { class: "primary", id: "replay-dead", onclick: () => replayEvent(e.id) }, "Replay dead jobs") : null),
       jobs,
       e.normalized ? [el("h2", {}, "Normalized"), el("pre", {}, JSON.stringify(e.normalized, null, 2))] : null,
       el("h2", {}, "Headers"), el("pre", {}, JSON.stringify(e.headers, null, 2)),
       el("h2", {}, "Body"), el("pre", { id: "body" }, typeof e.event === "string" ? e.event : JSON.stringify(e.event, null, 2)));
}

async function replayEvent(id) {
  try {
    const r = await api("/admin/events/" + encodeURIComponent(id) + "/replay", { method: "POST", body: "{}" });
    toast("Replayed " + r.replayed + " job(s)");
    setTimeout(() => route(), 1200);
  } catch (e) { toast(e.message); }
}

async function rerun(id, rule) {
  try {
    const r = await api("/admin/replay", { method: "POST", body: JSON.stringify({ ids: [id], rule: rule, state: "finished" }) });
    toast("Queued again: " + r.again + ", new: " + r.new + (r.busy ? ", still running: " + r.busy : ""));
    setTimeout(() => route(), 1200);
  } catch (e) { toast(e.message); }
}

/* ---- rules ---- */

async function rules() {
  setPage("rules");
  const r = await api("/admin/rules");
  const rows = r.rules.map((x) => el("tr", { "data-rule": x.name },
    el("td", {}, x.name), el("td", {}, x.kind),
    el("td", {}, x.file ? x.file + (x.line ? ":" + x.line : "") : ""),
    el("td", {}, (x.on || []).join(", ")),
    el("td", {}, (x.key || []).join(", ")),
    el("td", {}, x.concurrency === null || x.concurrency === undefined ? "" : String(x.concurrency)),
    el("td", {}, String(x.running)),
    el("td", {}, states(x.attempts), failureRate(x.attempts)),
    el("td", { class: "p99" }, x.p99_ms === null || x.p99_ms === undefined ? "" : x.p99_ms + " ms"),
    el("td", { class: "rule-state" }, el("span", { class: "state " + (x.paused ? "paused" : "active") }, x.paused ? "paused" : "active")),
    el("td", {}, el("button", { class: "pause", onclick: () => pause(x.name, !x.paused) }, x.paused ? "Resume" : "Pause"))));
  main(el("h1", {}, "Rules"),
       el("div", { class: "actions" },
         el("button", { id: "reload", onclick: reload }, "Reload the rules"),
         el("button", { id: "replay-all", class: "danger", onclick: replayAllDead }, "Replay all dead jobs…")),
       el("div", { id: "reload-result", class: "error" }),
       el("table", { id: "rules" }, el("tr", {}, ["rule", "kind", "file", "on", "key", "concurrency", "running", "attempts since start", "p99", "state", ""].map((h) => el("th", {}, h))), rows));
}

function failureRate(a) {
  const all = a ? a.done + a.skipped + a.retry + a.dead : 0;
  return all ? el("span", { class: "muted" }, " " + Math.round((a.retry + a.dead) * 100 / all) + "% failed") : null;
}

async function pause(name, on) {
  try {
    await api("/admin/rules/" + encodeURIComponent(name) + (on ? "/pause" : "/resume"), { method: "POST", body: "{}" });
    toast(name + (on ? " paused" : " resumed"));
    rules();
  } catch (e) { toast(e.message); }
}

async function reload() {
  const out = document.getElementById("reload-result");
  try {
    const r = await api("/admin/reload", { method: "POST", body: "{}" });
    out.textContent = "";
    toast("Reloaded: " + r.rules + " rule(s)");
    rules();
  } catch (e) { out.textContent = e.message; }
}

async function replayAllDead() {
  if (!confirm("Run every dead job again?")) return;
  try {
    const r = await api("/admin/replay", { method: "POST", body: JSON.stringify({ since: "3650d", state: "dead" }) });
    toast("Queued again: " + r.again);
  } catch (e) { toast(e.message); }
}

/* ---- routing ---- */

async function route() {
  const h = location.hash || "#/overview";
  const [path, query] = h.slice(1).split("?");
  try {
    if (path.startsWith("/event/")) return await eventPage(decodeURIComponent(path.slice(7)));
    if (path === "/events") return await events(query || "", "Events");
    if (path === "/quarantine") return await events(query || "", "Quarantine");
    if (path === "/rules") return await rules();
    return await overview();
  } catch (e) {
    if (e.message !== "login needed") main(el("p", { class: "error" }, e.message));
  }
}

async function start() {
  /* before the login check: after logging in, the links must route too */
  window.addEventListener("hashchange", route);
  try {
    const r = await fetch("/console/session", { credentials: "same-origin" });
    const s = await r.json();
    state.csrf = s.csrf || null;
    state.tokenRequired = s.token_required;
    document.getElementById("who").textContent = s.token_required ? "" : "no admin token: loopback only";
    if (s.token_required && !s.authenticated) return showLogin();
  } catch (e) { /* the pages say what failed */ }
  route();
}

start();
