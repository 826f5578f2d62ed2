-- Sends each pre-signed request in REQ_DIR/req.N exactly once, then stops its thread.
local dir = os.getenv("REQ_DIR")
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
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
end
function request()
  i = i + 1
  if i > #reqs then
    wrk.thread:stop()
    return reqs[#reqs]
  end
  return reqs[i]
end
