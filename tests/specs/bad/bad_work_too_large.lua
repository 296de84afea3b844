-- expect: error: seq_len * batch is too large
return model { name = "m", input = 3, seq_len = 1000000, batch = 4096, recurrent = { lstm(4096) } }
