rule {
  name = "no-run",
  on = "*",
}
