-- Replays the pre-signed requests written by gen.py: thread N reads req.N.
-- Set REQ_DIR in the environment. Responses are tallied by status.
-- With ONCE=1 each request is sent once and the thread then stops.
local dir = os.getenv("REQ_DIR")
local once = os.getenv("ONCE") == "1"
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(dir .. "/req." .. tid, "rb"))
  local data = f:read("a")
  f:close()
  reqs = {}
  local pos = 1
  while true do
    local z = data:find("\0", pos, true)
    if not z then break end
    reqs[#reqs + 1] = data:sub(pos, z - 1)
    pos = z + 1
  end
  i = 0
  statuses = {}
end

function request()
  i = i + 1
  if i > #reqs then
    if once then
      wrk.thread:stop()
      return reqs[#reqs]
    end
    i = 1
  end
  return reqs[i]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for k, v in pairs(s) do total[k] = (total[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(total) do parts[#parts + 1] = k .. "=" .. v end
  table.sort(parts)
  io.write(string.format("RESULT duration_s=%.3f requests=%d rps=%.0f p50_ms=%.3f p99_ms=%.3f statuses=%s\n",
    summary.duration / 1e6, summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, table.concat(parts, ",")))
end
