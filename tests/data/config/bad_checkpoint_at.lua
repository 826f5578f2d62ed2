-- expect: 2: 'store.checkpoint_at' must be between 1MiB and 1GiB
store = { url = "sqlite:x.db", checkpoint_at = "64KiB" }
