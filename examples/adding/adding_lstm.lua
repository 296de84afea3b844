-- examples/adding/adding_lstm.lua — the adding problem (many-to-one regression) with one lstm layer.
-- Input: 2 channels per step, a random value in [0, 1) and a marker (1 at two steps, else 0);
-- target: the sum of the two marked values. Sizes are compile-time constants, but the generated
-- forward takes any T up to seq_len, so one model per cell serves every length. adding_rnn.lua, adding_gru.lua and adding_lstm.lua differ
-- only in the cell.
local HIDDEN = 32
return model {
  name = "adding_lstm",
  input = 2,
  seq_len = 200,            -- the longest T the trainer accepts (--lengths)
  batch = 32,               -- sequences per training step
  recurrent = { lstm(HIDDEN) },
  head = { dense(1) },
  loss = "mse",
  output_at = "last",       -- one prediction per sequence, after its last step
  precision = "f32",
}
