-- expect: :6: error: the spec ran past the
-- (the instruction limit; on a loaded machine the deadline may come first)
-- A sort that never finishes its comparisons, whatever the order function answers.
local t = {}
for i = 1, 1 << 20 do t[i] = (i * 7919) % 1000 end
table.sort(t, function(a, b) return a ~= b end)
