-- Wider layers (33, 16) in f64, batch 3, many-to-one.
return model {
  name = "fwd_gru_wide_f64",
  input = 13,
  seq_len = 9,
  batch = 3,
  recurrent = { gru(33), gru(16) },
  head = { dense(9, "relu"), dense(4) },
  loss = "mse",
  output_at = "last",
  precision = "f64",
}
