-- expect: :2: error: attempt to call a nil value (global 'dofile')
dofile("/etc/passwd")
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) } }
