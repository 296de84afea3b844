-- ISA agreement (tests/test_isa.c), f64: gru x bce x output_at last, batch 3.
-- Sizes: input 33, hidden 16, 1, 9, heads 65 (relu), 6 (linear: BCEWithLogits).
return model {
  name = "isa_gru_bce_last_f64",
  input = 33, seq_len = 5, batch = 3,
  recurrent = { gru(16), gru(1), gru(9) },
  head = { dense(65, "relu"), dense(6) },
  loss = "bce", output_at = "last", precision = "f64",
  parallel = "split", -- the multi-core entry points share every layer-step (tests/test_threads.c)
}
