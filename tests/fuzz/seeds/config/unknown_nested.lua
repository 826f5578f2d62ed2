-- expect: 5: unknown key 'webhook.tolerence'
webhook = {
  path = "/x",
  secrets = { "s" },
  tolerence = 300,
}
