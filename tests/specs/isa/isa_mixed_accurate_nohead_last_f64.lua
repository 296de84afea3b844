-- ISA agreement (tests/test_isa.c), f64, math = "accurate": a mixed stack gru -> lstm -> rnn relu ->
-- rnn tanh, no head x mse x output_at last, batch 4.
-- Sizes: input 63, hidden 33, 65, 63, 7 (the output).
return model {
  name = "isa_mixed_accurate_nohead_last_f64",
  input = 63, seq_len = 3, batch = 4,
  recurrent = { gru(33), lstm(65), rnn(63, "relu"), rnn(7, "tanh") },
  head = {},
  loss = "mse", output_at = "last", precision = "f64", math = "accurate",
}
