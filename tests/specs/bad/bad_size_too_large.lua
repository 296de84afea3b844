-- expect: :3: error: layer 1 (rnn): size must be at most 4096, got 5000
return model { name = "m", input = 3, seq_len = 8,
  recurrent = { rnn(5000) } }
