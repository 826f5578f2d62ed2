-- (a) A new pull request becomes a review ticket in Jira (through Unizo).
-- The ticket's id is kept in kv under the PR's URL for later events.
-- key = the PR's URL: this PR's jobs run one at a time, in the order their
-- events arrived, so a merge that arrives while this job waits for a retry
-- runs after it (see pr_merged.lua, which has the same key).

rule {
  name = "pr-review-ticket",
  on   = "scm.pull_request.created",
  key  = "data.url",
  when = function(ev) return not ev.data.draft end,        -- drafts are not ready for review
  run  = function(ev)
    local pr = ev.data
    local t = unizo.ticketing.create_ticket {
      integration = "jira-prod",                           -- organization/collection from the config
      title = "Review PR: " .. pr.title,
      description = ("PR #%d needs review\n%s"):format(pr.number, pr.url),
      labels = { "code-review" },
      custom_fields = { pr_url = pr.url, repository = pr.repository and pr.repository.name },
    }
    kv.set("pr:" .. pr.url, { ticket = t.id, key = t.key }, "30d")
    log.info("review ticket created", { ticket = t.id, pr = pr.url })
  end,
}
