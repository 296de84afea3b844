-- expect: :4: error: the spec ran past the
-- (the instruction limit; on a loaded machine the deadline may come first)
-- Backtracking: Lua's C matcher would try every split of 40 a's among 40 a* (about 10^23 ways).
string.find(("a"):rep(40), ("a*"):rep(40) .. "b")
