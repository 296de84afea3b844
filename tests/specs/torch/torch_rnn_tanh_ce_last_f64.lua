-- PyTorch gradient conformance: rnn tanh 11 -> 2, input 3, batch 4, many-to-one, cross_entropy
-- over 3 classes, f64.
return model {
  name = "torch_rnn_tanh_ce_last_f64",
  input = 3,
  seq_len = 6,
  batch = 4,
  recurrent = { rnn(11, "tanh"), rnn(2, "tanh") },
  head = { dense(5, "sigmoid"), dense(3) },
  loss = "cross_entropy",
  output_at = "last",
  precision = "f64",
}
