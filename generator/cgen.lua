-- cgen.lua — small C text builders shared by the emit modules: joining lines, banners, struct
-- members, and the unrolled inner loops every kernel is made of.
local M = {}

function M.join(lines) return table.concat(lines, "\n") end

function M.shape_text(shape)
  local parts = {}
  for i, d in ipairs(shape) do parts[i] = tostring(d) end
  return "[" .. table.concat(parts, ", ") .. "]"
end

function M.banner(text)
  return "/* ==== " .. text .. " " .. string.rep("=", math.max(4, 90 - #text)) .. " */"
end

-- A loop over k in [0, K) whose body(pad, k_expr) is unrolled `unroll` times, the remainder
-- written out with constant indices; unroll >= K writes the whole loop out.
function M.unrolled(out, indent, K, unroll, body)
  local function plus(base, u) return u == 0 and base or (base .. " + " .. u) end
  if unroll >= K then
    for k = 0, K - 1 do body(indent, tostring(k)) end
    return
  end
  local main = K - K % unroll
  table.insert(out, string.format("%sfor (int k = 0; k < %d; k += %d) {", indent, main, unroll))
  for u = 0, unroll - 1 do body(indent .. "    ", plus("k", u)) end
  table.insert(out, indent .. "}")
  for k = main, K - 1 do body(indent, tostring(k)) end
end

-- A pointer to row `row` (a C expression; nil or "0" for the first) of the 2-D array member
-- `array` ([rows][cols] of `ctype`), formed from the whole array. `&a[0][0] + r * cols`, or `a[r]`
-- for a row that a kernel reads on from, points into one row only, and GCC reads an access past
-- it as an overflow (-Wstringop-overflow, -Warray-bounds), the more so once it has merged that
-- pointer with another of the same address. Generated code reaches every row of a 2-D member
-- through here, so no expression names a single row.
function M.row(ctype, array, row, cols)
  local base = string.format("(%s *)%s", ctype, array)
  if row == nil or row == "0" then return base end
  return string.format("(%s + (size_t)(%s) * %d)", base, row, cols)
end

-- One array member of a generated work or tape struct, its length rounded up to whole cache
-- lines (NNRT_ALIGNED_COUNT) so that the next member starts on a line of its own.
function M.array_field(out, real, name, size, comment)
  table.insert(out, string.format("    %s %s[NNRT_ALIGNED_COUNT(%s, %s)]; /* %s */", real, name, real, size, comment))
end

return M
