-- Size 1 everywhere: one input feature, one hidden unit per layer, one output.
return model {
  name = "fwd_lstm_size1_f32",
  input = 1,
  seq_len = 9,
  batch = 1,
  recurrent = { lstm(1), lstm(1) },
  head = { dense(1) },
  loss = "mse",
  output_at = "all",
  precision = "f32",
}
