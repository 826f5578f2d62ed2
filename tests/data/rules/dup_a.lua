rule { name = "same", on = "*", run = function() end }
