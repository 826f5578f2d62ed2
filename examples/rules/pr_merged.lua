-- (b) A merged pull request resolves its review ticket, found through the kv
-- correlation pr_review.lua wrote, and records the merge commit on it.

rule {
  name = "pr-merged-resolve",
  on   = "scm.pull_request.merged",
  key  = "data.url",          -- runs after this PR's earlier jobs (pr_review.lua), never beside them
  run  = function(ev)
    local pr = ev.data
    local review = kv.get("pr:" .. pr.url)
    if review == nil then
      -- nothing was opened for it (a draft, or a PR from before switchyard): nothing to do
      log.warn("no review ticket recorded for this PR", { pr = pr.url })
      return
    end
    unizo.ticketing.update_ticket { integration = "jira-prod", id = review.ticket, status = "resolved" }
    unizo.ticketing.add_comment {
      integration = "jira-prod", id = review.ticket,
      content = ("Merged by %s as %s"):format(pr.merged_by and pr.merged_by.login or "?",
                                            pr.merge_commit_sha or "?"),
    }
    kv.delete("pr:" .. pr.url)
    log.info("review ticket resolved", { ticket = review.ticket, pr = pr.url })
  end,
}
