-- expect: 3: 'log.level' must be "debug", "info", "warn" or "error", got "loud"
log = {
  level = "loud",
}
