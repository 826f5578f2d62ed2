-- expect: 2: 'store' must be "sqlite:PATH", got "mysql://x"
store = "mysql://x"
