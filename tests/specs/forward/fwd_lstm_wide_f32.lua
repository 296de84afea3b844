-- Wider layers (16, 33) so that full SIMD vectors and remainders both occur, batch 3.
return model {
  name = "fwd_lstm_wide_f32",
  input = 13,
  seq_len = 9,
  batch = 3,
  recurrent = { lstm(16), lstm(33) },
  head = { dense(17, "tanh"), dense(8) },
  loss = "mse",
  output_at = "all",
  precision = "f32",
}
