-- expect: 2: 'webhook.path' must start with '/'
webhook = { path = "hooks" }
