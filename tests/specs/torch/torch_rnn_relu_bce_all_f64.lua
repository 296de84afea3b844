-- PyTorch gradient conformance: rnn relu 9 -> 5 (unequal), input 4, batch 3, many-to-many, bce
-- over 4 logits, f64.
return model {
  name = "torch_rnn_relu_bce_all_f64",
  input = 4,
  seq_len = 7,
  batch = 3,
  recurrent = { rnn(9, "relu"), rnn(5, "relu") },
  head = { dense(6, "tanh"), dense(4) },
  loss = "bce",
  output_at = "all",
  precision = "f64",
}
