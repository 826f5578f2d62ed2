-- expect: 2: 'admin.store_timeout' must be between 100ms and 60s
admin = { listen = "127.0.0.1:9091", store_timeout = "90s" }
