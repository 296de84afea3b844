-- examples/classify/classify.lua — many-to-one classification: which of three signal shapes
-- (sine, square, sawtooth) does a noisy 3-channel sequence hold?
return model {
  name = "classify",
  input = 3,
  seq_len = 48,
  batch = 4,                  -- four sequences per call
  recurrent = { gru(24) },
  head = { dense(3) },        -- logits of the three classes; softmax belongs to the loss
  loss = "cross_entropy",
  output_at = "last",
  precision = "f32",
}
