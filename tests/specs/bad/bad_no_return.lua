-- expect: :1: error: a spec must return a model
model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) } }
