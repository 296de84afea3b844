-- expect: :3: error: head layer 1 (dense): size must be a positive integer, got "8"
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) },
  head = { dense("8") } }
