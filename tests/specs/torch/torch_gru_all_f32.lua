-- PyTorch conformance: gru 7 -> 3 -> 17, input 33, batch 4, many-to-many, f32.
return model {
  name = "torch_gru_all_f32",
  input = 33,
  seq_len = 9,
  batch = 4,
  recurrent = { gru(7), gru(3), gru(17) },
  head = { dense(3, "tanh"), dense(1, "sigmoid") },
  loss = "mse",
  output_at = "all",
  precision = "f32",
}
