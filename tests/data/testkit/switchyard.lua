webhook = { secrets = { "unused" } }
rules = { "rules/*.lua" }
unizo = { integrations = { ["jira"] = { id = "int-9", organization = "acme", collection = "OPS" } } }
