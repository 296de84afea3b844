-- expect: :5: error: layer 1 (lstm): size must be a positive integer, got 3.5
return model {
  name = "m", input = 3, seq_len = 8,
  recurrent = {
    lstm(3.5),
  },
}
