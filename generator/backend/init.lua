-- backend/init.lua — chooses an ISA backend. Each backend module (backend/<isa>.lua) is data and
-- formatters with the same fields as backend/scalar.lua.
local errors = require("rnnc.errors")

local M = {}

M.ISAS = { "scalar", "sse4", "avx2", "avx512", "neon", "multi", "native" }
M.AVAILABLE = { scalar = true, sse4 = true, avx2 = true, avx512 = true, neon = true, multi = true }

-- The SIMD backends this build machine runs, best first.
function M.runnable(host)
  local order = { { "avx512", "avx512f" }, { "avx2", "avx2" }, { "sse4", "sse4.1" }, { "neon", "neon" } }
  local list = {}
  for _, candidate in ipairs(order) do
    if M.AVAILABLE[candidate[1]] and host.cpu_supports(candidate[2]) then table.insert(list, candidate[1]) end
  end
  return list
end

-- The best backend this build machine supports among those rnnc has.
function M.native(host)
  return M.runnable(host)[1] or "scalar"
end

function M.load(host, isa)
  local known = false
  for _, name in ipairs(M.ISAS) do known = known or name == isa end
  if not known then
    errors.usage(string.format("unknown ISA '%s'; expected one of: %s", isa, table.concat(M.ISAS, ", ")))
  end
  if isa == "native" then isa = M.native(host) end
  if not M.AVAILABLE[isa] then
    errors.usage(string.format("the %s backend is not implemented yet; available: scalar, native", isa))
  end
  return require("rnnc.backend." .. isa)
end

return M
