-- expect: :5: error: unknown field "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..."; the fields are
-- A 3 MiB field name: no hint search over it, and the message quotes its first characters.
local fields = { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) } }
fields[("x"):rep(3 << 20)] = 1
return model(fields)
