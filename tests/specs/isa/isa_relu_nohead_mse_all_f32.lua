-- ISA agreement (tests/test_isa.c), f32: rnn relu, no head x mse x output_at all, batch 2.
-- Sizes: input 8, hidden 31, 129, 1 (the output).
return model {
  name = "isa_relu_nohead_mse_all_f32",
  input = 8, seq_len = 3, batch = 2,
  recurrent = { rnn(31, "relu"), rnn(129, "relu"), rnn(1, "relu") },
  head = {},
  loss = "mse", output_at = "all", precision = "f32",
  parallel = "wavefront", -- the multi-core forward runs the layers side by side (tests/test_threads.c)
}
