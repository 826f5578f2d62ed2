-- Tests for ops_alerts.lua, with the alert switchyard emits when a job goes dead

test("a dead job opens an ops ticket naming the rule, the event and the error", function()
  respond("POST", "/collections/ENG/tickets$", { status = 201, body = { id = "OPS-1" } })
  local run = fire({
    id = "switchyard:job.dead:00112233aabbccdd",
    type = "switchyard.job.dead",
    source = { type = "switchyard", name = "switchyard" },
    data = { event_id = "evt_7", rule = "pr-review-ticket", attempts = 6,
             error = "unizo POST /ticketing/...: HTTP 400 INVALID_COLLECTION" },
  })
  expect(#run.calls).to_be(1)
  local t = run.calls[1].body
  expect(t.name).to_be("switchyard: rule pr-review-ticket gave up on event evt_7")
  expect(t.description).to_match("After 6 attempt%(s%): unizo POST")
  expect(t.description).to_match("switchyard replay evt_7")
  expect(t.labels).to_equal({ "switchyard", "dead-job" })
end)
