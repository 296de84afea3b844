-- backend/multi.lua — the x86 variants in one file, chosen at run time (__builtin_cpu_supports),
-- for applications that ship one binary to many machines. The file compiles without -m flags:
-- each variant's functions carry their ISA as a target attribute. Best first; scalar always runs.
local avx512 = require("rnnc.backend.avx512")

local M = setmetatable({
  name = "multi", cflags = "", libs = "-lsleef",
  variants = { avx512, require("rnnc.backend.avx2"), require("rnnc.backend.sse4"), (require("rnnc.backend.scalar")) },
}, { __index = avx512 }) -- the plan shown by `rnnc info` is the widest variant's

return M
