-- Finite-difference gradient check (f64): no head, many-to-many, batch 1.
return model { name = "grad_gru_nohead_mse_all", input = 2, seq_len = 4, batch = 1,
  recurrent = { gru(2), gru(3) }, loss = "mse", output_at = "all", precision = "f64" }
