-- Tests for offboarding.lua

test("a deactivated user gets an offboarding ticket in IT", function()
  respond("POST", "/collections/IT/tickets$", { status = 201, body = { id = "IT-3" } })
  local run = fire("../events/identity.user.deactivated.json")
  expect(#run.calls).to_be(1)
  local body = run.calls[1].body
  expect(body.name).to_be("Offboard jdoe@acme.example")
  expect(body.type).to_be("task")
  expect(body.labels).to_equal({ "offboarding" })
  expect(body.metadata.deactivated_by).to_be("it-admin@acme.example")
  expect(run.calls[1].headers.integrationId).to_be("jira-it")
end)
