-- ISA agreement (tests/test_isa.c), f32: rnn tanh x mse x output_at all, batch 3.
-- Sizes for the tails of 16/8/4 lanes: input 17, hidden 33, 8, 3, heads 9 (relu), 6 (sigmoid), 2.
return model {
  name = "isa_rnn_tanh_mse_all_f32",
  input = 17, seq_len = 5, batch = 3,
  recurrent = { rnn(33, "tanh"), rnn(8, "tanh"), rnn(3, "tanh") },
  head = { dense(9, "relu"), dense(6, "sigmoid"), dense(2) },
  loss = "mse", output_at = "all", precision = "f32",
  parallel = "split", -- the multi-core entry points share every layer-step (tests/test_threads.c)
}
