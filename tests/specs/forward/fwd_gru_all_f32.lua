-- Forward test matrix: gru, output_at = "all", f32.
-- Two stacked layers of unequal odd sizes and a head covering every activation.
return model {
  name = "fwd_gru_all_f32",
  input = 5,
  seq_len = 9,
  batch = 2,
  recurrent = { gru(3), gru(7) },
  head = { dense(6, "relu"), dense(4, "tanh"), dense(3, "sigmoid"), dense(2) },
  loss = "mse",
  output_at = "all",
  precision = "f32",
}
