-- backend/vector.lua — builds an ISA backend from a table of intrinsic templates, so each ISA
-- file is data (LuaJIT's DynASM loads its architecture backends the same way). Every formatter
-- returns the real intrinsic text, so the emitted C reads as what gdb and objdump show.
--
-- Interface of a backend B (all formatters take the precision first, "f32" or "f64"):
--   B.name, B.cflags, B.libs, B.registers, B.bytes_per_fma
--   B.target (GCC target attribute of the ISA), B.cpu_feature (__builtin_cpu_supports names)
--   B.lanes(p), B.vtype(p), B.real(p)
--   B.zero(p), B.set1(p, x), B.load(p, addr), B.store(p, addr, v)           (store is a statement)
--   B.load_tail(p, addr, n, prefix), B.store_tail(p, addr, v, n, prefix)
--                             n < lanes valid elements, no access past them (prefix: the model's helpers)
--   B.fma(p, a, b, c) = a*b + c, B.add/sub/mul/div/max(p, a, b), B.positive(p, a, b) = b where a > 0 else 0
--   B.exp(p, v), B.tanh(p, v, tier)    tier "accurate" (SLEEF's 1.0-ulp tanh) or "fast" (its 3.5-ulp tanh)
--   B.preamble(prefix, p, tier): includes, the compile-time ISA guard and the helper functions
local M = {}

-- "%1 + %2" with the arguments in place.
local function fmt(template, ...)
  local args = { ... }
  return (template:gsub("%%(%d)", function(i) return args[tonumber(i)] end))
end

function M.define(isa)
  local B = { name = isa.name, cflags = isa.cflags, libs = isa.libs, registers = isa.registers,
    bytes_per_fma = isa.bytes_per_fma, target = isa.target, cpu_feature = isa.cpu_feature }
  local function t(p) return isa[p] end
  function B.lanes(p) return t(p).lanes end
  function B.vtype(p) return t(p).vtype end
  function B.real(p) return p == "f64" and "double" or "float" end
  function B.zero(p) return t(p).zero end
  function B.set1(p, x) return fmt(t(p).set1, x) end
  function B.load(p, addr) return fmt(t(p).load, addr) end
  function B.store(p, addr, v) return fmt(t(p).store, addr, v) end
  function B.fma(p, a, b, c) return fmt(t(p).fma, a, b, c) end
  for _, op in ipairs({ "add", "sub", "mul", "div", "max" }) do
    B[op] = function(p, a, b) return fmt(t(p)[op], a, b) end
  end
  function B.positive(p, a, b) return fmt(t(p).positive, a, b) end
  function B.load_tail(p, addr, n, prefix) return isa.load_tail(p, t(p), addr, n, prefix) end
  function B.store_tail(p, addr, v, n, prefix) return isa.store_tail(p, t(p), addr, v, n, prefix) end
  function B.exp(p, v) return fmt(t(p).exp, v) end
  function B.tanh(p, v, tier) return fmt(tier == "fast" and t(p).tanh_fast or t(p).tanh, v) end
  -- multi: one of several variants in a file compiled without -m flags (function target
  -- attributes instead): no guard, and the SLEEF functions declared here, since sleef.h only
  -- declares those of the ISAs the compiler flags enable.
  function B.preamble(prefix, p, tier, multi)
    local T = t(p)
    local vt, real = T.vtype, B.real(p)
    local one = B.set1(p, p == "f64" and "1.0" or "1.0f")
    local lines = { isa.guard, isa.includes, "" }
    if multi then
      lines = {}
      for _, key in ipairs({ "exp", "tanh", "tanh_fast" }) do
        local fn = T[key]:match("^(Sleef_[%w_]+)%(")
        if fn then table.insert(lines, string.format("%s %s(%s);", vt, fn, vt)) end
      end
    end
    table.insert(lines, string.format("typedef %s %s_vec; /* %d %s lanes */", vt, prefix, T.lanes, real))
    -- sigmoid(v) = 1 / (1 + exp(-v)) in both tiers: within 2.5 ulp (measured over every float), and
    -- cheaper than 0.5 + 0.5 tanh(v/2) even through the 3.5-ulp tanh, which also loses all
    -- relative accuracy for v below about -17.
    table.insert(lines, string.format("static inline %s_vec %s_sigmoid(%s_vec v) { return %s; }", prefix, prefix, prefix,
      B.div(p, one, B.add(p, one, B.exp(p, B.sub(p, B.zero(p), "v"))))))
    table.insert(lines, string.format("static inline %s_vec %s_tanh(%s_vec v) { return %s; }", prefix, prefix, prefix, B.tanh(p, "v", tier)))
    table.insert(lines, string.format("static inline %s_vec %s_relu(%s_vec v) { return %s; }", prefix, prefix, prefix, B.max(p, "v", B.zero(p))))
    if isa.tail_helpers then table.insert(lines, isa.tail_helpers(prefix, p, T)) end
    return table.concat(lines, "\n")
  end
  return B
end

-- Tails through a small zeroed buffer: for ISAs without masked loads and stores.
function M.buffered_tails(prefix, p, T)
  local real = p == "f64" and "double" or "float"
  return table.concat({
    string.format("static inline %s %s_load_tail(const %s *p, int n) { %s t[%d] = {0}; memcpy(t, p, (size_t)n * sizeof *t); return %s; }",
      T.vtype, prefix, real, real, T.lanes, fmt(T.load, "t")),
    string.format("static inline void %s_store_tail(%s *p, %s v, int n) { %s t[%d]; %s; memcpy(p, t, (size_t)n * sizeof *t); }",
      prefix, real, T.vtype, real, T.lanes, fmt(T.store, "t", "v")),
  }, "\n")
end

function M.buffered_load_tail(_, _, addr, n, prefix) return string.format("%s_load_tail(%s, %d)", prefix, addr, n) end
function M.buffered_store_tail(_, _, addr, v, n, prefix) return string.format("%s_store_tail(%s, %s, %d)", prefix, addr, v, n) end

return M
