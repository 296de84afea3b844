-- backend/scalar.lua — the portable scalar backend: plain C11, one lane, libm for exp and tanh.
-- Same interface as the SIMD backends (see backend/vector.lua): the kernels are written once.
local vector = require("rnnc.backend.vector")

local function table_for(real, suffix, libm)
  local zero = "0.0" .. suffix
  return {
    lanes = 1, vtype = real, zero = zero, set1 = "(%1)",
    load = "*(%1)", store = "*(%1) = %2", fma = "(%1) * (%2) + (%3)",
    add = "(%1) + (%2)", sub = "(%1) - (%2)", mul = "(%1) * (%2)", div = "(%1) / (%2)",
    max = "fmax" .. libm .. "(%1, %2)", positive = "((%1) > " .. zero .. " ? (%2) : " .. zero .. ")",
    exp = "exp" .. libm .. "(%1)", tanh = "tanh" .. libm .. "(%1)", tanh_fast = "tanh" .. libm .. "(%1)",
  }
end

return vector.define {
  name = "scalar", cflags = "", libs = "", registers = 16, bytes_per_fma = 8,
  guard = "/* scalar: any C11 compiler */",
  includes = "#include <math.h>",
  f32 = table_for("float", "f", "f"),
  f64 = table_for("double", "", ""),
  load_tail = function() error("the scalar backend has no tails") end,
  store_tail = function() error("the scalar backend has no tails") end,
}
