-- expect: :8: error: tuning.layers has 1 entries; the model has 2 recurrent layers
-- expect: :9: error: tuning.heads must be a list { ... }, got 3
-- expect: : 2 errors
return model {
  name = "m", input = 3, seq_len = 8,
  recurrent = { lstm(4), gru(8) }, head = { dense(2) },
  tuning = { isa = "scalar",
    layers = { { recurrent = { jb = 1 } } },
    heads = 3 },
}
