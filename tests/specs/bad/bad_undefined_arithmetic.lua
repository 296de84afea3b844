-- expect: :3: error: size is not defined
-- An undefined name in arithmetic stops the spec there, with its own message.
local hidden = size * 2
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(hidden) } }
