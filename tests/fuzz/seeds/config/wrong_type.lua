-- expect: 4: 'webhook.max_body' must be a number or a string like "1MiB", got string "lots"
webhook = {
  secrets = { "s" },
  max_body = "lots",
}
