-- expect: :4: error: input must be a positive integer, got 0
return model {
  name = "m",
  input = 0,
  seq_len = 8, recurrent = { lstm(4) } }
