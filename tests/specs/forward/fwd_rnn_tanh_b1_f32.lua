-- Batch 1 (the latency case), two unequal layers and a short head.
return model {
  name = "fwd_rnn_tanh_b1_f32",
  input = 5,
  seq_len = 9,
  batch = 1,
  recurrent = { rnn(7, "tanh"), rnn(3, "tanh") },
  head = { dense(4, "tanh"), dense(2) },
  loss = "mse",
  output_at = "all",
  precision = "f32",
}
