-- expect: ok
listen   = { "127.0.0.1:8080", "[::1]:8081" }
http     = { threads = 3, http2 = true, idle_timeout = "90s", request_timeout = 5 }
admin    = { listen = "127.0.0.1:9999", token = env("SY_TEST_UNSET_TOKEN", "tok"), store_timeout = "500ms" }
webhook  = {
  path      = "/hooks/in",
  secrets   = { env("SY_TEST_UNSET_A"), "second", env("SY_TEST_UNSET_B", "third") },
  tolerance = "2m",
  max_body  = "512KiB",
  allow     = { "52.10.128.0/24", "2001:db8::/32" },
  trusted_proxies = { "127.0.0.1/32" },
}
store    = { url = "sqlite:data/test.db", synchronous = "normal", queue = 100, max_batch = 50,
             checkpoint_at = "8MiB" }
dedupe_retention = "3d"
log      = { level = "warn", format = "json" }
