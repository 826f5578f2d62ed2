-- switchyard demo configuration: what `./scripts/serve` runs.
-- Every key has a default; this file sets the ones a first run cares about.
-- Relative paths are relative to this file's folder.

listen = { "0.0.0.0:8080" }

admin = {
  listen = "127.0.0.1:9091",
  token  = env("SWITCHYARD_ADMIN_TOKEN"),       -- unset: /metrics needs no token
}

webhook = {
  path      = "/webhooks/unizo",
  -- any of these may match (rotation). The demo falls back to a well-known
  -- secret so that `switchyard send` works out of the box: never do that in production.
  secrets   = { env("UNIZO_WEBHOOK_SECRET", "demo-secret"), env("UNIZO_WEBHOOK_SECRET_OLD") },
  tolerance = "5m",
  max_body  = "1MiB",
  allow     = {},                                -- empty: any address may deliver
  trusted_proxies = { "127.0.0.1/32", "::1/128" },
}

store = "sqlite:var/switchyard.db"   -- examples/var/switchyard.db, created on first start
dedupe_retention = "7d"

rules   = { "rules/*.lua" }              -- examples/rules/*.lua, in file order
workers = 2
retry   = { schedule = { "1m", "5m", "30m", "2h", "12h" } }   -- then dead: see `switchyard events --status dead`
lua     = { instruction_limit = 10000000, memory_limit = "64MiB" }

unizo   = {
  base_url = env("UNIZO_BASE_URL", "https://api.unizo.ai/api/v1"),  -- the mock: http://127.0.0.1:8089
  api_key  = env("UNIZO_API_KEY"),       -- unset: dry-run, every call is logged and not sent
  integrations = {
    ["jira-prod"] = { id = env("UNIZO_JIRA_INTEGRATION_ID", "jira-prod"), organization = "default", collection = "ENG" },
    ["jira-it"]   = { id = env("UNIZO_JIRA_IT_INTEGRATION_ID", "jira-it"), organization = "default", collection = "IT" },
  },
}

log = { level = "info", format = "text" }
