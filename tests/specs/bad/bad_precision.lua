-- expect: :3: error: precision: unknown value "f16"; expected one of: f32, f64 (did you mean "f32"?)
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) },
  precision = "f16" }
