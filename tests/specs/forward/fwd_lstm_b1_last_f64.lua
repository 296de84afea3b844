-- Batch 1, many-to-one, f64.
return model {
  name = "fwd_lstm_b1_last_f64",
  input = 5,
  seq_len = 9,
  batch = 1,
  recurrent = { lstm(3), lstm(7) },
  head = { dense(6, "relu"), dense(4, "tanh"), dense(3, "sigmoid"), dense(2) },
  loss = "cross_entropy",
  output_at = "last",
  precision = "f64",
}
