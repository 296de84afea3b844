-- expect: :3: error: head[1] must be dense(size [, activation]), got lstm(...)
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) },
  head = { lstm(4) } }
