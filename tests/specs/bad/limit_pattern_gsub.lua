-- expect: :4: error: the spec ran past the
-- (the instruction limit; on a loaded machine the deadline may come first)
-- gsub with a function replacement: the matcher backtracks before the function is ever called.
local s = string.gsub(("ab"):rep(20), ("%w*"):rep(20) .. "c", function() return "" end)
