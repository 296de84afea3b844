-- expect: :3: error: loss bce takes logits (it applies the sigmoid itself): the last head layer must be linear, got sigmoid
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) },
  head = { dense(1, "sigmoid") }, loss = "bce" }
