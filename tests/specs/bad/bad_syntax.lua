-- expect: :3: error: syntax error:
return model { name = "m", input = 3, seq_len = 8,
  recurrent = { lstm(4) ,, } }
