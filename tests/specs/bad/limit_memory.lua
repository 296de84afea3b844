-- expect: error: the spec used more memory than the limit
local t = {}
for i = 1, 100 do t[i] = string.rep("x", 1 << 20) .. i end
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) } }
