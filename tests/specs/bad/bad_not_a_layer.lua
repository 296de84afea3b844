-- expect: :3: error: recurrent[2] must be rnn(H), gru(H) or lstm(H), got dense(...)
return model { name = "m", input = 3, seq_len = 8,
  recurrent = { lstm(4), dense(4) } }
