-- expect: 2: 'listen': "8080" is not ADDRESS:PORT
listen = "8080"
