-- expect: :4: error: attempt to call a nil value (local 'f')
-- the string metatable reaches the real string library; string.dump must still not be there
local f = ("x").dump
return f(function() end)
