-- Finite-difference gradient check (f64): lstm x cross_entropy x output_at last, unequal stack, every head activation.
return model {
  name = "grad_lstm_ce_last",
  input = 3, seq_len = 5, batch = 2,
  recurrent = { lstm(4), lstm(3) },
  head = { dense(5, "tanh"), dense(3) },
  loss = "cross_entropy", output_at = "last", precision = "f64",
}
