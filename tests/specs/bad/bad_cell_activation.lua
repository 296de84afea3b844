-- expect: :3: error: layer 1 (rnn): activation: unknown value "sigmoid"; expected one of: tanh, relu
return model { name = "m", input = 3, seq_len = 8,
  recurrent = { rnn(4, "sigmoid") } }
