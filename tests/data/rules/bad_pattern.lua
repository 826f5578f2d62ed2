rule { name = "bad", on = "scm*.created", run = function() end }
