-- Finite-difference gradient check (f64): rnn_relu x mse x output_at last, unequal stack, every head activation.
return model {
  name = "grad_rnn_relu_mse_last",
  input = 3, seq_len = 5, batch = 2,
  recurrent = { rnn(4, "relu"), rnn(3, "relu") },
  head = { dense(5, "relu"), dense(4, "sigmoid"), dense(2, "tanh") },
  loss = "mse", output_at = "last", precision = "f64",
}
