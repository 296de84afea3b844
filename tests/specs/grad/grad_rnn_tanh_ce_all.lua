-- Finite-difference gradient check (f64): rnn_tanh x cross_entropy x output_at all, unequal stack, every head activation.
return model {
  name = "grad_rnn_tanh_ce_all",
  input = 3, seq_len = 5, batch = 2,
  recurrent = { rnn(4, "tanh"), rnn(3, "tanh") },
  head = { dense(5, "tanh"), dense(3) },
  loss = "cross_entropy", output_at = "all", precision = "f64",
}
