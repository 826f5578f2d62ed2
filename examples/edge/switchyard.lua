-- switchyard behind a reverse proxy that ends TLS and speaks HTTP/2 (examples/edge/nginx.conf).
-- switchyard itself speaks HTTP/1.1 on loopback only, and believes X-Forwarded-For from the
-- proxy alone. As the Debian package's config: /etc/switchyard/switchyard.lua, with the
-- secret in /etc/default/switchyard.

listen = { "127.0.0.1:8080" }        -- loopback: only the proxy reaches it
http   = { http2 = false }           -- the default, said out loud: h2o 2.2.5's HTTP/2 is unpatched

admin = {
  listen = "127.0.0.1:9091",
  token  = env("SWITCHYARD_ADMIN_TOKEN"),
}

webhook = {
  path    = "/webhooks/unizo",
  secrets = { env("UNIZO_WEBHOOK_SECRET"), env("UNIZO_WEBHOOK_SECRET_OLD") },
  -- the proxy: the X-Forwarded-For it sets names the client, which webhook.allow then judges
  trusted_proxies = { "127.0.0.1/32", "::1/128" },
  -- allow = { "203.0.113.0/24" },   -- the addresses Unizo delivers from, if you restrict them
}

store = "sqlite:/var/lib/switchyard/switchyard.db"
rules = { "rules/*.lua" }
