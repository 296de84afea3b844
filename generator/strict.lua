-- strict.lua — turns reading or writing an undeclared global into an error, so a typo in the
-- generator fails loudly instead of yielding nil.
local M = {}

function M.enable(env)
  setmetatable(env, {
    __newindex = function(_, name) error("assignment to undeclared global '" .. tostring(name) .. "'", 2) end,
    __index = function(_, name) error("read of undeclared global '" .. tostring(name) .. "'", 2) end,
  })
end

return M
