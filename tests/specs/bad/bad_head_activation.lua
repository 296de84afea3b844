-- expect: :3: error: head layer 1 (dense): activation: unknown value "tahn"; expected one of: linear, relu, tanh, sigmoid (did you mean "tanh"?)
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) },
  head = { dense(4, "tahn") } }
