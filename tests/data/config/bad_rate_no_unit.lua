-- expect: 3: 'unizo.integrations.jira.rate' must be calls per second, minute or hour, like "20/s"
unizo = { integrations = {
  jira = { rate = "20/" },
} }
