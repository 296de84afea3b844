-- expect: :3: error: unknown field "[%"; the fields are: name,
-- Field names are data: never part of a pattern (they are looked up in the source's text).
return model { name = "m", input = 3, seq_len = 8, ["[%"] = 1, ["%f[%w"] = 2, recurrent = { lstm(4) } }
