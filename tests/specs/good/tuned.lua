-- A spec with code-generation knobs (what rnnc tune writes): partial, any ISA.
return model {
  name = "tuned", input = 3, seq_len = 8, batch = 2,
  recurrent = { lstm(4), gru(8) }, head = { dense(2) },
  tuning = {
    layers = { { recurrent = { jb = 1, unroll = 2 } }, { input_seq = { rb = 2 }, input_step = { rb = 2, jb = 1 } } },
    heads = { { step = { unroll = 8 } } },
  },
}
