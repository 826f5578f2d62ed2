-- A merged pull request resolves the review ticket opened for it, found
-- through the kv correlation that pr_review.lua wrote.

rule {
  name = "pr-merged-resolve",
  on   = "scm.pull_request.merged",
  run  = function(ev)
    local pr = ev.data
    local review = kv.get("pr:" .. pr.url)
    if review == nil then
      -- nothing was opened for it (a draft, or a PR from before switchyard): nothing to do
      log.warn("no review ticket recorded for this PR", { pr = pr.url })
      return
    end
    log.info("would resolve the review ticket", { title = review.title, pr = pr.url })
    kv.delete("pr:" .. pr.url)
  end,
}
