-- expect: :6: error: the spec ran past the
-- (the instruction limit; on a loaded machine the deadline may come first)
-- A plain search costs the product of the lengths: 2^24 x 2^20 comparisons in C.
local s = ("a"):rep(1 << 24)
local needle = ("a"):rep(1 << 20) .. "b"
s:find(needle, 1, true)
