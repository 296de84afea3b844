-- expect: :4: error: loss cross_entropy needs at least 2 outputs (classes), the model has 1
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) },
  head = { dense(1) },
  loss = "cross_entropy" }
