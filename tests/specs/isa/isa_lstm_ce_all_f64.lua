-- ISA agreement (tests/test_isa.c), f64: lstm x cross_entropy x output_at all, batch 2.
-- Sizes: input 15, hidden 31, 17, 8, heads 63 (sigmoid), 3 (linear, the classes).
return model {
  name = "isa_lstm_ce_all_f64",
  input = 15, seq_len = 4, batch = 2,
  recurrent = { lstm(31), lstm(17), lstm(8) },
  head = { dense(63, "sigmoid"), dense(3) },
  loss = "cross_entropy", output_at = "all", precision = "f64",
  parallel = "wavefront", -- the multi-core forward runs the layers side by side (tests/test_threads.c)
}
