-- a second file declaring the same name

rule { name = "same", on = "*", run = function() end }
