-- expect: :7: error: layer 2 (gru): size must be a positive integer, got -4
return model {
  name = "m",
  input = 3,
  seq_len = 8,
  recurrent = { gru(8),
                gru(-4) },
}
