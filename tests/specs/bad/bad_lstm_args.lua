-- expect: :3: error: layer 1 (lstm): takes one argument (the size), got 2 arguments
return model { name = "m", input = 3, seq_len = 8,
  recurrent = { lstm(4, "relu") } }
