-- ISA agreement (tests/test_isa.c) and bitwise thread agreement (tests/test_threads.c), f32:
-- lstm -> gru x mse x output_at all, batch 2, sizes that give several granules per thread on
-- every backend (129: a tail everywhere), heads 33 (tanh) and 5.
return model {
  name = "isa_threads_lstm_gru_f32",
  input = 20, seq_len = 6, batch = 2,
  recurrent = { lstm(129), gru(70) },
  head = { dense(33, "tanh"), dense(5) },
  loss = "mse", output_at = "all", precision = "f32",
  parallel = "split",
}
