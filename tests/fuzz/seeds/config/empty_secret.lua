-- expect: 2: 'webhook.secrets' contains an empty secret
webhook = { secrets = { "" } }
