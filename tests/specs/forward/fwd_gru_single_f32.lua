-- A single recurrent layer with a one-layer head.
return model {
  name = "fwd_gru_single_f32",
  input = 5,
  seq_len = 9,
  batch = 2,
  recurrent = { gru(7) },
  head = { dense(3, "sigmoid") },
  loss = "mse",
  output_at = "all",
  precision = "f32",
}
