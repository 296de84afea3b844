-- PyTorch gradient conformance: lstm 6 -> 3 -> 9, input 5, batch 1, many-to-one, bce over 3
-- logits, f32.
return model {
  name = "torch_lstm_bce_last_f32",
  input = 5,
  seq_len = 9,
  batch = 1,
  recurrent = { lstm(6), lstm(3), lstm(9) },
  head = { dense(7, "relu"), dense(3) },
  loss = "bce",
  output_at = "last",
  precision = "f32",
}
