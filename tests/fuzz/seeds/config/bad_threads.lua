-- expect: 2: 'http.threads' must be between 1 and 256, got 0
http = { threads = 0 }
