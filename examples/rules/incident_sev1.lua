-- (c) A sev1 incident opens a ticket; its acknowledgement is commented on the
-- ticket and its resolution resolves it. Less severe incidents are skipped.
-- All three share key = the incident's id: an acknowledgement that arrives
-- while the ticket is still being opened (or retried) waits for it.

local function key(ev) return "incident:" .. ev.data.id end

rule {
  name = "sev1-incident-ticket",
  on   = "incidents.incident.created",
  key  = "data.id",
  when = function(ev) return ev.data.severity == "sev1" end,
  run  = function(ev)
    local inc = ev.data
    local t = unizo.ticketing.create_ticket {
      integration = "jira-prod",
      title = ("[SEV1] %s"):format(inc.title),
      description = ("%s\n%s"):format(inc.description or "", inc.url or ""),
      priority = "highest",
      custom_fields = { incident_url = inc.url, service = inc.service and inc.service.name },
    }
    kv.set(key(ev), { ticket = t.id }, "30d")
  end,
}

rule {
  name = "sev1-incident-acknowledged",
  on   = "incidents.incident.acknowledged",
  key  = "data.id",
  when = function(ev) return kv.get(key(ev)) ~= nil end,
  run  = function(ev)
    local who = ev.data.assignees and ev.data.assignees[1] and ev.data.assignees[1].login or "someone"
    unizo.ticketing.add_comment {
      integration = "jira-prod", id = kv.get(key(ev)).ticket,
      content = ("Acknowledged by %s"):format(who),
    }
  end,
}

rule {
  name = "sev1-incident-resolved",
  on   = "incidents.incident.resolved",
  key  = "data.id",
  when = function(ev) return kv.get(key(ev)) ~= nil end,
  run  = function(ev)
    unizo.ticketing.update_ticket { integration = "jira-prod", id = kv.get(key(ev)).ticket, status = "resolved" }
    kv.delete(key(ev))
  end,
}
