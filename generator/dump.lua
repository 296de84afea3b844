-- dump.lua — prints a pass's result (a Lua table) for `--dump=PASS`: sorted keys, one field a
-- line, a table seen before printed as a back-reference instead of again.
local M = {}

local function key_text(k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return k end
  return "[" .. (type(k) == "string" and string.format("%q", k) or tostring(k)) .. "]"
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do table.insert(keys, k) end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
    return type(a) < type(b)
  end)
  return keys
end

function M.text(value)
  local out, seen = {}, {}
  local function walk(v, indent, path)
    if type(v) ~= "table" then
      return type(v) == "string" and string.format("%q", v) or tostring(v)
    end
    if seen[v] then return "<same as " .. seen[v] .. ">" end
    seen[v] = path
    local lines = { "{" }
    for _, k in ipairs(sorted_keys(v)) do
      table.insert(lines, indent .. "  " .. key_text(k) .. " = " .. walk(v[k], indent .. "  ", path .. "." .. tostring(k)) .. ",")
    end
    table.insert(lines, indent .. "}")
    return table.concat(lines, "\n")
  end
  table.insert(out, walk(value, "", "root"))
  return table.concat(out, "\n") .. "\n"
end

return M
