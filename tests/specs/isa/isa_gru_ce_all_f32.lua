-- ISA agreement (tests/test_isa.c), f32: gru x cross_entropy x output_at all, batch 2.
-- Sizes: input 1, hidden 65, 15, heads 31 (tanh), 7 (linear, the classes).
return model {
  name = "isa_gru_ce_all_f32",
  input = 1, seq_len = 4, batch = 2,
  recurrent = { gru(65), gru(15) },
  head = { dense(31, "tanh"), dense(7) },
  loss = "cross_entropy", output_at = "all", precision = "f32",
  parallel = "split", -- the multi-core entry points share every layer-step (tests/test_threads.c)
}
