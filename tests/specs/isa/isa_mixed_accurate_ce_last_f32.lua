-- ISA agreement (tests/test_isa.c), f32, math = "accurate" (SLEEF's 1.0-ulp tanh):
-- a mixed stack lstm -> gru -> rnn relu x cross_entropy x output_at last, batch 5.
-- Sizes: input 3, hidden 7, 9, 17, heads 16 (sigmoid), 33 (relu), 3 (linear, the classes).
return model {
  name = "isa_mixed_accurate_ce_last_f32",
  input = 3, seq_len = 4, batch = 5,
  recurrent = { lstm(7), gru(9), rnn(17, "relu") },
  head = { dense(16, "sigmoid"), dense(33, "relu"), dense(3) },
  loss = "cross_entropy", output_at = "last", precision = "f32", math = "accurate",
  parallel = "wavefront", -- the multi-core forward runs the layers side by side (tests/test_threads.c)
}
