-- expect: 3: 'unizo.integrations.jira.rate' must be calls per second, minute or hour
unizo = { integrations = {
  jira = { rate = "0/s" },
} }
