-- expect: error: name is required
return model { input = 3, seq_len = 8, recurrent = { lstm(4) } }
