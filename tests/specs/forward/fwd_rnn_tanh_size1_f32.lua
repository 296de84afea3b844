-- The smallest model: one unit, one layer, one input, no head, seq_len 1 (T = 1 is the only
-- valid length).
return model {
  name = "fwd_rnn_tanh_size1_f32",
  input = 1,
  seq_len = 1,
  batch = 1,
  recurrent = { rnn(1, "tanh") },
  loss = "mse",
  output_at = "all",
  precision = "f32",
}
