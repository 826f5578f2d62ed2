-- expect: 5: 'unizo.integrations.jira.id' must be visible ASCII without spaces (it is sent as the integrationId header); a trailing newline from file()?
webhook = { secrets = { "s" } }
unizo = {
  integrations = {
    jira = { id = "int-7\n",
      organization = "acme" },
  },
}
