-- No head: the output is the top layer's hidden state (O = 7), many-to-one.
return model {
  name = "fwd_lstm_nohead_last_f32",
  input = 5,
  seq_len = 9,
  batch = 2,
  recurrent = { lstm(3), lstm(7) },
  head = {},
  loss = "mse",
  output_at = "last",
  precision = "f32",
}
