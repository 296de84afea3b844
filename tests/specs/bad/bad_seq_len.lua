-- expect: :3: error: seq_len must be at most 1000000, got 2000000
return model { name = "m", input = 3,
  seq_len = 2000000, recurrent = { lstm(4) } }
