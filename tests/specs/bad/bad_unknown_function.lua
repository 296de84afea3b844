-- expect: :5: error: unknown function embedding; the constructors are rnn, gru, lstm, dense and model
-- expect: :6: error: loss: unknown value "mae"
-- expect: : 2 errors
-- An unknown constructor is reported with every other problem of the spec.
return model { name = "m", input = 3, seq_len = 8, recurrent = { embedding(50, 3), lstm(4) },
  loss = "mae" }
