-- expect: 2: 'store.synchronous' must be "full", "normal" or "off"
store = { url = "sqlite:x.db", synchronous = "sometimes" }
