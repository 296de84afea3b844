-- expect: error: the spec used more memory than the limit
local s = ("x"):rep(1 << 30)
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) } }
