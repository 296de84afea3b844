-- kernels.lua — the vector kernels every model is made of, written once against the backend
-- interface (backend/vector.lua) and specialised to their sizes. With the scalar backend a
-- vector is one lane and the same kernels come out as plain C.
--
-- Layouts. V = lanes. A layer of H units is handled in NB = ceil(H/V) blocks of V units; internal
-- buffers pad each gate's H values to Hp = NB*V ("padded gate-major": row[g*Hp + j]). Buffers the
-- user sees (x, y, the state, canonical parameters) are unpadded: the last block of a row there
-- is a tail of H - (NB-1)*V lanes, loaded and stored without touching memory past it.
--
-- Forward weights are packed into panels: panel[jb][k][g][V] holds W[g*H + jb*V + lane][k], so one
-- pass over the inputs k yields every gate of a block of units (zero for padding units). The
-- backward products read the canonical PyTorch rows W[r][0..K), vectorised over k.
local cgen = require("rnnc.cgen")

local M = {}

local join = cgen.join

-- ---- Blocking ----------------------------------------------------------------------------------

-- Register blocking of a forward product: rb rows of the input x jb unit blocks x G gates of
-- accumulators. Chosen by a small cost model of one k step of the loop: it takes at least the FMA
-- latency (4 cycles: each accumulator is one dependency chain), and at least the time to issue
-- its multiply-adds (2 per cycle) and its loads (weights and input broadcasts, 2 per cycle). Rows
-- left over after the full blocks of rb run one at a time, unit blocks left over in a smaller
-- group; the cost counts them, so a block shape that divides the work evenly wins.
function M.forward_blocking(regs, G, NB, rows_hint)
  local function k_cycles(rb, jb)
    if jb == 0 or rb == 0 then return 0 end
    return math.max(4, rb * jb * G / 2, (jb * G + rb) / 2)
  end
  local function cost(rb, jb)
    local full_rows, rest_rows = rows_hint // rb, rows_hint % rb
    local full_units, rest_units = NB // jb, NB % jb
    return full_rows * (full_units * k_cycles(rb, jb) + k_cycles(rb, rest_units))
      + rest_rows * (full_units * k_cycles(1, jb) + k_cycles(1, rest_units))
  end
  -- Measured (AVX-512, LSTM 2x128 and 2x256 at B = 1 and 16): more than 4 weight panels
  -- streamed at once, or a block that fills every register, is slower than the model says; ties
  -- go to fewer panels, then to more rows.
  local best, best_cost = { 1, 1 }, math.huge
  for jb = 1, math.min(NB, 4) do
    for rb = 1, math.min(rows_hint, 8) do
      if rb * jb * G + rb + 4 <= regs then -- accumulators, broadcast inputs, a weight vector, addresses
        local c = cost(rb, jb)
        if c < best_cost - 1e-9 or (c < best_cost + 1e-9 and jb == best[2] and rb > best[1]) then
          best, best_cost = { rb, jb }, c
        end
      end
    end
  end
  return best[1], best[2]
end

-- ---- Small helpers -----------------------------------------------------------------------------

local function vload(ctx, addr, last, tail)
  if last and tail > 0 then return ctx.B.load_tail(ctx.p, addr, tail, ctx.P) end
  return ctx.B.load(ctx.p, addr)
end

local function vstore(ctx, addr, v, last, tail)
  if last and tail > 0 then return ctx.B.store_tail(ctx.p, addr, v, tail, ctx.P) .. ";" end
  return ctx.B.store(ctx.p, addr, v) .. ";"
end

-- Emits body(pad, jb, last) for the blocks nb0 <= jb < nb1 of NB (C variables, so that cores can
-- share the units of a layer; whole = true: every block): a loop over the full blocks and, when
-- H is not a multiple of V, the tail block written out (last = true) for the range ending at NB.
local function over_blocks(out, indent, NB, tail, body, whole)
  local full = tail > 0 and NB - 1 or NB
  if full > 0 then
    local first, bound = "nb0", tail > 0 and string.format("(nb1 < %d ? nb1 : %d)", full, full) or "nb1"
    if whole then first, bound = "0", tostring(full) end
    table.insert(out, string.format("%sfor (int jb = %s; jb < %s; ++jb) {", indent, first, bound))
    body(indent .. "    ", "jb", false)
    table.insert(out, indent .. "}")
  elseif not whole then
    table.insert(out, indent .. "(void)nb0; /* one block: the tail */")
  end
  if tail > 0 then
    table.insert(out, string.format("%s%s{ /* the last %d units */", indent, whole and "" or string.format("if (nb1 == %d) ", NB), tail))
    body(indent .. "    ", tostring(NB - 1), true)
    table.insert(out, indent .. "}")
  end
