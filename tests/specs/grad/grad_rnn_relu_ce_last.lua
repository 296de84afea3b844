-- Finite-difference gradient check (f64): rnn_relu x cross_entropy x output_at last, unequal stack, every head activation.
return model {
  name = "grad_rnn_relu_ce_last",
  input = 3, seq_len = 5, batch = 2,
  recurrent = { rnn(4, "relu"), rnn(3, "relu") },
  head = { dense(5, "tanh"), dense(3) },
  loss = "cross_entropy", output_at = "last", precision = "f64",
}
