-- cgen.lua — small C text builders shared by the emit modules: joining lines, banners, and the
-- unrolled inner loops every kernel is made of.
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

-- sum_k w_a[k] * v[k] into each accumulator a, all accumulators per k (so the gates of a unit
-- advance together).  accs: list of { acc = "acc_i", w = "w_i" }.
function M.dot(out, indent, accs, v, K, unroll, backend)
  M.unrolled(out, indent, K, unroll, function(pad, k)
    for _, a in ipairs(accs) do
      table.insert(out, pad .. backend.fma(a.acc, a.w .. "[" .. k .. "]", v .. "[" .. k .. "]"))
    end
  end)
end

-- y[k] += s * w[k] for k in [0, K): the transposed product, one weight row at a time.
function M.axpy(out, indent, y, s, w, K, unroll, backend)
  M.unrolled(out, indent, K, unroll, function(pad, k)
    table.insert(out, pad .. backend.fma(y .. "[" .. k .. "]", s, w .. "[" .. k .. "]"))
  end)
end

return M
