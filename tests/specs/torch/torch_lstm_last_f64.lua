-- PyTorch conformance: lstm 1 -> 7 (a one-unit layer feeding a wider one), batch 5,
-- many-to-one, f64, every head activation.
return model {
  name = "torch_lstm_last_f64",
  input = 3,
  seq_len = 13,
  batch = 5,
  recurrent = { lstm(1), lstm(7) },
  head = { dense(13, "relu"), dense(7, "tanh"), dense(3, "sigmoid"), dense(2) },
  loss = "cross_entropy",
  output_at = "last",
  precision = "f64",
}
