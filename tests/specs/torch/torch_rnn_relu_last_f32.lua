-- PyTorch conformance: rnn relu 13 -> 7, input 17, batch 1, many-to-one, f32.
return model {
  name = "torch_rnn_relu_last_f32",
  input = 17,
  seq_len = 10,
  batch = 1,
  recurrent = { rnn(13, "relu"), rnn(7, "relu") },
  head = { dense(1) },
  loss = "mse",
  output_at = "last",
  precision = "f32",
}
