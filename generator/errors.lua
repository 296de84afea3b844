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

-- Raises one user error: every problem as FILE:LINE: error: ..., in line order, each once, at
-- most max_reported of them, then the count. The path loses its control characters (one line each).
function M.report(path, problems, max_reported)
  max_reported = max_reported or math.huge
  table.sort(problems, function(a, b)
    if (a.line or 0) ~= (b.line or 0) then return (a.line or 0) < (b.line or 0) end
    return a.message < b.message
  end)
  local shown, out, count = tostring(path):gsub("%c", "?"), {}, 0
  local previous
  for _, p in ipairs(problems) do
    local text = string.format("%s:%s error: %s", shown, p.line and (p.line .. ":") or "", p.message)
    if text ~= previous then
      count = count + 1
      if count <= max_reported then table.insert(out, text) end
    end
    previous = text
  end
  if count > max_reported then table.insert(out, string.format("%s: ... %d more not shown", shown, count - max_reported)) end
  table.insert(out, string.format("%s: %d error%s", shown, count, count == 1 and "" or "s"))
  M.raise(table.concat(out, "\n"))
end

-- A usage error (unknown command or option): exit 2.
function M.usage(message)
  error(M.new("rnnc: " .. message .. "\nTry 'rnnc --help' for more information.", 2), 0)
end

return M
