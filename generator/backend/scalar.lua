-- backend/scalar.lua — the portable scalar backend: plain C11, one lane.
-- A backend is data plus small formatters behind one interface (see backend/init.lua): its
-- name, lanes, the compiler flags and compile-time guard it needs, an estimate of the code size
-- of one multiply-add, and formatters that return C text.
local M = {
  name = "scalar",
  lanes = 1,
  cflags = "",
  guard = "", -- nothing to check: any C11 compiler runs it
  bytes_per_fma = 8, -- a load and a multiply-add on x86-64 (mulss/addss with a memory operand)
}

local TYPES = {
  f32 = { real = "float", suffix = "f", exp = "expf", tanh = "tanhf" },
  f64 = { real = "double", suffix = "", exp = "exp", tanh = "tanh" },
}

function M.types(precision) return TYPES[precision] end

-- A floating literal of the model's type: literal("f32", 1) -> "1.0f"
function M.literal(precision, value)
  return string.format("%.1f", value) .. TYPES[precision].suffix
end

-- Activation helpers, emitted once per model as static inline functions named prefix_<act>.
function M.math_helpers(prefix, precision)
  local t = TYPES[precision]
  local one, zero = M.literal(precision, 1), M.literal(precision, 0)
  return table.concat({
    string.format("static inline %s %s_sigmoid(%s v) { return %s / (%s + %s(-v)); }",
      t.real, prefix, t.real, one, one, t.exp),
    string.format("static inline %s %s_tanh(%s v) { return %s(v); }", t.real, prefix, t.real, t.tanh),
    string.format("static inline %s %s_relu(%s v) { return v > %s ? v : %s; }",
      t.real, prefix, t.real, zero, zero),
  }, "\n")
end

-- The expression applying activation `act` (linear, relu, tanh, sigmoid) to `v`.
function M.activate(prefix, act, v)
  if act == "linear" then return v end
  return string.format("%s_%s(%s)", prefix, act, v)
end

-- acc += w[k] * v[k]
function M.fma(acc, w, v) return string.format("%s += %s * %s;", acc, w, v) end

return M
