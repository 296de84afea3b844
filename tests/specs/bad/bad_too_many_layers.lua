-- expect: error: recurrent holds 17 layers; at most 16 are supported
local layers = {}
for i = 1, 17 do layers[i] = gru(2) end
return model { name = "m", input = 3, seq_len = 8, recurrent = layers }
