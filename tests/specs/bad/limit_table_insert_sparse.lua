-- expect: :6: error: the spec ran past the
-- (the instruction limit; on a loaded machine the deadline may come first)
-- 54 entries whose length (#t) is 1 << 52: table.insert shifts every element from #t down.
local t = {}
for i = 52, 0, -1 do t[1 << i] = 1 end t[3] = 1
table.insert(t, 1, 0)
