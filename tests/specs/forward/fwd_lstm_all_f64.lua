-- Forward test matrix: lstm, output_at = "all", f64.
-- Two stacked layers of unequal odd sizes and a head covering every activation.
return model {
  name = "fwd_lstm_all_f64",
  input = 5,
  seq_len = 9,
  batch = 2,
  recurrent = { lstm(3), lstm(7) },
  head = { dense(6, "relu"), dense(4, "tanh"), dense(3, "sigmoid"), dense(2) },
  loss = "bce",
  output_at = "all",
  precision = "f64",
}
