rule {
  name = "ticket",
  on = "scm.pull_request.created",
  run = function(ev)
    local t = unizo.ticketing.create_ticket { integration = "jira", title = ev.data.title }
    kv.set("last", { id = t.id, at = os.time() }, 60)
    log.info("made", { id = t.id })
  end,
}
rule {
  name = "stamp",
  on = "ticketing.*",
  run = function(ev) kv.set("stamp", os.time()) end,
}
rule {
  name = "half-done",
  on = "identity.*",
  run = function(ev)
    kv.set("half", ev.id)
    if ev.data.fail then error("failed after kv.set") end
  end,
}
