rule {
  name = "counter",
  on = { "scm.pull_request.created", "scm.pull_request.merged" },
  when = function(ev) return not ev.data.draft end,
  run = function(ev)
    seen = (seen or 0) + 1
    last_title = ev.data.title
  end,
}

rule {
  name = "gives-up",
  on = "incidents.*",
  run = function(ev)
    error({ permanent = true, message = "no such team: " .. tostring(ev.data.team) })
  end,
}

rule {
  name = "spins",
  on = "*",
  run = function(ev)
    while true do end
  end,
}

rule {
  name = "spins-in-pcall",
  on = "*",
  run = function(ev)
    while true do pcall(function() while true do end end) end
  end,
}

rule {
  name = "eats-memory",
  on = "*",
  run = function(ev)
    local t = {}
    for i = 1, 1e9 do t[i] = string.rep("x", 1024 * 1024) .. i end
  end,
}

rule {
  name = "fails",
  on = "*",
  run = function(ev)
    local x = nil
    return x.field
  end,
}
