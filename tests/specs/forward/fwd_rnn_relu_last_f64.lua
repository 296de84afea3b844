-- Forward test matrix: rnn relu, output_at = "last", f64.
-- Two stacked layers of unequal odd sizes and a head covering every activation.
return model {
  name = "fwd_rnn_relu_last_f64",
  input = 5,
  seq_len = 9,
  batch = 2,
  recurrent = { rnn(3, "relu"), rnn(7, "relu") },
  head = { dense(6, "relu"), dense(4, "tanh"), dense(3, "sigmoid"), dense(2) },
  loss = "bce",
  output_at = "last",
  precision = "f64",
}
