-- Finite-difference gradient check (f64): rnn_tanh x mse x output_at last, unequal stack, every head activation.
return model {
  name = "grad_rnn_tanh_mse_last",
  input = 3, seq_len = 5, batch = 2,
  recurrent = { rnn(4, "tanh"), rnn(3, "tanh") },
  head = { dense(5, "relu"), dense(4, "sigmoid"), dense(2, "tanh") },
  loss = "mse", output_at = "last", precision = "f64",
}
