-- Finite-difference gradient check (f64): rnn_tanh x bce x output_at last, unequal stack, every head activation.
return model {
  name = "grad_rnn_tanh_bce_last",
  input = 3, seq_len = 5, batch = 2,
  recurrent = { rnn(4, "tanh"), rnn(3, "tanh") },
  head = { dense(5, "sigmoid"), dense(4, "relu"), dense(2) },
  loss = "bce", output_at = "last", precision = "f64",
}
