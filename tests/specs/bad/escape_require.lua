-- expect: :2: error: attempt to call a nil value (global 'require') (specs run in a sandbox
local os = require("os")
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) } }
