-- (d) A user deactivated in the identity provider gets an offboarding ticket
-- for IT, so their remaining access is removed everywhere else.

rule {
  name = "offboarding-ticket",
  on   = "identity.user.deactivated",
  run  = function(ev)
    local user = ev.data.user or {}
    unizo.ticketing.create_ticket {
      integration = "jira-it",
      title = ("Offboard %s"):format(user.email or user.login or user.id or "unknown user"),
      description = ("Deactivated in %s (%s). Remove remaining access and recover devices.")
        :format(ev.integration.name or ev.integration.type, ev.data.reason or "no reason given"),
      type = "task",
      labels = { "offboarding" },
      custom_fields = { user_id = user.id, deactivated_by = ev.data.actor and ev.data.actor.login },
    }
  end,
}
