-- expect: 4: unknown key 'listn'
listen = { "127.0.0.1:8080" }

listn = { "0.0.0.0:1" }
