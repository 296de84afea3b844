-- expect: :4: error: the spec ran past the
-- (the instruction limit; on a loaded machine the deadline may come first)
-- The same backtracking through the method syntax, which goes through the string metatable.
local s = ("a"):rep(40) s:match(("a-"):rep(40) .. "$b")
