-- PyTorch conformance: rnn tanh 33 -> 13 -> 1, input 7, batch 3, many-to-one, f32.
return model {
  name = "torch_rnn_tanh_last_f32",
  input = 7,
  seq_len = 12,
  batch = 3,
  recurrent = { rnn(33, "tanh"), rnn(13, "tanh"), rnn(1, "tanh") },
  head = { dense(5, "relu"), dense(2) },
  loss = "mse",
  output_at = "last",
  precision = "f32",
}
