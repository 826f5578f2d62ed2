rule { name = "bad", on = "*.created", run = function() end }
