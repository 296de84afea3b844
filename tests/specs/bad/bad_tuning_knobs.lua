-- expect: :10: error: tuning.layers[2].recurrent.unroll must be at most 8, got 16
-- expect: :10: error: tuning.layers[2]: unknown field "recurent" (did you mean 'recurrent'?); expected one of: input_seq, input_step, recurrent
-- expect: :9: error: tuning.layers[1].input_step.rb must be at most 2, got 4
-- expect: :9: error: tuning.layers[1].input_step: unknown field "block"; expected one of: rb, jb, unroll
-- expect: :13: error: tuning.heads[1].seq.jb must be a positive integer, got 0
return model {
  name = "m", input = 3, seq_len = 8, batch = 2,
  recurrent = { lstm(4), gru(8) }, head = { dense(2) },
  tuning = { layers = { { input_step = { rb = 4, block = 2 } },
                        { recurrent = { unroll = 16 }, recurent = {} } },
    heads = {
      {
        seq = { jb = 0 } },
    },
  },
}
