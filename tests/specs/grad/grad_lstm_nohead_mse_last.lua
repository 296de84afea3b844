-- Finite-difference gradient check (f64): no head, the top layer's h is the output.
return model { name = "grad_lstm_nohead_mse_last", input = 2, seq_len = 4, batch = 3,
  recurrent = { lstm(3) }, loss = "mse", output_at = "last", precision = "f64" }
