-- examples/sine/sine.lua — many-to-many regression: predict the next sample of a sine wave.
return model {
  name = "sine",            -- C prefix
  input = 1,                -- features per timestep
  seq_len = 64,             -- maximum T
  batch = 1,                -- sequences per call
  recurrent = { lstm(32), lstm(32) },
  head = { dense(16, "tanh"), dense(1) },
  loss = "mse",
  output_at = "all",
  precision = "f32",
}
