-- A single relu layer, no head, many-to-one.
return model {
  name = "fwd_rnn_relu_single_f64",
  input = 5,
  seq_len = 9,
  batch = 2,
  recurrent = { rnn(7, "relu") },
  loss = "mse",
  output_at = "last",
  precision = "f64",
}
