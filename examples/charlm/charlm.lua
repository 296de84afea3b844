-- examples/charlm/charlm.lua — a character-level language model: at every step, one byte of text
-- in (one-hot), the logits of the next byte out. The vocabulary is the distinct bytes of the
-- training text: 76 for the GPL-3 (charlm_train checks that the text fits).
return model {
  name = "charlm",
  input = 76,               -- one-hot over the vocabulary
  seq_len = 32,             -- chunk length of truncated BPTT: the state crosses chunks, gradients do not
  batch = 8,                -- 8 streams, each through its own stretch of the text
  recurrent = { gru(128) },
  head = { dense(76) },     -- logits; softmax belongs to the loss
  loss = "cross_entropy",
  output_at = "all",
  precision = "f32",
}
