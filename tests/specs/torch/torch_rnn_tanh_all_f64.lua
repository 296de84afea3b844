-- PyTorch conformance: rnn tanh 3 -> 17, input 1, no head, batch 2, many-to-many, f64.
return model {
  name = "torch_rnn_tanh_all_f64",
  input = 1,
  seq_len = 16,
  batch = 2,
  recurrent = { rnn(3, "tanh"), rnn(17, "tanh") },
  loss = "mse",
  output_at = "all",
  precision = "f64",
}
