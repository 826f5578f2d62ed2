rule { name = "x", on = "*", run = function() end
