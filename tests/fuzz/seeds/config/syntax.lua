-- expect: 3: syntax
webhook = {
  path = "/x" "y",
}
