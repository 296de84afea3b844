-- expect: :3: error: recurrent must hold at least one layer
return model { name = "m", input = 3, seq_len = 8,
  recurrent = {} }
