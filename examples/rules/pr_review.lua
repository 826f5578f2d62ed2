-- A new pull request becomes a review ticket; the ticket is remembered in kv
-- under the PR's URL so that later events about the same PR can find it.
-- Until the Unizo client lands, the rule logs the ticket it would create.

rule {
  name = "pr-review-ticket",
  on   = "scm.pull_request.created",
  when = function(ev) return not ev.data.draft end,        -- drafts are not ready for review
  run  = function(ev)
    local pr = ev.data
    local ticket = {
      integration = "jira-prod",
      title = "Review PR: " .. pr.title,
      description = ("PR #%d needs review\n%s"):format(pr.number, pr.url),
      custom_fields = { pr_url = pr.url, repository = pr.repository and pr.repository.name },
    }
    log.info("would create a review ticket", { title = ticket.title, pr = pr.url })
    kv.set("pr:" .. pr.url, { title = ticket.title, opened_by = pr.author and pr.author.login }, "30d")
  end,
}
