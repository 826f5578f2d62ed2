-- (e) switchyard's own alerts: a job that went dead opens an ops ticket, so the
-- engineer on call hears of it without reading logs. switchyard.* events go only
-- to rules that name them (a rule on "*" never sees them), and a job of an alert
-- that fails raises no alert about itself.

rule {
  name = "ops-ticket-on-dead-job",
  on   = "switchyard.job.dead",
  run  = function(ev)
    local d = ev.data
    unizo.ticketing.create_ticket {
      integration = "jira-prod",
      title = ("switchyard: rule %s gave up on event %s"):format(d.rule, d.event_id),
      description = ("After %d attempt(s): %s\nReplay it with: switchyard replay %s"):format(
        d.attempts, d.error or "(no error)", d.event_id),
      type = "incident",
      labels = { "switchyard", "dead-job" },
    }
  end,
}
