local calls_seen = 0

before_each(function()
  respond("POST", "/tickets$", { status = 201, body = { id = "T-7" } })
end)

test("a bare event fixture runs the rule", function()
  local run = fire("fixtures/bare.json")
  expect(run.status).to_be(200)
  expect(#run.calls).to_be(1)
  expect(run.calls[1].path).to_be("/ticketing/acme/collections/OPS/tickets")
  expect(run.calls[1].headers.integrationId).to_be("int-9")
  expect(run.calls[1].body).to_equal({ name = "Bare" })
  expect(run.jobs).to_equal({ { rule = "ticket", outcome = "done" } })
  expect(run.logs[1].message).to_be("made")
  expect(run.event.data.title).to_match("^Ba")
  expect(kv.get("last").id).to_be("T-7")
end)

test("a recorded delivery verifies against the frozen clock", function()
  freeze_time(1700000100)
  local run = fire("fixtures/delivery.json", { secret = "fixture-secret" })
  expect(run.status).to_be(200)
  expect(run.calls[1].body.name).to_be("Recorded PR")
end)

test("a bad signature is rejected like the live server would", function()
  freeze_time(1700000000)
  local run = fire("fixtures/delivery_bad_sig.json", { secret = "fixture-secret" })
  expect(run.status).to_be(401)
  expect(run.rejected).to_be("invalid_signature")
  expect(#run.calls).to_be(0)
end)

test("a recorded delivery outside the window is stale", function()
  freeze_time("2024-01-15T10:30:00Z")
  local run = fire("fixtures/delivery.json", { secret = "fixture-secret" })
  expect(run.rejected).to_be("stale_timestamp")
end)

test("frozen time reaches the rules", function()
  freeze_time(1234567890)
  fire({ id = "e", type = "ticketing.ticket.created", integration = { id = "i", type = "jira" }, data = {} })
  expect(kv.get("stamp")).to_be(1234567890)
  expect(os.time()).to_be(1234567890)
end)

test("kv from another test is not visible", function()
  expect(kv.get("last")).to_be_nil()
  expect(kv.get("stamp")).to_be_nil()
  calls_seen = calls_seen + 1
  expect(calls_seen).to_be(1)   -- a fresh runtime: file-level state starts over too
end)

test("to_fail catches errors", function()
  expect(function() error("boom") end).to_fail("boom")
  expect({ 1, 2, { a = 1 } }).to_contain({ a = 1 })
  expect("hello world").to_contain("o w")
end)

test("a failed run leaves no kv writes behind, as in the server", function()
  local run = fire({ id = "h1", type = "identity.user.created", integration = { id = "i", type = "okta" },
                     data = { fail = true } })
  expect(run.jobs).to_equal({ { rule = "half-done", outcome = "failed", error = run.jobs[1].error } })
  expect(kv.get("half")).to_be_nil()
  fire({ id = "h2", type = "identity.user.created", integration = { id = "i", type = "okta" }, data = {} })
  expect(kv.get("half")).to_be("h2")
end)
