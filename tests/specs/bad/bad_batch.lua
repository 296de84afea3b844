-- expect: :3: error: batch must be a positive integer, got -1
return model { name = "m", input = 3, seq_len = 8,
  batch = -1, recurrent = { lstm(4) } }
