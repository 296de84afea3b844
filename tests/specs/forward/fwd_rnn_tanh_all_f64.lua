-- Forward test matrix: rnn tanh, output_at = "all", f64.
-- Two stacked layers of unequal odd sizes and a head covering every activation.
return model {
  name = "fwd_rnn_tanh_all_f64",
  input = 5,
  seq_len = 9,
  batch = 2,
  recurrent = { rnn(3, "tanh"), rnn(7, "tanh") },
  head = { dense(6, "relu"), dense(4, "tanh"), dense(3, "sigmoid"), dense(2) },
  loss = "mse",
  output_at = "all",
  precision = "f64",
}
