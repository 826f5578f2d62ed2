-- Tests for pr_review.lua and pr_merged.lua: `switchyard test -c examples/switchyard.lua`

local PR = "https://github.com/acme/payments-api/pull/42"

test("a new PR opens one review ticket", function()
  respond("POST", "/tickets$", { status = 201, body = { id = "T-1", key = "ENG-1" } })
  local run = fire("../events/scm.pull_request.created.json")
  expect(#run.calls).to_be(1)
  expect(run.calls[1].path).to_be("/ticketing/default/collections/ENG/tickets")
  expect(run.calls[1].body.name).to_be("Review PR: Add OAuth login")
  expect(run.calls[1].body.metadata).to_equal({ pr_url = PR, repository = "payments-api" })
  expect(run.calls[1].headers["Idempotency-Key"]).to_be("evt_01HM8Q0002/pr-review-ticket/1")
  expect(run.jobs[1]).to_equal({ rule = "pr-review-ticket", outcome = "done" })
  expect(kv.get("pr:" .. PR)).to_equal({ ticket = "T-1", key = "ENG-1" })
end)

test("a draft PR opens nothing", function()
  local run = fire({
    id = "evt_draft", type = "scm.pull_request.created",
    integration = { id = "int_1", type = "github" },
    data = { title = "WIP", number = 7, url = "https://github.com/acme/x/pull/7", draft = true },
  })
  expect(#run.calls).to_be(0)
  expect(run.jobs[1].outcome).to_be("skipped")
end)

test("merging resolves the ticket the PR opened and comments the commit", function()
  kv.set("pr:" .. PR, { ticket = "T-9" })
  respond("PUT", "/tickets/T%-9$", { status = 200, body = { id = "T-9" } })
  respond("POST", "/tickets/T%-9/comments$", { status = 201, body = { id = "C-1" } })
  local run = fire("../events/scm.pull_request.merged.json")
  expect(run.jobs[1].outcome).to_be("done")
  expect(run.calls[1].body).to_equal({ status = "resolved" })
  expect(run.calls[2].body.content).to_contain("9f1c2e7b4d0a8c3e5f6a7b8c9d0e1f2a3b4c5d6e")
  expect(kv.get("pr:" .. PR)).to_be_nil()
end)

test("a merge with no recorded ticket does nothing and says so", function()
  local run = fire("../events/scm.pull_request.merged.json")
  expect(#run.calls).to_be(0)
  expect(run.logs[1].message).to_be("no review ticket recorded for this PR")
end)

test("an API error fails the job with Unizo's message", function()
  respond("POST", "/tickets$", { status = 400, body = { errorCode = "INVALID_COLLECTION", errorMessage = "no ENG" } })
  local run = fire("../events/scm.pull_request.created.json")
  expect(run.jobs[1].outcome).to_be("failed")
  expect(run.jobs[1].error).to_contain("HTTP 400 INVALID_COLLECTION: no ENG")
end)
