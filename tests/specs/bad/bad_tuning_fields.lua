-- expect: :7: error: tuning: unknown field "layer" (did you mean 'layers'?); expected one of: isa, layers, heads
-- expect: :7: error: tuning.isa: unknown value "avx3"; expected one of: scalar, sse4, avx2, avx512, neon (did you mean "avx2"?)
-- expect: : 2 errors
return model {
  name = "m", input = 3, seq_len = 8,
  recurrent = { lstm(4), lstm(4) },
  tuning = { isa = "avx3", layer = {} },
}
