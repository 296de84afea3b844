-- expect: :3: error: model { ... } is called more than once
local a = model { name = "a", input = 3, seq_len = 8, recurrent = { lstm(4) } }
return model { name = "b", input = 3, seq_len = 8, recurrent = { lstm(4) } }
