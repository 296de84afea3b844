-- expect: :2: error: attempt to index a nil value (global 'debug')
debug.sethook()
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) } }
