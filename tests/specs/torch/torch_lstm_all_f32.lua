-- PyTorch conformance: lstm 17 -> 33 (unequal), input 13, batch 3, many-to-many, f32.
return model {
  name = "torch_lstm_all_f32",
  input = 13,
  seq_len = 11,
  batch = 3,
  recurrent = { lstm(17), lstm(33) },
  head = { dense(7, "tanh"), dense(3) },
  loss = "mse",
  output_at = "all",
  precision = "f32",
}
