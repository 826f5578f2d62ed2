-- expect: 2: 'engine.max_in_flight' must be between 1 and 10000, got 0
engine = { max_in_flight = 0 }
