-- PyTorch conformance: gru 33 -> 1 -> 13 (three layers), batch 1, many-to-one, f64.
return model {
  name = "torch_gru_last_f64",
  input = 7,
  seq_len = 17,
  batch = 1,
  recurrent = { gru(33), gru(1), gru(13) },
  head = { dense(3, "sigmoid") },
  loss = "mse",
  output_at = "last",
  precision = "f64",
}
