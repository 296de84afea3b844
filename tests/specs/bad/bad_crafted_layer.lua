-- expect: :4: error: recurrent[1] must be rnn(H), gru(H) or lstm(H), got a table
-- expect: :5: error: head[1] must be dense(size [, activation]), got a table
-- A table shaped like a layer is not a layer; nor is a layer the spec altered after the fact.
return model { name = "m", input = 3, seq_len = 8, recurrent = { { kind = "x", constructor = {} } },
  head = { { kind = "dense", constructor = "dense", args = 5, line = "x" } } }
