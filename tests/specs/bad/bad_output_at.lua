-- expect: :3: error: output_at: unknown value "first"; expected one of: all, last
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) },
  output_at = "first" }
