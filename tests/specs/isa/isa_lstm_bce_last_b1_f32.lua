-- ISA agreement (tests/test_isa.c), f32: lstm x bce x output_at last, batch 1.
-- Sizes: input 129, hidden 16, 63, heads 12 (relu), 1 (linear: BCEWithLogits).
return model {
  name = "isa_lstm_bce_last_b1_f32",
  input = 129, seq_len = 3, batch = 1,
  recurrent = { lstm(16), lstm(63) },
  head = { dense(12, "relu"), dense(1) },
  loss = "bce", output_at = "last", precision = "f32",
  parallel = "split", -- the multi-core entry points share every layer-step (tests/test_threads.c)
}
