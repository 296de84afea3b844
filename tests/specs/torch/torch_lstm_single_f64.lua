-- PyTorch conformance: a single lstm of 33 units, no head, batch 2, many-to-many, f64.
return model {
  name = "torch_lstm_single_f64",
  input = 5,
  seq_len = 8,
  batch = 2,
  recurrent = { lstm(33) },
  loss = "mse",
  output_at = "all",
  precision = "f64",
}
