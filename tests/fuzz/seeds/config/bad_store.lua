-- expect: 2: 'store' must be "sqlite:PATH" or "redis://HOST:PORT/DB", got "mysql://x"
store = "mysql://x"
