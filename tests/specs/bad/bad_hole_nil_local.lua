-- expect: :4: error: recurrent[2] is nil (a misspelt or undefined variable?); the list holds 3 entries
-- A local that holds nil leaves a hole in the list.
local second
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(8), second, lstm(4) } }