end

local function offset(base, jb, V)
  if jb == "0" then return base end
  return string.format("%s + %s * %d", base, jb, V)
end

-- ---- Forward: the packed product ---------------------------------------------------------------

-- out[row][g*Hp + j] = init + sum_k W[g*H + j][k] x[row][k] for every row, gate and (padded)
-- unit: one matrix product over all rows, each weight loaded once per block of rb rows.
--   k: { name, K, G, NB, V, Hp, panel = C expression of the packed weights, unroll,
--        init = per gate { kind = "bias", expr = C expression of a padded [G][Hp] vector, gate = the
--                            row of that vector (default: the gate's own) }
--                     or { kind = "buffer" } (init[row][g*Hp + j], may alias out), or nil (zero),
--        dest = per gate nil (out) or "second" (a second output buffer, for gru's W_hn h),
--        rb, jb (register blocking), gate_names (for the accumulators' names), comment,
--        unit0 = true: the kernel covers NB blocks from a run-time block u0 on (a core's share),
--        group = S > 1: the panels of each S blocks (fewer in the last group) are interleaved per k,
--                panel[group][k][block in group][G][V], and S = jb (unit0: a group is the whole
--                kernel): the register block's loads are one contiguous stream instead of jb
--                streams (measured on AVX-512, GRU 2x128 W_hh from L2: 89 -> 95 GFLOP/s) }
function M.packed_product(ctx, k)
  local B, p, P = ctx.B, ctx.p, ctx.P
  local real, vec = ctx.real, ctx.vec
  local G, K, V, Hp = k.G, k.K, k.V, k.Hp
  local uses_buffer, uses_second = false, false
  for g = 1, G do
    uses_buffer = uses_buffer or (k.init[g] and k.init[g].kind == "buffer")
    uses_second = uses_second or k.dest[g] == "second"
  end
  assert((k.group or 1) == 1 or k.group == k.jb or (k.unit0 and k.jb == k.NB), "grouped panels need the group's register block")
  local out = { "/* " .. k.comment .. " */" }
  local params = { "int rows", string.format("const %s *restrict x", real), "int ldx", string.format("const %s *restrict w", ctx.weights_type) }
  if uses_buffer then table.insert(params, string.format("const %s *init", real)) end
  table.insert(params, string.format("%s *out", real))
  table.insert(params, "int ldo")
  if uses_second then table.insert(params, string.format("%s *restrict second", real)) end
  if k.unit0 then table.insert(params, "int u0") end
  table.insert(out, string.format("static void %s(%s)", k.name, table.concat(params, ", ")))
  table.insert(out, "{")
  table.insert(out, string.format("    const %s *restrict panel = %s;", real, k.panel))
  local function block(indent, rb, jb_count, jb0)
    local accs = {}
    for r = 0, rb - 1 do
      for jj = 0, jb_count - 1 do
        for g = 1, G do
          local name = string.format("acc_r%d_b%d_%s", r, jj, k.gate_names[g])
          local unit = jj == 0 and jb0 or (jb0 .. " + " .. jj)
          local col = string.format("%d + (%s) * %d", (g - 1) * Hp, unit, V)
          local init = k.init[g]
          local value
          if init == nil then value = B.zero(p)
          elseif init.kind == "bias" then
            value = B.load(p, string.format("%s + %d + (%s) * %d", init.expr, (init.gate or (g - 1)) * Hp, unit, V))
          else value = B.load(p, string.format("init + (size_t)(row + %d) * ldo + %s", r, col)) end
          table.insert(out, string.format("%s%s %s = %s;", indent, vec, name, value))
          table.insert(accs, { name = name, r = r, jj = jj, g = g, col = col })
        end
      end
    end
    cgen.unrolled(out, indent, K, k.unroll, function(outer, kk)
      local pad = outer .. "    "
      table.insert(out, outer .. "{")
      for r = 0, rb - 1 do
        table.insert(out, string.format("%sconst %s x%d = %s;", pad, vec, r, B.set1(p, string.format("x[(size_t)(row + %d) * ldx + %s]", r, kk))))
      end
      for jj = 0, jb_count - 1 do
        for g = 1, G do
          local unit = jj == 0 and jb0 or (jb0 .. " + " .. jj)
          local wname = string.format("w%d_%s", jj, k.gate_names[g])
          local addr
          if (k.group or 1) > 1 then -- the group starts at block jb0 and has jb_count blocks
            addr = string.format("panel + ((size_t)(%s) * %d + (size_t)(%s) * %d + %d) * %d", jb0, K, kk, jb_count, jj, G * V)
          else
            addr = string.format("panel + ((size_t)(%s) * %d + %s) * %d", unit, K, kk, G * V)
          end
          table.insert(out, string.format("%sconst %s %s = %s;", pad, vec, wname, B.load(p, addr .. (g > 1 and (" + " .. (g - 1) * V) or ""))))
          for r = 0, rb - 1 do
            local acc = string.format("acc_r%d_b%d_%s", r, jj, k.gate_names[g])
            table.insert(out, string.format("%s%s = %s;", pad, acc, B.fma(p, wname, "x" .. r, acc)))
          end
        end
      end
      table.insert(out, outer .. "}")
    end)
    for _, a in ipairs(accs) do
      local target = k.dest[a.g] == "second"
        and string.format("second + (size_t)(row + %d) * %d + (%s) * %d", a.r, Hp, a.jj == 0 and jb0 or (jb0 .. " + " .. a.jj), V)
        or string.format("out + (size_t)(row + %d) * ldo + %s", a.r, a.col)
      table.insert(out, indent .. B.store(p, target, a.name) .. ";")
    end
  end
  local function rows_loop(rb, first)
    table.insert(out, string.format("    for (%s; row + %d <= rows; row += %d) {", first and "int row = 0" or "", rb, rb))
    local full = k.NB - k.NB % k.jb
    if full > 0 then
      table.insert(out, string.format("        for (int jb = 0; jb < %d; jb += %d) {", full, k.jb))
      block("            ", rb, k.jb, k.unit0 and "u0 + jb" or "jb")
      table.insert(out, "        }")
    end
    if k.NB % k.jb > 0 then
      table.insert(out, "        {")
      block("            ", rb, k.NB % k.jb, k.unit0 and ("u0 + " .. full) or tostring(full))
      table.insert(out, "        }")
    end
    table.insert(out, "    }")
  end
  if k.rb > 1 then
    table.insert(out, "    int row = 0;")
    rows_loop(k.rb, false)
    rows_loop(1, false)
  else
    table.insert(out, "    int row = 0;")
    rows_loop(1, false)
  end
  table.insert(out, "}")
  return join(out)
end

-- In place over n rows of a padded [rows][Op] buffer: v = act(v).
function M.activation_pass(ctx, name, act, width)
  local B, p = ctx.B, ctx.p
  return join({
    string.format("/* In place over n rows of %d padded outputs: v = %s(v), a second pass over an L1-resident block. */", width, act),
    string.format("static void %s(int n, %s *v)", name, ctx.real),
    "{",
    string.format("    for (size_t i = 0; i < (size_t)n * %d; i += %d)", width, ctx.V),
    "        " .. B.store(p, "v + i", string.format("%s_%s(%s)", ctx.P, act, B.load(p, "v + i"))) .. ";",
    "}",
  })
end

-- ---- Forward: the elementwise cell update ------------------------------------------------------

-- After the product, one row's gates are complete: the cell update, vectorised over units.
--   L: the layer (cell, activation, hidden, NB, tail); mode "infer", "train" or "step".
-- Pointers (all rows of one sequence, padded unless noted):
--   pre: [G][Hp] pre-activations (train: receives the activations, kept on the tape)
--   gru: hn [Hp] (W_hn h + b_hn), h_prev (unpadded state or a padded row)
--   lstm: c_prev, c (may alias in infer/step; unpadded state or padded tape rows)
--   h: the new hidden state
function M.cell_update(ctx, name, L, mode)
  local B, p, P, vec, real = ctx.B, ctx.p, ctx.P, ctx.vec, ctx.real
  local Hp, V = L.padded, ctx.V
  local params = { string.format("%s *pre", real) }
  if L.cell == "gru" then
    table.insert(params, string.format("const %s *restrict hn", real))
    table.insert(params, string.format("const %s *h_prev", real))
  elseif L.cell == "lstm" then
    table.insert(params, string.format("const %s *c_prev", real))
    table.insert(params, string.format("%s *c", real))
    if mode == "train" then table.insert(params, string.format("%s *restrict tanh_c", real)) end
  end
  table.insert(params, string.format("%s *h", real))
  table.insert(params, "int nb0")
  table.insert(params, "int nb1")
  local out = {
    string.format("/* Layer %d cell update for one row (%s), vectorised over units, blocks nb0..nb1 of %d units: %s. */", L.index, mode, V,
      L.cell == "lstm" and "c' = f*c + i*g, h' = o*tanh(c')" or L.cell == "gru" and "n = tanh(xn + r*hn), h' = (1-z)*n + z*h"
      or ("h' = " .. L.activation .. "(pre)")),
    string.format("static void %s(%s)", name, table.concat(params, ", ")),
    "{",
  }
  local one = B.set1(p, p == "f64" and "1.0" or "1.0f")
  over_blocks(out, "    ", L.NB, L.tail, function(pad, jb, last)
    local function at(base, g) return offset(string.format("%s + %d", base, (g or 0) * Hp), jb, V) end
    local function row_at(base) return offset(base, jb, V) end
    local function add(fmt, ...) table.insert(out, pad .. string.format(fmt, ...)) end
    if L.cell == "rnn" then
      add("const %s a = %s_%s(%s);", vec, P, L.activation, B.load(p, at("pre", 0)))
      add("%s", vstore(ctx, row_at("h"), "a", last, L.tail))
    elseif L.cell == "gru" then
      add("const %s r = %s_sigmoid(%s);", vec, P, B.load(p, at("pre", 0)))
      add("const %s z = %s_sigmoid(%s);", vec, P, B.load(p, at("pre", 1)))
      add("const %s n = %s_tanh(%s);", vec, P, B.fma(p, "r", B.load(p, row_at("hn")), B.load(p, at("pre", 2))))
      add("const %s hp = %s;", vec, vload(ctx, row_at("h_prev"), last, L.tail))
      add("%s", vstore(ctx, row_at("h"), B.fma(p, B.sub(p, one, "z"), "n", B.mul(p, "z", "hp")), last, L.tail))
      if mode == "train" then
        add("%s", B.store(p, at("pre", 0), "r") .. ";")
        add("%s", B.store(p, at("pre", 1), "z") .. ";")
        add("%s", B.store(p, at("pre", 2), "n") .. ";")
      end
    else
      add("const %s gate_i = %s_sigmoid(%s);", vec, P, B.load(p, at("pre", 0)))
      add("const %s gate_f = %s_sigmoid(%s);", vec, P, B.load(p, at("pre", 1)))
      add("const %s gate_g = %s_tanh(%s);", vec, P, B.load(p, at("pre", 2)))
      add("const %s gate_o = %s_sigmoid(%s);", vec, P, B.load(p, at("pre", 3)))
      add("const %s c_new = %s;", vec, B.fma(p, "gate_f", vload(ctx, row_at("c_prev"), last, L.tail), B.mul(p, "gate_i", "gate_g")))
      add("%s", vstore(ctx, row_at("c"), "c_new", last, L.tail))
      add("const %s tc = %s_tanh(c_new);", vec, P)
      add("%s", vstore(ctx, row_at("h"), B.mul(p, "gate_o", "tc"), last, L.tail))
      if mode == "train" then
        add("%s", B.store(p, row_at("tanh_c"), "tc") .. "; /* kept for the backward */")
        for g, gate in ipairs({ "i", "f", "g", "o" }) do add("%s", B.store(p, at("pre", g - 1), "gate_" .. gate) .. ";") end
      end
    end
  end)
  table.insert(out, "}")
  return join(out)
end

-- ---- Backward: the elementwise cell backward ---------------------------------------------------

-- One row of one step back through time: from dh = dh_out + carry (dL/dh_t) to the gradients of
-- the gate pre-activations; the exact reverse of cell_update. Pointers (padded rows, dh_out may
-- be the caller's unpadded dy):
--   rnn: h (the output); lstm: gates (i,f,g,o), tanh_c (tanh(c_t), kept by the forward), c_prev,
--         carry_c (in: dL/dc_t, out: dL/dc_{t-1});
--   gru: gates (r,z,n), hn, h_prev, dhn (out), carry (out: z*dh, the direct path);
--   dgates (out): [G][Hp].
function M.cell_backward(ctx, name, L)
  local B, p, P, vec, real = ctx.B, ctx.p, ctx.P, ctx.vec, ctx.real
  local Hp, V = L.padded, ctx.V
  local params = { string.format("const %s *dh_out", real), string.format("%s *carry", real) }
  if L.cell == "rnn" then
    table.insert(params, string.format("const %s *restrict h", real))
  elseif L.cell == "lstm" then
    table.insert(params, string.format("const %s *restrict gates", real))
    table.insert(params, string.format("const %s *restrict tanh_c", real))
    table.insert(params, string.format("const %s *c_prev", real))
    table.insert(params, string.format("%s *restrict carry_c", real))
  else
    table.insert(params, string.format("const %s *restrict gates", real))
    table.insert(params, string.format("const %s *restrict hn", real))
    table.insert(params, string.format("const %s *h_prev", real))
    table.insert(params, string.format("%s *restrict dhn", real))
  end
  table.insert(params, string.format("%s *restrict dgates", real))
  table.insert(params, "int nb0")
  table.insert(params, "int nb1")
  local out = {
    string.format("/* Layer %d, one row one step back, blocks nb0..nb1 of %d units: dgates from dh = dh_out + carry (the reverse of the cell update). */", L.index, V),
    string.format("static void %s(%s)", name, table.concat(params, ", ")),
    "{",
  }
  local one = B.set1(p, p == "f64" and "1.0" or "1.0f")
  over_blocks(out, "    ", L.NB, L.tail, function(pad, jb, last)
    local function at(base, g) return offset(string.format("%s + %d", base, (g or 0) * Hp), jb, V) end
    local function row_at(base) return offset(base, jb, V) end
    local function add(fmt, ...) table.insert(out, pad .. string.format(fmt, ...)) end
    add("const %s dh = %s;", vec, B.add(p, vload(ctx, row_at("dh_out"), last, L.tail), B.load(p, row_at("carry"))))
    if L.cell == "rnn" then
      local h = B.load(p, row_at("h"))
      local derivative = L.activation == "tanh" and B.sub(p, one, B.mul(p, "hv", "hv")) or B.positive(p, "hv", one)
      add("const %s hv = %s;", vec, h)
      add("%s", B.store(p, at("dgates", 0), B.mul(p, "dh", derivative)) .. ";")
    elseif L.cell == "lstm" then
      add("const %s gate_i = %s, gate_f = %s;", vec, B.load(p, at("gates", 0)), B.load(p, at("gates", 1)))
      add("const %s gate_g = %s, gate_o = %s;", vec, B.load(p, at("gates", 2)), B.load(p, at("gates", 3)))
      add("const %s tc = %s;", vec, B.load(p, row_at("tanh_c")))
      add("const %s dc = %s;", vec, B.fma(p, B.mul(p, "dh", "gate_o"), B.sub(p, one, B.mul(p, "tc", "tc")), B.load(p, row_at("carry_c"))))
      add("%s", B.store(p, at("dgates", 0), B.mul(p, B.mul(p, "dc", "gate_g"), B.mul(p, "gate_i", B.sub(p, one, "gate_i")))) .. ";")
      add("%s", B.store(p, at("dgates", 1), B.mul(p, B.mul(p, "dc", vload(ctx, row_at("c_prev"), last, L.tail)),
        B.mul(p, "gate_f", B.sub(p, one, "gate_f")))) .. ";")
      add("%s", B.store(p, at("dgates", 2), B.mul(p, B.mul(p, "dc", "gate_i"), B.sub(p, one, B.mul(p, "gate_g", "gate_g")))) .. ";")
      add("%s", B.store(p, at("dgates", 3), B.mul(p, B.mul(p, "dh", "tc"), B.mul(p, "gate_o", B.sub(p, one, "gate_o")))) .. ";")
      add("%s", B.store(p, row_at("carry_c"), B.mul(p, "dc", "gate_f")) .. ";")
    else
      add("const %s r = %s, z = %s, n = %s;", vec, B.load(p, at("gates", 0)), B.load(p, at("gates", 1)), B.load(p, at("gates", 2)))
      add("const %s dn_pre = %s; /* through n = tanh(xn + r*hn) */", vec,
        B.mul(p, B.mul(p, "dh", B.sub(p, one, "z")), B.sub(p, one, B.mul(p, "n", "n"))))
      add("%s", B.store(p, at("dgates", 0), B.mul(p, B.mul(p, "dn_pre", B.load(p, row_at("hn"))), B.mul(p, "r", B.sub(p, one, "r")))) .. ";")
      add("%s", B.store(p, at("dgates", 1), B.mul(p, B.mul(p, "dh", B.sub(p, vload(ctx, row_at("h_prev"), last, L.tail), "n")),
        B.mul(p, "z", B.sub(p, one, "z")))) .. ";")
      add("%s", B.store(p, at("dgates", 2), "dn_pre") .. "; /* W_in, b_in see the pre-activation */")
      add("%s", B.store(p, row_at("dhn"), B.mul(p, "dn_pre", "r")) .. ";     /* W_hn, b_hn see it through r */")
      add("%s", B.store(p, row_at("carry"), B.mul(p, "dh", "z")) .. ";    /* the direct path h' = ... + z*h */")
    end
  end)
  table.insert(out, "}")
  return join(out)
end

-- ---- Backward: products with the canonical weights ---------------------------------------------

-- dst[n][k] (+)= sum over the G*H canonical rows r = g*H + j of dg[n][g*Hp + j] * W[r][k], for k in
-- [0, K): the transposed product (W^T delta), vectorised over k, weights read row by row. Only
-- the k groups q0 <= q < q1 of k_groups are computed, so that cores can share the k range.
--   k: { name, G, H, Hp, K, KB (= ceil(K/V)), ktail, accumulate, mb (rows per block), nk (k
--        vectors per block), comment }. dst rows have stride ldd (padded, or the caller's unpadded).
function M.transposed_product(ctx, k)
  local B, p, vec, real = ctx.B, ctx.p, ctx.vec, ctx.real
  local V = ctx.V
  local out = {
    "/* " .. k.comment .. " */",
    string.format("static void %s(int rows, const %s *restrict dg, int ldg, const %s *restrict w, %s *restrict dst, int ldd, int q0, int q1)",
      k.name, real, real, real),
    "{",
  }
  local function block(indent, mb, kb0, nk, tail)
    for m = 0, mb - 1 do
      for v = 0, nk - 1 do
        local load = vload(ctx, string.format("dst + (size_t)(row + %d) * ldd + (%s + %d) * %d", m, kb0, v, V), tail and v == nk - 1, k.ktail)
        table.insert(out, string.format("%s%s acc%d_%d = %s;", indent, vec, m, v, k.accumulate and load or B.zero(p)))
      end
    end
    table.insert(out, string.format("%sfor (int g = 0; g < %d; ++g) {", indent, k.G))
    table.insert(out, string.format("%s    for (int j = 0; j < %d; ++j) {", indent, k.H))
    table.insert(out, string.format("%s        const %s *restrict wr = w + ((size_t)g * %d + j) * %d;", indent, real, k.H, k.K))
    for v = 0, nk - 1 do
      local load = vload(ctx, string.format("wr + (%s + %d) * %d", kb0, v, V), tail and v == nk - 1, k.ktail)
      table.insert(out, string.format("%s        const %s w%d = %s;", indent, vec, v, load))
    end
    for m = 0, mb - 1 do
      table.insert(out, string.format("%s        const %s d%d = %s;", indent, vec, m,
        B.set1(p, string.format("dg[(size_t)(row + %d) * ldg + g * %d + j]", m, k.Hp))))
      for v = 0, nk - 1 do
        table.insert(out, string.format("%s        acc%d_%d = %s;", indent, m, v, B.fma(p, "w" .. v, "d" .. m, string.format("acc%d_%d", m, v))))
      end
    end
    table.insert(out, indent .. "    }")
    table.insert(out, indent .. "}")
    for m = 0, mb - 1 do
      for v = 0, nk - 1 do
        table.insert(out, indent .. vstore(ctx, string.format("dst + (size_t)(row + %d) * ldd + (%s + %d) * %d", m, kb0, v, V),
          string.format("acc%d_%d", m, v), tail and v == nk - 1, k.ktail))
      end
    end
  end
  table.insert(out, "    int row = 0;")
  for _, mb in ipairs(k.mb > 1 and { k.mb, 1 } or { 1 }) do
    table.insert(out, string.format("    for (; row + %d <= rows; row += %d) {", mb, mb))
    for q, grp in ipairs(M.k_groups(k)) do
      table.insert(out, string.format("        if (q0 <= %d && %d < q1) { /* k vectors %s..%d */", q - 1, q - 1, grp.kb0, grp.kb0 + grp.nk - 1))
      block("            ", mb, grp.kb0, grp.nk, grp.tail)
      table.insert(out, "        }")
    end
    table.insert(out, "    }")
  end
  table.insert(out, "}")
  return join(out)
end

-- The k vectors of a row split into groups of at most k.nk, as even as possible (a small last
-- group would leave too few accumulators to hide the FMA latency), the tail vector (if any) last.
function M.k_groups(k)
  local count = (k.KB + k.nk - 1) // k.nk
  local groups, kb = {}, 0
  for i = 1, count do
    local nk = (k.KB - kb) // (count - i + 1)
    table.insert(groups, { kb0 = tostring(kb), nk = nk, tail = k.ktail > 0 and kb + nk == k.KB })
    kb = kb + nk
  end
  return groups
end

-- dw[r][k] += sum over rows n of dg[n][g*Hp + j] * x[n][k] (r = g*H + j), for j0 <= j < j1: a
-- weight gradient, one product over every timestep and sequence, vectorised over k; dw is
-- canonical [G*H][K].
-- The rows go in chunks of `chunk` whose inputs stay in L1 while every weight row's block
-- accumulates over them; without the chunks each block would stream all of x from L2 again.
--   k: { name, G, H, Hp, K, KB, ktail, mr (weight rows per block), nk, chunk, comment }
function M.weight_gradient(ctx, k)
  local B, p, vec, real = ctx.B, ctx.p, ctx.vec, ctx.real
  local V = ctx.V
  local out = {
    "/* " .. k.comment .. " */",
    string.format("static void %s(int rows, const %s *restrict dg, int ldg, const %s *restrict x, int ldx, %s *restrict dw, int j0, int j1)",
      k.name, real, real, real),
    "{",
    string.format("    for (int n0 = 0; n0 < rows; n0 += %d) { /* %d rows of x: %d bytes, L1-resident */", k.chunk, k.chunk,
      k.chunk * k.K * ctx.real_bytes),
    string.format("    const int n1 = rows - n0 < %d ? rows : n0 + %d;", k.chunk, k.chunk),
    string.format("    for (int g = 0; g < %d; ++g) {", k.G),
  }
  local function block(indent, mr, kb0, nk, tail)
    for m = 0, mr - 1 do
      for v = 0, nk - 1 do table.insert(out, string.format("%s%s acc%d_%d = %s;", indent, vec, m, v, B.zero(p))) end
    end
    table.insert(out, string.format("%sfor (int n = n0; n < n1; ++n) {", indent))
    for v = 0, nk - 1 do
      local addr = string.format("x + (size_t)n * ldx + (%s + %d) * %d", kb0, v, V)
      table.insert(out, string.format("%s    const %s x%d = %s;", indent, vec, v, vload(ctx, addr, tail and v == nk - 1, k.ktail)))
    end
    for m = 0, mr - 1 do
      table.insert(out, string.format("%s    const %s d%d = %s;", indent, vec, m,
        B.set1(p, string.format("dg[(size_t)n * ldg + g * %d + j + %d]", k.Hp, m))))
      for v = 0, nk - 1 do
        table.insert(out, string.format("%s    acc%d_%d = %s;", indent, m, v, B.fma(p, "d" .. m, "x" .. v, string.format("acc%d_%d", m, v))))
      end
    end
    table.insert(out, indent .. "}")
    for m = 0, mr - 1 do
      for v = 0, nk - 1 do
        local addr = string.format("dw + ((size_t)g * %d + j + %d) * %d + (%s + %d) * %d", k.H, m, k.K, kb0, v, V)
        local last = tail and v == nk - 1
        table.insert(out, indent .. vstore(ctx, addr, B.add(p, vload(ctx, addr, last, k.ktail), string.format("acc%d_%d", m, v)), last, k.ktail))
      end
    end
  end
  local groups = M.k_groups(k)
  -- Weight rows j0 <= j < j1 of every gate (cores share them), in blocks of mr, then one by one.
  local function rows_part(loop, mr)
    table.insert(out, string.format("        %s {", loop))
    for _, grp in ipairs(groups) do
      table.insert(out, "            {")
      block("                ", mr, grp.kb0, grp.nk, grp.tail)
      table.insert(out, "            }")
    end
    table.insert(out, "        }")
  end
  table.insert(out, "        int j = j0;")
  if k.mr > 1 then rows_part(string.format("for (; j + %d <= j1; j += %d)", k.mr, k.mr), k.mr) end
  rows_part("for (; j < j1; ++j)", 1)
  table.insert(out, "    }")
  table.insert(out, "    }")
  table.insert(out, "}")
  return join(out)
end

-- db[g*H + j] += sum over rows of dg[n][g*Hp + j], vectorised over units.
function M.bias_gradient(ctx, name, G, NB, tail, H, Hp)
  local B, p, vec, real = ctx.B, ctx.p, ctx.vec, ctx.real
  local V = ctx.V
  local out = {
    string.format("/* db[g*%d + j] += sum over rows of dg[row][g*%d + j], and db2 (when not NULL: PyTorch's second bias of", H, Hp),
    " * the same gates) too: a bias gradient, all rows at once (blocks nb0..nb1 of units), in four",
    " * partial sums so that the additions overlap. */",
    string.format("static void %s(int rows, const %s *restrict dg, int ldg, %s *restrict db, %s *restrict db2, int nb0, int nb1)",
      name, real, real, real),
    "{",
    string.format("    for (int g = 0; g < %d; ++g) {", G),
  }
  over_blocks(out, "        ", NB, tail, function(pad, jb, last)
    local function row(n) return B.load(p, offset(string.format("dg + (size_t)(%s) * ldg + g * %d", n, Hp), jb, V)) end
    for a = 0, 3 do table.insert(out, string.format("%s%s acc%d = %s;", pad, vec, a, B.zero(p))) end
    table.insert(out, string.format("%sint n = 0;", pad))
    table.insert(out, string.format("%sfor (; n + 4 <= rows; n += 4) {", pad))
    for a = 0, 3 do table.insert(out, string.format("%s    acc%d = %s;", pad, a, B.add(p, "acc" .. a, row("n + " .. a)))) end
    table.insert(out, pad .. "}")
    table.insert(out, string.format("%sfor (; n < rows; ++n) acc0 = %s;", pad, B.add(p, "acc0", row("n"))))
    table.insert(out, string.format("%sconst %s acc = %s;", pad, vec, B.add(p, B.add(p, "acc0", "acc1"), B.add(p, "acc2", "acc3"))))
    local addr = offset(string.format("db + g * %d", H), jb, V)
    table.insert(out, pad .. vstore(ctx, addr, B.add(p, vload(ctx, addr, last, tail), "acc"), last, tail))
    local addr2 = offset(string.format("db2 + g * %d", H), jb, V)
    table.insert(out, pad .. "if (db2) " .. vstore(ctx, addr2, B.add(p, vload(ctx, addr2, last, tail), "acc"), last, tail))
  end)
  table.insert(out, "    }")
  table.insert(out, "}")
  return join(out)
end

-- dpre[n][o] = dout[n][o] * act'(y[n][o]) over n rows (dout unpadded with stride ldd or padded;
-- y and dpre padded [n][Op]): the first step of a head layer's backward.
function M.activation_backward(ctx, name, act, O, NB, tail, Op)
  local B, p, vec, real = ctx.B, ctx.p, ctx.vec, ctx.real
  local V = ctx.V
  local one = B.set1(p, p == "f64" and "1.0" or "1.0f")
  local out = {
    string.format("/* dpre = dout * %s'(y) over n rows of %d outputs. */", act, O),
    string.format("static void %s(int n, const %s *restrict dout, int ldd, const %s *restrict y, %s *restrict dpre)", name, real, real, real),
    "{",
    "    for (int row = 0; row < n; ++row) {",
  }
  if act == "linear" then table.insert(out, "        (void)y;") end
  over_blocks(out, "        ", NB, tail, function(pad, jb, last)
    local d = vload(ctx, offset("dout + (size_t)row * ldd", jb, V), last, tail)
    local yv = B.load(p, offset(string.format("y + (size_t)row * %d", Op), jb, V))
    local value
    if act == "linear" then value = "d"
    elseif act == "relu" then value = B.positive(p, "yv", "d")
    elseif act == "tanh" then value = B.mul(p, "d", B.sub(p, one, B.mul(p, "yv", "yv")))
    else value = B.mul(p, "d", B.mul(p, "yv", B.sub(p, one, "yv"))) end
    table.insert(out, string.format("%sconst %s d = %s;", pad, vec, d))
    if act ~= "linear" then table.insert(out, string.format("%sconst %s yv = %s;", pad, vec, yv)) end
    table.insert(out, pad .. B.store(p, offset(string.format("dpre + (size_t)row * %d", Op), jb, V), value) .. ";")
  end, true)
  table.insert(out, "    }")
  table.insert(out, "}")
  return join(out)
end

return M
