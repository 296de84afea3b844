-- expect: :5: error: tuning.layers[1]: unknown field "(%f["; expected one of: input_seq, input_step, recurrent
-- A field name that is not a valid pattern, in the tuning table (looked up line by line).
return model { name = "m", input = 3, seq_len = 8,
  recurrent = { lstm(4) },
  tuning = { layers = { { ["(%f["] = 1, input_seq = { rb = 1 } } } } }
