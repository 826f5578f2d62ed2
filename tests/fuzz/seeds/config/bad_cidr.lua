-- expect: 3: "10.0.0.0/33" is not an address or CIDR range
webhook = {
  allow = { "10.0.0.0/8", "10.0.0.0/33" },
}
