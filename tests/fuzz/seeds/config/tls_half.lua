-- expect: 2: 'http.tls' needs both 'cert' and 'key'
http = { tls = { cert = "c.pem" } }
