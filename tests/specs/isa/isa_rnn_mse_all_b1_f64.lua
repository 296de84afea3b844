-- ISA agreement (tests/test_isa.c), f64: rnn relu -> rnn tanh x mse x output_at all, batch 1.
-- Sizes for the tails of 8/4/2 lanes: input 7, hidden 129, 15, 3, heads 8 (tanh), 2 (sigmoid).
return model {
  name = "isa_rnn_mse_all_b1_f64",
  input = 7, seq_len = 4, batch = 1,
  recurrent = { rnn(129, "relu"), rnn(15, "tanh"), rnn(3, "tanh") },
  head = { dense(8, "tanh"), dense(2, "sigmoid") },
  loss = "mse", output_at = "all", precision = "f64",
}
