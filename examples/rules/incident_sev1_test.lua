-- Tests for incident_sev1.lua

local INC = "incident:Q2K7ZSEV1"

test("a sev1 incident opens a ticket and remembers it", function()
  respond("POST", "/collections/ENG/tickets$", { status = 201, body = { id = "T-50" } })
  local run = fire("../events/incidents.incident.created.sev1.json")
  expect(#run.calls).to_be(1)
  expect(run.calls[1].body.name).to_be("[SEV1] payments-api is down")
  expect(run.calls[1].body.priority).to_be("highest")
  expect(kv.get(INC)).to_equal({ ticket = "T-50" })
end)

test("a sev2 incident is skipped", function()
  local run = fire("../events/incidents.incident.created.json")
  expect(run.jobs[1]).to_equal({ rule = "sev1-incident-ticket", outcome = "skipped" })
  expect(#run.calls).to_be(0)
end)

test("acknowledging comments on the ticket, resolving resolves it", function()
  kv.set(INC, { ticket = "T-50" })
  respond("POST", "/tickets/T%-50/comments$", { status = 201, body = {} })
  respond("PUT", "/tickets/T%-50$", { status = 200, body = {} })
  local ack = fire("../events/incidents.incident.acknowledged.sev1.json")
  expect(ack.calls[1].body.content).to_be("Acknowledged by mchen")
  local res = fire("../events/incidents.incident.resolved.sev1.json")
  expect(res.calls[1].body).to_equal({ status = "resolved" })
  expect(kv.get(INC)).to_be_nil()
end)

test("events of an incident without a ticket are skipped", function()
  local run = fire("../events/incidents.incident.resolved.sev1.json")
  expect(run.jobs[1].outcome).to_be("skipped")
end)
