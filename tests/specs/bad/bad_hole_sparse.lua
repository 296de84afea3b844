-- expect: :3: error: head[2] is nil (a misspelt or undefined variable?); the list holds 3 entries
-- Explicit indices with a gap.
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) }, head = { [1] = dense(3), [3] = dense(2) } }
