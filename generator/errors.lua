-- errors.lua — user errors: bad specs, bad files, bad usage. They are tables with __tostring and
-- an exit code, so the host prints them plainly; a string error is a bug in rnnc and gets a
-- traceback (see rnnc.c).
local M = {}

local UserError = {}
UserError.__index = UserError
UserError.__tostring = function(e) return e.message end

function M.new(message, exit_code)
  return setmetatable({ message = message, exit_code = exit_code or 1 }, UserError)
end

function M.is_user_error(value)
  return getmetatable(value) == UserError
end

-- An error in the user's input (spec, files): exit 1.
function M.raise(message)
  error(M.new(message, 1), 0)
end

-- A usage error (unknown command or option): exit 2.
function M.usage(message)
  error(M.new("rnnc: " .. message .. "\nTry 'rnnc --help' for more information.", 2), 0)
end

return M
