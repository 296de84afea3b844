-- A spec may compute its layers with the pure helpers: loops, math, string, table.
local sizes = {}
for i = 1, 3 do sizes[i] = math.floor(2 ^ (i + 2)) end -- 8, 16, 32
local layers = {}
for i, h in ipairs(sizes) do table.insert(layers, i % 2 == 1 and gru(h) or rnn(h, "relu")) end
return model {
  name = string.format("helpers_%d", #layers),
  input = 4, seq_len = 16, batch = 3,
  recurrent = layers,
  head = { dense(8, "relu"), dense(3) },
  loss = "cross_entropy", output_at = "last", precision = "f64",
}
