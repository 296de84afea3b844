-- No head, decreasing sizes (7 then 3), three layers, many-to-many.
return model {
  name = "fwd_gru_nohead_all_f64",
  input = 5,
  seq_len = 9,
  batch = 2,
  recurrent = { gru(7), gru(3), gru(5) },
  loss = "mse",
  output_at = "all",
  precision = "f64",
}
