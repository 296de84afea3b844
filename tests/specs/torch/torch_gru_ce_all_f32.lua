-- PyTorch gradient conformance: gru 5 -> 11, input 6, batch 2, many-to-many, cross_entropy over
-- 5 classes, f32.
return model {
  name = "torch_gru_ce_all_f32",
  input = 6,
  seq_len = 8,
  batch = 2,
  recurrent = { gru(5), gru(11) },
  head = { dense(5) },
  loss = "cross_entropy",
  output_at = "all",
  precision = "f32",
}
