-- expect: :5: error: input must be a positive integer, got -3
-- expect: :7: error: layer 1 (gru): size must be a positive integer, got 0
-- expect: :8: error: unknown field "heads" (did you mean 'head'?)
-- expect: 3 errors
return model { name = "m", seq_len = 8, input = -3,
  recurrent = {
    gru(0) },
  heads = { dense(2) } }
