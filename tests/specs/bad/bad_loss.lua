-- expect: :3: error: loss: unknown value "mae"; expected one of: mse, cross_entropy, bce (did you mean "mse"?)
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) },
  loss = "mae" }
