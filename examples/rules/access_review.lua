-- (e) A user created in the identity provider gets an access review ticket
-- for IT. Unizo names this event "user:created" in both its identity and its
-- ticketing lists; the category (the endpoint it was delivered to,
-- /webhooks/unizo/identity) tells them apart, and the colon spelling routes
-- like any other.

rule {
  name = "new-user-access-review",
  on   = "user:created",
  category = "identity",
  key  = "data.user.id",
  run  = function(ev)
    local user = ev.data.user or {}
    unizo.ticketing.create_ticket {
      integration = "jira-it",
      title = ("Review access for %s"):format(user.email or user.name or user.id or "a new user"),
      description = ("Created in %s. Check group memberships within 24 hours.")
        :format(ev.integration.type or ev.data.directory or "the identity provider"),
      type = "task",
      labels = { "access-review" },
      custom_fields = { user_id = user.id, delivery = ev.delivery_id },
    }
  end,
}
