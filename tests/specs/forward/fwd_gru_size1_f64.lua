-- Size 1 between wider layers: 5 -> 1 -> 7 units, batch 2.
return model {
  name = "fwd_gru_size1_f64",
  input = 5,
  seq_len = 9,
  batch = 2,
  recurrent = { gru(1), gru(7) },
  head = { dense(1, "sigmoid") },
  loss = "mse",
  output_at = "last",
  precision = "f64",
}
