rule { name = "noop", on = "*", run = function(ev) end }
