-- expect: :2: error: attempt to call a nil value (global 'load')
local f = load("return os")
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) } }
