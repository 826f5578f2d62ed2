-- expect: 2: 'webhook.tolerance' must be between 1s and 1d
webhook = { secrets = { "s" }, tolerance = "2d" }
