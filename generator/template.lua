-- template.lua — strict substitution into C templates (after Pallene's render).
-- A template is real C with ${name} insertion points. Every variable must be used, every
-- insertion point must be given a string: anything else is an error naming the template and line.
local M = {}

function M.render(template_name, text, vars)
  local used = {}
  local line = 1
  local out = text:gsub("()%${([%w_]+)}", function(position, name)
    local value = vars[name]
    if type(value) ~= "string" then
      local _, newlines = text:sub(1, position):gsub("\n", "")
      error(string.format("%s:%d: insertion point ${%s} got %s, expected a string",
        template_name, line + newlines, name, type(value)), 0)
    end
    used[name] = true
    return value
  end)
  for name in pairs(vars) do
    if not used[name] then
      error(string.format("%s: variable '%s' is given but never used", template_name, name), 0)
    end
  end
  return out
end

return M
