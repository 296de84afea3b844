-- expect: :4: error: unknown field "seqlen" (did you mean 'seq_len'?)
return model {
  name = "m", input = 3,
  seqlen = 8,
  recurrent = { lstm(4) } }
