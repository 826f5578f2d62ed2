-- The rule-test API: the globals a *_test.lua file sees next to the rule API.
-- Loaded into each test's fresh sandbox by src/testkit/world.c, which passes
-- in its primitives (sy). Everything here is plain sandboxed Lua.
local sy = ...

local tests, befores = {}, {}
local responders = {}
local cassette = nil           -- recorded exchanges answering the fire in progress
local calls_now = nil          -- the calls of the fire in progress
local unmatched = {}           -- outbound calls nothing answered
local frozen = nil

local function where(level)
  local info = sy.caller(level + 1)
  return info or "?"
end

function test(name, fn)
  if type(name) ~= "string" or type(fn) ~= "function" then
    error("test(name, fn): a name and a function", 2)
  end
  tests[#tests + 1] = { name = name, fn = fn, at = where(2) }
end

function before_each(fn) befores[#befores + 1] = fn end

function freeze_time(t)
  if type(t) == "string" then t = sy.parse_time(t) end
  frozen = t
  sy.set_time(t)
end

-- respond(method, path_pattern, { status = 201, body = {...}, headers = {...} })
function respond(method, pattern, response)
  responders[#responders + 1] = { method = method:upper(), pattern = pattern, response = response or {} }
end

-- The fake transport: the runner calls this for every unizo call a rule makes.
function sy.transport(req)
  local call = { method = req.method, path = req.path, query = req.query, headers = req.headers }
  if req.body then
    local ok, decoded = pcall(json.decode, req.body)
    call.body = ok and decoded or req.body
  end
  if calls_now then calls_now[#calls_now + 1] = call end
  for _, x in ipairs(cassette or {}) do   -- recorded answers first, each used once, in order
    if not x.used and x.method == req.method and x.path == req.path then
      x.used = true
      local body = x.response
      if type(body) == "table" then body = json.encode(body) end
      return x.status, body or "{}"
    end
  end
  for i = #responders, 1, -1 do          -- the latest declaration wins
    local r = responders[i]
    if r.method == req.method and req.path:find(r.pattern) then
      local resp = r.response
      if type(resp) == "function" then resp = resp(call) end
      local body = resp.body
      if type(body) == "table" then body = json.encode(body) end
      return resp.status or 200, body or "{}"
    end
  end
  unmatched[#unmatched + 1] = call
  return 0, nil
end

-- A cassette written by `serve --record`: one JSON object per line.
local function load_cassette(path)
  local list = {}
  for line in sy.read_file(path):gmatch("[^\n]+") do list[#list + 1] = json.decode(line) end
  return list
end

-- fixture(path): a fixture as fire() would read it: { headers = {...}, body = "..." }
function fixture(path) return sy.load_fixture(path) end

-- fire(fixture, opts): one delivery through the live pipeline: the server's
-- checks, the store (dedupe, quarantine), the engine's router (rules and
-- plugins) and its job runner. fixture: a path (relative to the test file) or
-- a table; a table with 'headers' and 'body' is a recorded delivery.
-- opts.secret verifies it; opts.cassette (a path) answers the rules' Unizo
-- calls as they were recorded. Jobs that fail are retried by advance().
local function run_jobs(run)
  calls_now = run.calls
  sy.capture_logs(run.logs)
  sy.run_jobs(run.jobs, run.attempts)
  sy.capture_logs(nil)
  calls_now = nil
end

function fire(fixture, opts)
  opts = opts or {}
  local delivery = sy.load_fixture(fixture, 2)
  local run = { calls = {}, jobs = {}, logs = {}, attempts = {} }
  if opts.cassette then
    cassette = load_cassette(opts.cassette)
    run.cassette = cassette
  end
  local d = sy.deliver(delivery, opts.secret, opts.tolerance, opts.category or delivery.category)
  if d.status ~= 200 then
    run.status, run.rejected, run.detail = d.status, d.code, d.detail
    cassette = nil
    return run
  end
  run.status, run.result = 200, d.result
  if d.quarantined then
    run.quarantined, run.rejected, run.detail = d.reason, d.code, d.reason
    run.event = json.decode(d.norm)
    cassette = nil
    return run
  end
  local _, ev = pcall(json.decode, delivery.body)
  ev = type(ev) == "table" and ev or {}
  for k, v in pairs(json.decode(d.norm)) do ev[k] = v end
  ev.integration = ev.integration or {}
  run.event = ev
  run_jobs(run)
  cassette = nil
  return run
end

-- advance(seconds): move the clock on (freezing it) and run the retries that fall due,
-- with any jobs they held back by an ordering key. Returns a run like fire()'s.
function advance(seconds, opts)
  if type(seconds) ~= "number" or seconds < 0 then error("advance(seconds): a number >= 0", 2) end
  opts = opts or {}
  frozen = (frozen or os.time()) + math.floor(seconds)
  sy.set_time(frozen)
  local run = { calls = {}, jobs = {}, logs = {}, attempts = {} }
  if opts.cassette then
    cassette = load_cassette(opts.cassette)
    run.cassette = cassette
  end
  run_jobs(run)
  cassette = nil
  return run
end

-- ---- expectations ----

local function show(v, indent)
  indent = indent or ""
  if v == json.null then return "json.null" end
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  if #keys == 0 then return "{}" end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do
    local key = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or "[" .. show(k) .. "]"
    parts[#parts + 1] = indent .. "  " .. key .. " = " .. show(v[k], indent .. "  ")
  end
  return "{\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "}"
end

-- The first place two values differ, as a path: "body.labels[2]: expected "x", got "y"".
local function diff(a, b, path)
  if type(a) ~= "table" or type(b) ~= "table" then
    if a == b then return nil end
    return (path ~= "" and path or "value") .. ": expected " .. show(a) .. ", got " .. show(b)
  end
  local keys = {}
  for k in pairs(a) do keys[k] = true end
  for k in pairs(b) do keys[k] = true end
  local sorted = {}
  for k in pairs(keys) do sorted[#sorted + 1] = k end
  table.sort(sorted, function(x, y) return tostring(x) < tostring(y) end)
  for _, k in ipairs(sorted) do
    local sub = type(k) == "number" and (path .. "[" .. k .. "]") or (path == "" and k or path .. "." .. k)
    local d = diff(a[k], b[k], sub)
    if d then return d end
  end
  return nil
end

local Failure = {}

local function fail(msg, level)
  error(setmetatable({ message = msg, at = where(level + 1) }, Failure), level + 1)
end

function expect(actual)
  local e = {}
  function e.to_be(expected)
    if actual ~= expected then fail("expected " .. show(expected) .. ", got " .. show(actual), 2) end
  end
  function e.to_equal(expected)
    local d = diff(expected, actual, "")
    if d then fail("values differ at " .. d .. "\nexpected: " .. show(expected) .. "\n     got: " .. show(actual), 2) end
  end
  function e.to_match(pattern)
    if type(actual) ~= "string" or not actual:find(pattern) then
      fail("expected a string matching " .. show(pattern) .. ", got " .. show(actual), 2)
    end
  end
  function e.to_contain(item)
    if type(actual) == "string" then
      if not actual:find(item, 1, true) then fail("expected " .. show(actual) .. " to contain " .. show(item), 2) end
      return
    end
    if type(actual) ~= "table" then fail("expected a table or string, got " .. show(actual), 2) end
    for _, v in pairs(actual) do
      if v == item or (type(v) == "table" and type(item) == "table" and diff(item, v, "") == nil) then return end
    end
    fail("expected " .. show(actual) .. " to contain " .. show(item), 2)
  end
  function e.to_be_nil()
    if actual ~= nil then fail("expected nil, got " .. show(actual), 2) end
  end
  function e.to_fail(pattern)
    if type(actual) ~= "function" then fail("to_fail() needs a function, got " .. show(actual), 2) end
    local ok, err = pcall(actual)
    if ok then fail("expected the function to fail, it returned", 2) end
    local msg = type(err) == "table" and (err.message or show(err)) or tostring(err)
    if pattern and not msg:find(pattern) then
      fail("expected a failure matching " .. show(pattern) .. ", got " .. show(msg), 2)
    end
  end
  return e
end

-- Called by the runner: run test number i; returns ok, message, location.
function sy.run_test(i)
  local t = tests[i]
  for _, fn in ipairs(befores) do
    local ok, err = pcall(fn)
    if not ok then
      return false, "before_each failed: " .. (type(err) == "table" and err.message or tostring(err)), t.at
    end
  end
  local ok, err = xpcall(t.fn, function(e)
    if getmetatable(e) == Failure then return e end
    return { message = tostring(type(e) == "table" and (e.message or show(e)) or e), at = where(2) }
  end)
  if ok and #unmatched > 0 then
    local lines = {}
    for _, c in ipairs(unmatched) do
      lines[#lines + 1] = "  " .. c.method .. " " .. c.path .. (c.body and (" " .. json.encode(c.body)) or "")
    end
    return false, "outbound call(s) with no declared response (use respond(method, pattern, {...})):\n" ..
      table.concat(lines, "\n"), t.at
  end
  if ok then return true end
  return false, err.message, err.at or t.at
end

function sy.count() return #tests end
function sy.name(i) return tests[i].name end
