-- expect: :4: error: the spec ran past the
-- (the instruction limit; on a loaded machine the deadline may come first)
-- gmatch restarts the backtracking match at every position.
for _ in ("x"):rep(30):gmatch(("x?"):rep(30) .. ("x"):rep(30) .. "y") do end
