-- Only the most severe incidents become tickets; the others are skipped.

rule {
  name = "sev1-incident-ticket",
  on   = "incidents.incident.created",
  when = function(ev) return ev.data.severity == "sev1" end,
  run  = function(ev)
    local inc = ev.data
    log.info("would create an incident ticket", {
      title = ("[SEV1] %s"):format(inc.title),
      service = inc.service and inc.service.name,
      incident = inc.url,
    })
    kv.set("incident:" .. inc.id, { title = inc.title }, "30d")
  end,
}
