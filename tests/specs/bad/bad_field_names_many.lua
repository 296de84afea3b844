-- expect: :8: error: 199950 more unknown fields
-- expect: :8: error: unknown field "field1"; the fields are:
-- expect: :8: error: unknown field "field100"; the fields are:
-- expect: : 51 errors
-- 200,000 unknown fields: 50 are worded (each hint and line costs a bounded amount), then a count.
local fields = { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) } }
for i = 1, 200000 do fields["field" .. i] = i end
return model(fields)
