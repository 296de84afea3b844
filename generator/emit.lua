-- emit.lua — the emit pass: C text from the plan, the schedule and the backend.
--
--   emit.model(plan, sched, backend, templates, meta) -> { header, source, main, python }
--
-- Logic lives here, text lives in templates/: this module builds the pieces (struct fields,
-- kernels, entry-point bodies) and fills the templates' insertion points. The kernels themselves
-- are kernels.lua's, written once against the backend interface; the training side (tape,
-- backward) is emit_train.lua's.
local cname = require("rnnc.cname")
local cgen = require("rnnc.cgen")
local kernels = require("rnnc.kernels")
local plan_pass = require("rnnc.plan")
local parallel = require("rnnc.parallel")
local template = require("rnnc.template")
local train = require("rnnc.emit_train")

local M = {}

local join = cgen.join

local CELL_MATH = {
  rnn = "h' = %s(W_ih x + b_ih + W_hh h + b_hh)",
  gru = "r,z = sigmoid(W_i* x + b_i* + W_h* h + b_h*); n = tanh(W_in x + b_in + r*(W_hn h + b_hn)); "
    .. "h' = (1-z)*n + z*h",
  lstm = "i,f,o = sigmoid, g = tanh of (W_i* x + b_i* + W_h* h + b_h*), rows i,f,g,o; c' = f*c + i*g; "
    .. "h' = o*tanh(c')",
}

-- ---- Packed weights ----------------------------------------------------------------------------

-- Names of the packed weights of layer L / head D inside <name>_weights.
local function packed(L) return { ih = "l" .. L.index .. "_ih", hh = "l" .. L.index .. "_hh", bias = "l" .. L.index .. "_bias",
  bias_hn = "l" .. L.index .. "_bias_hn" } end
local function packed_head(D) return { w = "head" .. D.index, bias = "head" .. D.index .. "_bias" } end

local function weights_fields(ctx)
  local out, V, real = {}, ctx.V, ctx.real
  ctx.weights_count = 0
  local function field(name, count, comment)
    table.insert(out, string.format("    %s %s[%d]; /* %s */", real, name, count, comment))
    ctx.weights_count = ctx.weights_count + count
  end
  for _, L in ipairs(ctx.plan.layers) do
    local n, G, NB, Hp = packed(L), L.gates, L.NB, L.padded
    field(n.ih, NB * L.input * G * V, string.format("[%d][%d][%d][%d] W_ih panels: blocks of %d units, every gate", NB, L.input, G, V, V))
    field(n.hh, NB * L.hidden * G * V, string.format("W_hh panels in groups of %d blocks (the recurrent product's register block): [group][%d][blocks in the group][%d][%d]",
      L.recurrent.jb, L.hidden, G, V))
    field(n.bias, G * Hp, string.format("[%d][%d] b_ih + b_hh%s", G, Hp, L.cell == "gru" and " (r, z; n: b_in)" or ""))
    if L.cell == "gru" then field(n.bias_hn, Hp, string.format("[%d] b_hn, inside r * (W_hn h + b_hn)", Hp)) end
  end
  for _, D in ipairs(ctx.plan.heads) do
    local n = packed_head(D)
    field(n.w, D.NB * D.input * V, string.format("[%d][%d][%d] head %d weight panels", D.NB, D.input, V, D.index))
    field(n.bias, D.padded, string.format("[%d] head %d bias", D.padded, D.index))
  end
  return join(out)
end

-- <name>_pack: canonical parameters -> the panels the kernels stream (plain loops: it runs once
-- per load or optimizer step, not per timestep).
local function pack_body(ctx)
  local out, V = { "    memset(w, 0, sizeof *w); /* padding units get zero weights and stay zero */" }, ctx.V
  local function add(fmt, ...) table.insert(out, "    " .. string.format(fmt, ...)) end
  for _, L in ipairs(ctx.plan.layers) do
    local n, G, H, Hp, I = packed(L), L.gates, L.hidden, L.padded, L.input
    local f = function(t) return cname.field(t.name) end
    add("for (int g = 0; g < %d; ++g) { /* layer %d */", G, L.index)
    add("    for (int j = 0; j < %d; ++j) {", H)
    add("        const size_t lane = (size_t)(j / %d) * %d, unit = (size_t)(j %% %d);", V, 0, V)
    add("        for (int k = 0; k < %d; ++k) w->%s[(((size_t)(j / %d) * %d + k) * %d + g) * %d + unit] = p->%s[g * %d + j][k];",
      I, n.ih, V, I, G, V, f(L.weight_ih), H)
    -- W_hh: the blocks of one register block of the recurrent product interleaved per k, so that
    -- its loads are one contiguous stream from L2 (kernels.packed_product, group).
    local S = L.recurrent.jb
    add("        const size_t block = (size_t)(j / %d), first = block - block %% %d, width = first + %d <= %d ? %d : %d - first;",
      V, S, S, L.NB, S, L.NB)
    add("        for (int k = 0; k < %d; ++k) w->%s[((first * %d + (size_t)k * width + block - first) * %d + g) * %d + unit] = p->%s[g * %d + j][k];",
      H, n.hh, H, G, V, f(L.weight_hh), H)
    if L.cell == "gru" then
      add("        w->%s[g * %d + j] = p->%s[g * %d + j] + (g < 2 ? p->%s[g * %d + j] : 0);", n.bias, Hp, f(L.bias_ih), H, f(L.bias_hh), H)
    else
      add("        w->%s[g * %d + j] = p->%s[g * %d + j] + p->%s[g * %d + j];", n.bias, Hp, f(L.bias_ih), H, f(L.bias_hh), H)
    end
    add("        (void)lane;")
    add("    }")
    add("}")
    if L.cell == "gru" then add("for (int j = 0; j < %d; ++j) w->%s[j] = p->%s[%d + j];", H, n.bias_hn, f(L.bias_hh), 2 * H) end
  end
  for _, D in ipairs(ctx.plan.heads) do
    local n = packed_head(D)
    add("for (int j = 0; j < %d; ++j) { /* head %d */", D.output, D.index)
    add("    for (int k = 0; k < %d; ++k) w->%s[((size_t)(j / %d) * %d + k) * %d + j %% %d] = p->%s[j][k];",
      D.input, n.w, V, D.input, V, V, cname.field(D.weight.name))
    add("    w->%s[j] = p->%s[j];", n.bias, cname.field(D.bias.name))
    add("}")
  end
  return join(out)
end

-- ---- Kernels -----------------------------------------------------------------------------------

local function product_kernel(ctx, name, k, args)
  return kernels.packed_product(ctx, {
    name = name, K = k.K, G = k.G, NB = args.NB, V = ctx.V, Hp = args.Hp, panel = args.panel, unroll = k.unroll,
    init = args.init, dest = args.dest or {}, rb = k.rb, jb = k.jb, comment = args.comment, gate_names = args.gate_names,
    group = args.group,
  })
end

local function layer_kernels(ctx, L)
  local spec, P = ctx.spec, ctx.P
  local n = packed(L)
  local text = {}
  ctx.kernels[L.index] = {}
  local names = ctx.kernels[L.index]
  local function add(name, code) table.insert(text, code) return name end
  table.insert(text, cgen.banner(string.format("Begin layer %d (rnn.*_l%d): %s, input %d -> hidden %d, from %s:%d",
    L.index, L.index, L.cell == "rnn" and ("rnn " .. L.activation) or L.cell, L.input, L.hidden, spec.path, L.line)))
  table.insert(text, "/* " .. CELL_MATH[L.cell]:format(L.activation or "") .. " */")
  local bias_init = {}
  for g = 1, L.gates do bias_init[g] = { kind = "bias", expr = "w->" .. n.bias } end
  local common = { NB = L.NB, Hp = L.padded, panel = "w->" .. n.ih, init = bias_init, gate_names = L.gate_names }
  local function input_product(name, k, rows)
    common.comment = string.format("Input projection of layer %d over %s rows: xp[row][%d] = x[row][%d] W_ih^T + b (b_hh folded in).",
      L.index, rows, L.gates * L.padded, L.input)
    return add(name, product_kernel(ctx, name, k, common))
  end
  names.input_seq = input_product(P .. "_l" .. L.index .. "_input_product", L.input_seq, "all T*B")
  if L.input_step.rb == L.input_seq.rb and L.input_step.jb == L.input_seq.jb and L.input_step.unroll == L.input_seq.unroll then
    names.input_step = names.input_seq
  else
    names.input_step = input_product(P .. "_l" .. L.index .. "_input_product_step", L.input_step, "the step's B")
  end
  local init, dest = {}, {}
  for g = 1, L.gates do init[g] = { kind = "buffer" } end
  if L.cell == "gru" then
    init[3] = { kind = "bias", expr = "w->" .. n.bias_hn, gate = 0 }
    dest[3] = "second"
  end
  names.recurrent = P .. "_l" .. L.index .. "_recurrent_product"
  add(names.recurrent, product_kernel(ctx, names.recurrent, L.recurrent, {
    NB = L.NB, Hp = L.padded, panel = "w->" .. n.hh, init = init, dest = dest, gate_names = L.gate_names, group = L.recurrent.jb,
    comment = string.format("The sequential part of layer %d, for B rows: pre[row] = xp[row] + W_hh h_prev[row]%s, in place.",
      L.index, L.cell == "gru" and " (gate n: second[row] = W_hn h_prev + b_hn)" or ""),
  }))
  if ctx.par.step == "split" or ctx.par.sequence == "split" or ctx.par.train == "split" then
    -- A thread's share of the sequential products: one granule of unit blocks from block u0 on,
    -- blocked like the whole product (the same multiply-adds in the same order).
    names.recurrent_part, names.input_step_part = {}, {}
    for _, size in ipairs(parallel.granule_sizes(L)) do
      local function part(name, k, args)
        local copy = {}
        for key, v in pairs(args) do copy[key] = v end
        copy.name, copy.K, copy.G, copy.NB, copy.V = name, k.K, k.G, size, ctx.V
        copy.rb, copy.jb, copy.unroll, copy.unit0, copy.dest = L.recurrent.rb, size, k.unroll, true, copy.dest or {}
        table.insert(text, kernels.packed_product(ctx, copy))
        return name
      end
      names.recurrent_part[size] = part(string.format("%s_part%d", names.recurrent, size), L.recurrent, {
        Hp = L.padded, panel = "w->" .. n.hh, init = init, dest = dest, gate_names = L.gate_names, group = L.recurrent.jb,
        comment = string.format("A thread's %d unit blocks of layer %d's recurrent product, from block u0 on.", size, L.index) })
      if ctx.par.step == "split" then
        names.input_step_part[size] = part(string.format("%s_l%d_input_product_part%d", P, L.index, size), L.input_step, {
          Hp = L.padded, panel = "w->" .. n.ih, init = bias_init, gate_names = L.gate_names,
          comment = string.format("A thread's %d unit blocks of layer %d's input projection (the step's B rows), from block u0 on.", size, L.index) })
      end
    end
  end
  for _, mode in ipairs({ "infer", "train", "step" }) do
    local name = string.format("%s_l%d_update_%s", P, L.index, mode)
    names["update_" .. mode] = add(name, kernels.cell_update(ctx, name, L, mode))
  end
  train.layer_kernels(ctx, L, text)
  table.insert(text, cgen.banner(string.format("End layer %d", L.index)))
  return join(text)
end

local function head_kernels(ctx, D)
  local spec, P = ctx.spec, ctx.P
  local n = packed_head(D)
  local text = {}
  ctx.heads[D.index] = {}
  local names = ctx.heads[D.index]
  table.insert(text, cgen.banner(string.format("Begin head layer %d (head.%d): dense %d -> %d, %s, from %s:%d",
    D.index, D.index, D.input, D.output, D.activation, spec.path, D.line)))
  local args = { NB = D.NB, Hp = D.padded, panel = "w->" .. n.w, init = { { kind = "bias", expr = "w->" .. n.bias } },
    gate_names = { "o" } }
  args.comment = string.format("Head layer %d over n rows: y[row][%d] = x[row][%d] W^T + b (activation in a second pass).",
    D.index, D.padded, D.input)
  names.seq = P .. "_head" .. D.index .. "_product"
  table.insert(text, product_kernel(ctx, names.seq, D.seq, args))
  if D.step.rb == D.seq.rb and D.step.jb == D.seq.jb and D.step.unroll == D.seq.unroll then
    names.step = names.seq
  else
    names.step = P .. "_head" .. D.index .. "_product_step"
    table.insert(text, product_kernel(ctx, names.step, D.step, args))
  end
  if D.activation ~= "linear" then
    names.activation = P .. "_head" .. D.index .. "_activation"
    table.insert(text, kernels.activation_pass(ctx, names.activation, D.activation, D.padded))
  end
  train.head_kernels(ctx, D, text)
  table.insert(text, cgen.banner(string.format("End head layer %d", D.index)))
  return join(text)
end

-- ---- Entry points ------------------------------------------------------------------------------

-- Copies n rows of width values from a padded buffer (stride) to an unpadded one.
local function copy_rows(out, indent, ctx, dst, src, n, width, stride)
  if width == stride then
    table.insert(out, string.format("%smemcpy(%s, %s, (size_t)(%s) * %d * sizeof(%s));", indent, dst, src, n, width, ctx.real))
  else
    table.insert(out, string.format("%sfor (int r = 0; r < %s; ++r) memcpy(%s + (size_t)r * %d, %s + (size_t)r * %d, %d * sizeof(%s));",
      indent, n, dst, width, src, stride, width, ctx.real))
  end
end

-- Scratch of the streaming step, at most SB sequences at a time, shared by the team's threads:
-- { name, count } in reals, allocated on the caller's stack by the entry point.
local function step_scratch(ctx)
  local plan = ctx.plan
  local SB = math.min(ctx.spec.batch, 8)
  local list = { { "xp", SB * plan.projection_width } }
  if ctx.has_gru then table.insert(list, { "hn", SB * plan.hidden_width }) end
  if #plan.heads > 0 then table.insert(list, { "head_a", SB * plan.activation_width }) end
  if #plan.heads > 1 then table.insert(list, { "head_b", SB * plan.activation_width }) end
  if ctx.par.step == "split" then
    for _, L in ipairs(plan.layers) do table.insert(list, { "hnew" .. L.index, SB * L.padded }) end
  end
  return list, SB
end

-- The units a thread owns in layer L: granules g0..g1, unit blocks u0..u1.
local function own_units(add, indent, L)
  add("%sint g0, g1;", indent)
  add("%snnrt_share(%d, id, count, &g0, &g1);", indent, L.granules)
  add("%sconst int u0 = g0 * %d, u1 = g1 * %d < %d ? g1 * %d : %d;", indent, L.granule, L.granule, L.NB, L.granule, L.NB)
end

-- A thread's share of a sequential product: its granules, each a call of the granule kernel.
local function product_parts(add, indent, L, parts, args_before, args_after)
  local sizes = parallel.granule_sizes(L)
  add("%sfor (int g = g0; g < g1; ++g) {", indent)
  if #sizes == 1 then
    add("%s    %s(%s, %s, g * %d);", indent, parts[sizes[1]], args_before, args_after, L.granule)
  else
    add("%s    if (g < %d) %s(%s, %s, g * %d);", indent, L.granules - 1, parts[sizes[1]], args_before, args_after, L.granule)
    add("%s    else %s(%s, %s, g * %d);", indent, parts[sizes[2]], args_before, args_after, L.granule)
  end
  add("%s}", indent)
end

-- The streaming step as a job of the team (one thread: id 0, count 1, the whole step). With
-- several threads each layer's units are shared: a thread computes its units' gates and cell
-- update, writing the new h to hnew (the others still read the old h), and after the barrier
-- copies its units into the state.
local function step_body(ctx)
  local plan, spec, real = ctx.plan, ctx.spec, ctx.real
  local B = cname.macro(spec, "BATCH")
  local _, SB = step_scratch(ctx)
  local split = ctx.par.step == "split"
  local out = {}
  local function add(fmt, ...) table.insert(out, "    " .. string.format(fmt, ...)) end
  if not split then add("(void)id; (void)count; (void)team;") end
  add("for (int b0 = 0; b0 < %s; b0 += %d) {", B, SB)
  add("    const int nb = %s - b0 < %d ? %s - b0 : %d;", B, SB, B, SB)
  for k, L in ipairs(plan.layers) do
    local names = ctx.kernels[L.index]
    local GHp, Hp = L.gates * L.padded, L.padded
    local h, c = cname.state_h(L.index), cname.state_c(L.index)
    local input, ldx, split_input, split_ldx
    if k == 1 then
      input, ldx = string.format("x + (size_t)b0 * %d", spec.input), spec.input
      split_input, split_ldx = input, ldx
    else
      local prev = plan.layers[k - 1]
      input, ldx = cgen.row(real, "s->" .. cname.state_h(prev.index), "b0", prev.hidden), prev.hidden
      split_input, split_ldx = "hnew" .. prev.index, prev.padded
    end
    local h_b, c_b = cgen.row(real, "s->" .. h, "b0 + b", L.hidden), cgen.row(real, "s->" .. c, "b0 + b", L.hidden)
    local h_b0 = cgen.row(real, "s->" .. h, "b0", L.hidden)
    local function update(indent, hdst, hstride, nb0, nb1)
      add("%sfor (int b = 0; b < nb; ++b) {", indent)
      local hrow = hstride and string.format("%s + (size_t)b * %d", hdst, hstride) or h_b
      if L.cell == "gru" then
        add("%s    %s(xp + (size_t)b * %d, hn + (size_t)b * %d, %s, %s, %s, %s);", indent, names.update_step, GHp, L.padded, h_b, hrow, nb0, nb1)
      elseif L.cell == "lstm" then
        add("%s    %s(xp + (size_t)b * %d, %s, %s, %s, %s, %s);", indent, names.update_step, GHp, c_b, c_b, hrow, nb0, nb1)
      else
        add("%s    %s(xp + (size_t)b * %d, %s, %s, %s);", indent, names.update_step, GHp, hrow, nb0, nb1)
      end
      add("%s}", indent)
    end
    add("    /* layer %d: input projection, then the recurrence, then the cell update */", L.index)
    local gru_hn = L.cell == "gru" and ", hn" or ""
    if split then add("    if (count == 1) {") end
    local indent = split and "        " or "    "
    add("%s%s(nb, %s, %d, w, xp, %d);", indent, names.input_step, input, ldx, GHp)
    add("%s%s(nb, %s, %d, w, xp, xp, %d%s);", indent, names.recurrent, h_b0, L.hidden, GHp, gru_hn)
    update(indent, nil, nil, "0", tostring(L.NB))
    if split then
      add("    } else { /* this thread's units */")
      own_units(add, "        ", L)
      product_parts(add, "        ", L, names.input_step_part, string.format("nb, %s, %d, w", split_input, split_ldx),
        string.format("xp, %d", GHp))
      product_parts(add, "        ", L, names.recurrent_part, string.format("nb, %s, %d, w", h_b0, L.hidden),
        string.format("xp, xp, %d%s", GHp, gru_hn))
      update("        ", "hnew" .. L.index, Hp, "u0", "u1")
      add("        nnrt_workers_sync(team); /* the new h is complete; nobody reads the old one any more */")
      add("        const int e0 = u0 * %d, e1 = u1 * %d < %d ? u1 * %d : %d;", ctx.V, ctx.V, L.hidden, ctx.V, L.hidden)
      add("        if (e1 > e0)")
      add("            for (int b = 0; b < nb; ++b) memcpy(%s + e0, hnew%d + (size_t)b * %d + e0, (size_t)(e1 - e0) * sizeof(%s));",
        h_b, L.index, Hp, real)
      add("    }")
    end
  end
  local top = plan.layers[#plan.layers]
  local src, ld = cgen.row(real, "s->" .. cname.state_h(top.index), "b0", top.hidden), top.hidden
  if split then
    add("    if (id == 0) { /* the head, on one thread */")
    add("    const %s *top = count == 1 ? %s : hnew%d;", real, src, top.index)
    add("    const int ldtop = count == 1 ? %d : %d;", top.hidden, top.padded)
    src, ld = "top", "ldtop"
  end
  for j, D in ipairs(plan.heads) do
    local names = ctx.heads[D.index]
    local dst = j % 2 == 1 and "head_a" or "head_b"
    add("    %s(nb, %s, %s, w, %s, %d);", names.step, src, ld, dst, D.padded)
    if names.activation then add("    %s(nb, %s);", names.activation, dst) end
    src, ld = dst, D.padded
  end
  if split and #plan.heads == 0 then
    add("    for (int b = 0; b < nb; ++b) memcpy(y + (size_t)(b0 + b) * %d, top + (size_t)b * ldtop, %d * sizeof(%s));",
      plan.output, plan.output, real)
  else
    copy_rows(out, "        ", ctx, string.format("y + (size_t)b0 * %d", plan.output), src, "nb", plan.output, ld)
  end
  if split then
    add("    }")
    add("    /* the next block overwrites hnew: wait until the head has read it */")
    add("    if (count > 1 && b0 + %d < %s) nnrt_workers_sync(team);", SB, B)
  end
  add("}")
  return join(out)
end

-- The sequence forward (container "work") or the training forward (container "tape"), as a job
-- of the team. One thread runs the layers one after the other. Several share them as
-- parallel.lua chose: "split" shares the input projections and head layers by rows and each
-- layer's recurrence by units, meeting at a barrier after every step; "wave" runs layer l on
-- thread l % count, chunk by chunk, after layer l - 1 has published the chunk.
local function forward_body(ctx, container)
  local plan, spec, real = ctx.plan, ctx.spec, ctx.real
  local B = cname.macro(spec, "BATCH")
  local is_train = container == "tape"
  local mode = is_train and ctx.par.train or ctx.par.sequence
  local split, wave = mode == "split", mode == "wave"
  local last = spec.output_at == "last"
  local out = {}
  local function add(fmt, ...) table.insert(out, "    " .. string.format(fmt, ...)) end
  local function sync(why) if split or wave then add("nnrt_workers_sync(team); /* %s */", why) end end
  if mode == "one" then add("(void)id; (void)count; (void)team;") end
  -- Buffers of layer k: its pre-activations, its outputs h_t, gru's W_hn h + b_hn of step t.
  -- Inference reuses two act buffers and one xp in turn, except in the wavefront, where layers
  -- run side by side and each has its own.
  local function xp_of(L) return is_train and ("tape->gates" .. L.index) or wave and ("work->xp" .. L.index) or "work->xp" end
  local function dst_of(k, L)
    return is_train and ("tape->hs" .. L.index) or wave and ("work->hs" .. L.index) or ("work->act" .. ((k - 1) % 2))
  end
  local function hn_of(L)
    if is_train then return "tape->hn" .. L.index .. " + (size_t)t * " .. B .. " * " .. L.padded end
    return wave and ("work->hn" .. L.index) or "work->hn"
  end
  local function src_of(k)
    if k == 1 then return "x", spec.input end
    local P = plan.layers[k - 1]
    return dst_of(k - 1, P), P.padded
  end
  add("int r0, r1; /* this thread's rows of the products over all T*B rows */")
  add("nnrt_share(rows, id, count, &r0, &r1);")
  if is_train then
    add("if (id == 0) {")
    add("    tape->T = T;")
    for _, L in ipairs(plan.layers) do
      add("    memcpy(tape->h_init%d, s->%s, sizeof tape->h_init%d);", L.index, cname.state_h(L.index), L.index)
      if L.cell == "lstm" then add("    memcpy(tape->c_init%d, s->%s, sizeof tape->c_init%d);", L.index, cname.state_c(L.index), L.index) end
    end
    add("}")
    -- The recurrence reads the state at t = 0 and the last copy writes it: in the wavefront a
    -- layer's owner may finish before thread 0 has copied h_init.
    if wave then sync("the starting state is on the tape") end
  end
  -- The recurrence of layer k over steps t0..t1 - 1, the cell update over unit blocks nb0..nb1;
  -- product = "whole" (one call) or "parts" (this thread's granules).
  local function recurrence(indent, k, t0, t1, nb0, nb1, product, after_step)
    local L = plan.layers[k]
    local names = ctx.kernels[L.index]
    local GHp, Hp, H = L.gates * L.padded, L.padded, L.hidden
    local h, c = cname.state_h(L.index), cname.state_c(L.index)
    local xp, dst, hn = xp_of(L), dst_of(k, L), hn_of(L)
    local function a(fmt, ...) add("%s" .. fmt, indent, ...) end
    a("for (int t = %s; t < %s; ++t) {", t0, t1)
    a("    %s *pre = %s + (size_t)t * %s * %d;", real, xp, B, GHp)
    local h_b, c_b = cgen.row(real, "s->" .. h, "b", H), cgen.row(real, "s->" .. c, "b", H)
    a("    const %s *h_prev = t == 0 ? %s : %s + (size_t)(t - 1) * %s * %d;", real, cgen.row(real, "s->" .. h), dst, B, Hp)
    local gru_hn = L.cell == "gru" and (", " .. hn) or ""
    if product == "whole" then
      a("    %s(%s, h_prev, t == 0 ? %d : %d, w, pre, pre, %d%s);", names.recurrent, B, H, Hp, GHp, gru_hn)
    else
      a("    if (count == 1) %s(%s, h_prev, t == 0 ? %d : %d, w, pre, pre, %d%s);", names.recurrent, B, H, Hp, GHp, gru_hn)
      a("    else {")
      product_parts(add, indent .. "        ", L, names.recurrent_part, string.format("%s, h_prev, t == 0 ? %d : %d, w", B, H, Hp),
        string.format("pre, pre, %d%s", GHp, gru_hn))
      a("    }")
    end
    a("    for (int b = 0; b < %s; ++b) {", B)
    a("        %s *h = %s + ((size_t)t * %s + b) * %d;", real, dst, B, Hp)
    if L.cell == "gru" then
      a("        const %s *h_prev_b = t == 0 ? %s : h_prev + (size_t)b * %d;", real, h_b, Hp)
      a("        %s(pre + (size_t)b * %d, %s + (size_t)b * %d, h_prev_b, h, %s, %s);", is_train and names.update_train or names.update_infer,
        GHp, hn, Hp, nb0, nb1)
    elseif L.cell == "lstm" then
      if is_train then
        a("        const %s *c_prev = t == 0 ? %s : tape->cs%d + ((size_t)(t - 1) * %s + b) * %d;", real, c_b, L.index, B, Hp)
        a("        %s(pre + (size_t)b * %d, c_prev, tape->cs%d + ((size_t)t * %s + b) * %d, tape->tanh_cs%d + ((size_t)t * %s + b) * %d, h, %s, %s);",
          names.update_train, GHp, L.index, B, Hp, L.index, B, Hp, nb0, nb1)
      else
        a("        %s(pre + (size_t)b * %d, %s, %s, h, %s, %s);", names.update_infer, GHp, c_b, c_b, nb0, nb1)
      end
    else
      a("        %s(pre + (size_t)b * %d, h, %s, %s);", is_train and names.update_train or names.update_infer, GHp, nb0, nb1)
    end
    a("    }")
    if after_step then a("    %s", after_step) end
    a("}")
  end
  local function input_projection(indent, k, row0, row1)
    local L = plan.layers[k]
    local src, ld = src_of(k)
    local GHp = L.gates * L.padded
    add("%s%s(%s - %s, %s + (size_t)%s * %d, %d, w, %s + (size_t)%s * %d, %d);", indent, ctx.kernels[L.index].input_seq, row1, row0,
      src, row0, ld, ld, xp_of(L), row0, GHp, GHp)
  end
  local function final_state(indent, k)
    local L = plan.layers[k]
    local Hp, H = L.padded, L.hidden
    local h, c = cname.state_h(L.index), cname.state_c(L.index)
    copy_rows(out, "    " .. indent, ctx, cgen.row(ctx.real, "s->" .. h),
      string.format("%s + (size_t)(T - 1) * %s * %d", dst_of(k, L), B, Hp), B, H, Hp)
    if is_train and L.cell == "lstm" then
      copy_rows(out, "    " .. indent, ctx, cgen.row(ctx.real, "s->" .. c),
        string.format("tape->cs%d + (size_t)(T - 1) * %s * %d", L.index, B, Hp), B, H, Hp)
    end
  end
  local function layer_header(indent, L)
    add("%s/* layer %d (%s %d -> %d): the input projection, one product over all T*B rows, then the sequential path, "
      .. "W_hh h_{t-1} and the cell update */", indent, L.index, L.cell, L.input, L.hidden)
  end
  local function layers_one_by_one(indent)
    for k, L in ipairs(plan.layers) do
      layer_header(indent, L)
      input_projection(indent, k, "0", "rows")
      recurrence(indent, k, "0", "T", "0", tostring(L.NB), "whole")
      final_state(indent, k)
    end
  end
  if split then
    for k, L in ipairs(plan.layers) do
      layer_header("", L)
      input_projection("", k, "r0", "r1")
      sync("every row of the projection is in")
      add("{")
      own_units(add, "    ", L)
      recurrence("    ", k, "0", "T", "u0", "u1", "parts", "nnrt_workers_sync(team); /* h_t is complete */")
      add("}")
      add("if (id == 0) { /* the final state (the recurrence no longer reads it) */")
      final_state("", k)
      add("}")
    end
  elseif wave then
    add("if (count == 1) {")
    layers_one_by_one("    ")
    add("} else { /* the layer wavefront: layer l on thread l %% count, %d steps at a time */", ctx.par.chunk)
    add("    for (int t0 = 0; t0 < T; t0 += %d) {", ctx.par.chunk)
    add("        const int t1 = t0 + %d < T ? t0 + %d : T;", ctx.par.chunk, ctx.par.chunk)
    for k, L in ipairs(plan.layers) do
      add("        if (%d %% count == id) { /* layer %d */", k - 1, L.index)
      if k > 1 then
        add("            nnrt_flag_wait(team, &a->done[%d], (unsigned)t1); /* layer %d has published these steps */", k - 2,
          plan.layers[k - 1].index)
      end
      input_projection("            ", k, "t0 * " .. B, "t1 * " .. B)
      recurrence("            ", k, "t0", "t1", "0", tostring(L.NB), "whole")
      add("            nnrt_flag_set(team, &a->done[%d], (unsigned)t1);", k - 1)
      add("            if (t1 == T) {")
      final_state("            ", k)
      add("            }")
      add("        }")
    end
    add("    }")
    add("}")
    sync("every layer is done")
  else
    layers_one_by_one("")
  end
  -- The head layers and the output by rows. Inference reuses the two act buffers with another
  -- row stride, so there the threads meet before each head layer (the previous readers of the
  -- buffer it writes are done); the tape has a buffer per layer and a thread's rows go through
  -- every head layer on their own.
  local src, ld = src_of(#plan.layers + 1)
  if last then
    src = string.format("%s + (size_t)(T - 1) * %s * %d", src, B, ld)
    add("nnrt_share(%s, id, count, &r0, &r1);", B)
  end
  for j, D in ipairs(plan.heads) do
    local names = ctx.heads[D.index]
    local dst = is_train and ("tape->head_out" .. D.index) or ("work->act" .. ((#plan.layers + j - 1) % 2))
    if not is_train and j > 1 then sync("the act buffer this layer writes (with another row stride) is no longer read") end
    add("/* head layer %d (%s %d -> %d): one product over %s rows */", D.index, D.activation, D.input, D.output, last and "the last step's B" or "all T*B")
    add("%s(r1 - r0, %s + (size_t)r0 * %d, %d, w, %s + (size_t)r0 * %d, %d);", names.seq, src, ld, ld, dst, D.padded, D.padded)
    if names.activation then add("%s(r1 - r0, %s + (size_t)r0 * %d);", names.activation, dst, D.padded) end
    src, ld = dst, D.padded
  end
  add("/* the output, unpadded */")
  copy_rows(out, "    ", ctx, string.format("y + (size_t)r0 * %d", plan.output), string.format("%s + (size_t)r0 * %d", src, ld),
    "r1 - r0", plan.output, ld)
  return join(out)
end

-- ---- Header pieces -----------------------------------------------------------------------------

local CELL_ENUM = { rnn_tanh = "NNRT_CELL_RNN_TANH", rnn_relu = "NNRT_CELL_RNN_RELU", gru = "NNRT_CELL_GRU", lstm = "NNRT_CELL_LSTM" }
local ACT_ENUM = { linear = "NNRT_ACT_LINEAR", relu = "NNRT_ACT_RELU", tanh = "NNRT_ACT_TANH", sigmoid = "NNRT_ACT_SIGMOID" }
local LOSS_ENUM = { mse = "NNRT_LOSS_MSE", cross_entropy = "NNRT_LOSS_CROSS_ENTROPY", bce = "NNRT_LOSS_BCE" }

local function cell_key(L) return L.cell == "rnn" and ("rnn_" .. L.activation) or L.cell end

function M.summary(plan)
  local parts = {}
  for _, L in ipairs(plan.layers) do
    table.insert(parts, L.cell == "rnn" and string.format("rnn(%d, %s)", L.hidden, L.activation) or string.format("%s(%d)", L.cell, L.hidden))
  end
  local head = {}
  for _, D in ipairs(plan.heads) do table.insert(head, string.format("dense(%d, %s)", D.output, D.activation)) end
  local spec = plan.spec
  return string.format("input %d -> %s%s; output %d at %s steps; seq_len %d, batch %d, %s, loss %s, math %s",
    spec.input, table.concat(parts, " -> "), #head > 0 and (" -> " .. table.concat(head, " -> ")) or "",
    plan.output, spec.output_at, spec.seq_len, spec.batch, spec.precision, spec.loss, spec.math)
end

local function params_fields(ctx)
  local out = {}
  for _, t in ipairs(ctx.plan.tensors) do
    local dims = ""
    for _, d in ipairs(t.shape) do dims = dims .. "[" .. d .. "]" end
    table.insert(out, string.format("    %s %s%s; /* %s %s */", ctx.real, cname.field(t.name), dims, t.name, cgen.shape_text(t.shape)))
  end
  return join(out)
end

local function state_fields(ctx)
  local out = {}
  local B = cname.macro(ctx.spec, "BATCH")
  for _, L in ipairs(ctx.plan.layers) do
    table.insert(out, string.format("    %s %s[%s][%d]; /* layer %d hidden state h [B][H] */", ctx.real, cname.state_h(L.index), B, L.hidden, L.index))
    if L.cell == "lstm" then
      table.insert(out, string.format("    %s %s[%s][%d]; /* layer %d cell state c [B][H] */", ctx.real, cname.state_c(L.index), B, L.hidden, L.index))
    end
  end
  return join(out)
end

local function work_fields(ctx)
  local plan, spec = ctx.plan, ctx.spec
  local rows = string.format("%s * %s", cname.macro(spec, "SEQ_LEN"), cname.macro(spec, "BATCH"))
  local out = {}
  local function field(name, size, comment) cgen.array_field(out, ctx.real, name, size, comment) end
  if ctx.par.sequence == "wave" then
    -- The layers run side by side: each has its own buffers.
    for _, L in ipairs(plan.layers) do
      field("xp" .. L.index, rows .. " * " .. L.gates * L.padded, string.format("[T*B][%d] layer %d pre-activations", L.gates * L.padded, L.index))
      field("hs" .. L.index, rows .. " * " .. L.padded, string.format("[T*B][%d] layer %d outputs", L.padded, L.index))
      if L.cell == "gru" then
        field("hn" .. L.index, cname.macro(spec, "BATCH") .. " * " .. L.padded, string.format("[B][%d] layer %d: W_hn h + b_hn of the current step", L.padded, L.index))
      end
    end
  else
    field("xp", rows .. " * " .. plan.projection_width, "[T*B][G*Hp] pre-activations of the current layer")
    field("hn", cname.macro(spec, "BATCH") .. " * " .. plan.hidden_width, "[B][Hp] gru: W_hn h + b_hn of the current step")
  end
  field("act0", rows .. " * " .. plan.activation_width, "[T*B][width] layer (or head layer) outputs, used in turn with act1")
  field("act1", rows .. " * " .. plan.activation_width, "[T*B][width]")
  return join(out)
end

local function descriptor(ctx)
  local plan = ctx.plan
  local P = ctx.spec.name .. "_" -- shared by every variant
  local out = {}
  table.insert(out, string.format("static const nnrt_layer_desc %s_layers[%d] = {", P, #plan.layers))
  for _, L in ipairs(plan.layers) do
    table.insert(out, string.format("    {%s, %d, %d},", CELL_ENUM[cell_key(L)], L.input, L.hidden))
  end
  table.insert(out, "};")
  local heads = "NULL"
  if #plan.heads > 0 then
    table.insert(out, string.format("static const nnrt_head_desc %s_heads[%d] = {", P, #plan.heads))
    for _, D in ipairs(plan.heads) do
      table.insert(out, string.format("    {%s, %d, %d},", ACT_ENUM[D.activation], D.input, D.output))
    end
    table.insert(out, "};")
    heads = P .. "_heads"
  end
  table.insert(out, string.format("static const nnrt_param_desc %s_tensors[%d] = {", P, #plan.tensors))
  for _, t in ipairs(plan.tensors) do
    table.insert(out, string.format("    {\"%s\", %d, {%d, %d}, %d, %d, %.17g},", t.name, #t.shape, t.shape[1], t.shape[2] or 0,
      t.offset, t.count, t.bound))
  end
  table.insert(out, "};")
  for _, t in ipairs(plan.tensors) do
    table.insert(out, string.format("_Static_assert(offsetof(%s, %s) == %d * sizeof(%s), \"%s: offset\");",
      ctx.params_type, cname.field(t.name), t.offset, ctx.real, t.name))
  end
  return join(out), heads
end

-- The equivalent PyTorch module, with the same tensor names, shapes and dtype.
function M.python(plan, templates, meta)
  local spec = plan.spec
  local layers, heads = {}, {}
  for _, L in ipairs(plan.layers) do
    table.insert(layers, string.format('("%s", %s, %d, %d)', L.cell, L.activation and ('"' .. L.activation .. '"') or "None",
      L.input, L.hidden))
  end
  for _, D in ipairs(plan.heads) do
    table.insert(heads, string.format('("%s", %d, %d)', D.activation, D.input, D.output))
  end
  return template.render("templates/model.py", templates["model.py"], {
    name = spec.name, version = meta.version, spec_path = spec.path, summary = M.summary(plan),
    input = tostring(spec.input), output = tostring(plan.output), seq_len = tostring(spec.seq_len),
    batch = tostring(spec.batch), loss = spec.loss, output_at = spec.output_at,
    torch_dtype = spec.precision == "f64" and "torch.float64" or "torch.float32",
    layers = "[" .. table.concat(layers, ", ") .. "]", heads = "[" .. table.concat(heads, ", ") .. "]",
  })
end

-- ---- The model ---------------------------------------------------------------------------------

-- The entry points of one backend variant as static functions <P>_pack, and <P>_step_mt,
-- _forward_mt, _forward_train_mt, _backward_mt, which take a worker team (NULL: the caller's
-- thread alone); the public ones (templates/model.c) check arguments and call them. Each entry point's body is a job of the
-- team (nnrt_workers_run); on one thread, or where sharing cannot pay, the caller runs it alone.
local function impl_functions(ctx)
  local spec, real, P = ctx.spec, ctx.real, ctx.P
  local name = spec.name
  local params, weights = ctx.params_type, cname.type(spec, "weights")
  local B = cname.macro(spec, "BATCH")
  local out = {}
  local function fn(signature, body)
    table.insert(out, signature .. "\n{\n" .. body .. "\n}")
  end
  local view = ctx.multi and string.format("    %s *w = (%s *)wv;\n", ctx.weights_type, ctx.weights_type) or ""
  fn(string.format("static void %s_pack(const %s *p, %s *%s)", P, params, weights, ctx.multi and "wv" or "w"), view .. pack_body(ctx))
  -- entry: name, arguments { type, name }, the job's prologue, its body, whether sharing pays,
  -- and the step's stack scratch.
  local function entry(e)
    local fields, decls, values = {}, {}, {}
    for _, a in ipairs(e.args) do
      table.insert(fields, string.format("    %s%s;", a[1], a[2]))
      table.insert(decls, a[1] .. a[2])
      table.insert(values, a[2])
    end
    for _, sc in ipairs(e.scratch or {}) do table.insert(fields, string.format("    %s *%s;", real, sc[1])) end
    if e.flags then table.insert(fields, string.format("    nnrt_flag done[%d]; /* the wavefront: steps each layer has published */", e.flags)) end
    local args_type = string.format("%s_%s_args", P, e.name)
    table.insert(out, string.format("typedef struct %s {\n%s\n} %s;", args_type, join(fields), args_type))
    local prologue = { string.format("    %s *a = arg;", args_type) }
    for _, a in ipairs(e.args) do
      if a[2] == "w" then
        table.insert(prologue, string.format("    const %s *w = a->w;", ctx.weights_type))
      else
        table.insert(prologue, string.format("    %s%s = a->%s;", a[1], a[2], a[2]))
      end
    end
    for _, sc in ipairs(e.scratch or {}) do table.insert(prologue, string.format("    %s *%s = a->%s;", real, sc[1], sc[1])) end
    for _, line in ipairs(e.prologue or {}) do table.insert(prologue, "    " .. line) end
    fn(string.format("static void %s_%s_job(void *arg, int id, int count, nnrt_workers *team)", P, e.name),
      join(prologue) .. "\n" .. e.body)
    local body = {}
    for _, sc in ipairs(e.scratch or {}) do
      table.insert(body, string.format("    _Alignas(64) %s %s[%d];", real, sc[1], sc[2]))
    end
    local init = {}
    for _, v in ipairs(values) do table.insert(init, "." .. v .. " = " .. v) end
    for _, sc in ipairs(e.scratch or {}) do table.insert(init, "." .. sc[1] .. " = " .. sc[1]) end
    table.insert(body, string.format("    %s a = {%s};", args_type, table.concat(init, ", ")))
    if e.pays then
      table.insert(body, string.format("    if (nnrt_workers_threads(team) > 1) nnrt_workers_run(team, %s_%s_job, &a);", P, e.name))
      table.insert(body, string.format("    else %s_%s_job(&a, 0, 1, NULL);", P, e.name))
    else
      table.insert(body, "    (void)team; /* too little work per step to share: the caller's thread alone */")
      table.insert(body, string.format("    %s_%s_job(&a, 0, 1, NULL);", P, e.name))
    end
    fn(string.format("static void %s_%s_mt(nnrt_workers *team, %s)", P, e.name, table.concat(decls, ", ")), join(body))
  end
  local W = { "const void *", "w" }
  local scratch = step_scratch(ctx)
  entry({ name = "step", args = { W, { name .. "_state *", "s" }, { "const " .. real .. " *", "x" }, { real .. " *", "y" } },
    scratch = scratch, body = step_body(ctx), pays = ctx.par.step ~= "one" })
  local rows = "const int rows = T * " .. B .. ";"
  entry({ name = "forward", args = { W, { name .. "_state *", "s" }, { name .. "_work *", "work" }, { "int ", "T" },
    { "const " .. real .. " *", "x" }, { real .. " *", "y" } }, prologue = { rows }, body = forward_body(ctx, "work"),
    pays = ctx.par.sequence ~= "one", flags = ctx.par.sequence == "wave" and #ctx.plan.layers or nil })
  entry({ name = "forward_train", args = { W, { name .. "_state *", "s" }, { name .. "_tape *", "tape" }, { "int ", "T" },
    { "const " .. real .. " *", "x" }, { real .. " *", "y" } }, prologue = { rows }, body = forward_body(ctx, "tape"),
    pays = ctx.par.train ~= "one", flags = ctx.par.train == "wave" and #ctx.plan.layers or nil })
  entry({ name = "backward", args = { { "const " .. params .. " *", "p" }, { name .. "_tape *", "tape" }, { "const " .. real .. " *", "x" },
    { "const " .. real .. " *", "dy" }, { params .. " *", "g" }, { real .. " *", "dx" } },
    prologue = { "const int T = tape->T;", rows }, body = train.backward_body(ctx), pays = ctx.par.backward ~= "one",
    flags = ctx.par.backward == "wave" and #ctx.plan.layers or nil })
  return join(out)
end

local function new_ctx(plan, backend, multi)
  local spec, p = plan.spec, plan.spec.precision
  local ctx = {
    plan = plan, spec = spec, B = backend, p = p, real = backend.real(p), V = plan.V, real_bytes = plan.real_bytes,
    multi = multi, params_type = cname.type(spec, "params"), kernels = {}, heads = {},
  }
  -- Private names: <name>__* for one backend, <name>__<isa>_* for each of several.
  ctx.P = multi and (spec.name .. "__" .. backend.name) or (spec.name .. "_")
  ctx.vec = ctx.P .. "_vec"
  ctx.weights_type = multi and (ctx.P .. "_weights") or cname.type(spec, "weights")
  for _, L in ipairs(plan.layers) do ctx.has_gru = ctx.has_gru or L.cell == "gru" end
  ctx.par = parallel.build(plan)
  return ctx
end

-- Everything of one backend variant: its preamble, kernels and entry points.
local function variant_text(ctx)
  local text = {}
  table.insert(text, cgen.banner("Begin backend " .. ctx.B.name .. ": types, activations, tails"))
  table.insert(text, ctx.B.preamble(ctx.P, ctx.p, ctx.spec.math, ctx.multi))
  table.insert(text, cgen.banner("End backend " .. ctx.B.name))
  if ctx.multi then
    table.insert(text, string.format("typedef struct %s {\n%s\n} %s;", ctx.weights_type, weights_fields(ctx), ctx.weights_type))
  end
  table.insert(text, train.gradient_kernels(ctx))
  for _, L in ipairs(ctx.plan.layers) do table.insert(text, layer_kernels(ctx, L)) end
  for _, D in ipairs(ctx.plan.heads) do table.insert(text, head_kernels(ctx, D)) end
  table.insert(text, cgen.banner("Begin " .. ctx.B.name .. " entry points"))
  table.insert(text, impl_functions(ctx))
  table.insert(text, cgen.banner("End " .. ctx.B.name .. " entry points"))
  local code = table.concat(text, "\n\n")
  if ctx.multi and ctx.B.target then
    -- Every function of the variant is compiled for its ISA; the file itself needs no -m flags.
    code = ("\n" .. code):gsub("\nstatic ", "\nstatic __attribute__((target(\"" .. ctx.B.target .. "\"))) "):sub(2)
  end
  return code
end

-- The run-time choice among several variants (--isa multi).
local function dispatch_text(ctxs)
  local spec = ctxs[1].spec
  local name, real = spec.name, ctxs[1].real
  local out = {
    string.format("typedef struct %s__variant {", name),
    "    const char *isa;",
    string.format("    void (*pack)(const %s_params *, %s_weights *);", name, name),
    string.format("    void (*step_mt)(nnrt_workers *, const void *, %s_state *, const %s *, %s *);", name, real, real),
    string.format("    void (*forward_mt)(nnrt_workers *, const void *, %s_state *, %s_work *, int, const %s *, %s *);", name, name, real, real),
    string.format("    void (*forward_train_mt)(nnrt_workers *, const void *, %s_state *, %s_tape *, int, const %s *, %s *);", name, name, real, real),
    string.format("    void (*backward_mt)(nnrt_workers *, const %s_params *, %s_tape *, const %s *, const %s *, %s_params *, %s *);", name, name, real, real, name, real),
    "    const char *feature; /* __builtin_cpu_supports name, NULL: always */",
    string.format("} %s__variant;", name),
    "",
    "/* Best first. */",
    string.format("static const %s__variant %s__variants[%d] = {", name, name, #ctxs),
  }
  for _, ctx in ipairs(ctxs) do
    local P = ctx.P
    table.insert(out, string.format("    {\"%s\", %s_pack, %s_step_mt, %s_forward_mt, %s_forward_train_mt, %s_backward_mt, %s},",
      ctx.B.name, P, P, P, P, P,
      ctx.B.cpu_feature and ('"' .. ctx.B.cpu_feature .. '"') or "NULL"))
  end
  table.insert(out, "};")
  table.insert(out, string.format("static _Atomic(const %s__variant *) %s__choice;", name, name))
  table.insert(out, "")
  table.insert(out, string.format("static int %s__runs(const %s__variant *v)", name, name))
  table.insert(out, "{")
  table.insert(out, "    __builtin_cpu_init();")
  table.insert(out, "    if (v->feature == NULL) return 1;")
  for _, ctx in ipairs(ctxs) do
    if ctx.B.cpu_feature then
      local checks = {}
      for feature in ctx.B.cpu_feature:gmatch("[^,]+") do table.insert(checks, string.format("__builtin_cpu_supports(\"%s\")", feature)) end
      table.insert(out, string.format("    if (strcmp(v->feature, \"%s\") == 0) return %s;", ctx.B.cpu_feature, table.concat(checks, " && ")))
    end
  end
  table.insert(out, "    return 0;")
  table.insert(out, "}")
  table.insert(out, "")
  table.insert(out, "/* The variant in use: the best this CPU runs, chosen on first use (or by _select_isa). */")
  table.insert(out, string.format("static const %s__variant *%s__chosen(void)", name, name))
  table.insert(out, "{")
  table.insert(out, string.format("    const %s__variant *v = atomic_load_explicit(&%s__choice, memory_order_relaxed);", name, name))
  table.insert(out, "    if (v == NULL) {")
  table.insert(out, string.format("        for (v = %s__variants; !%s__runs(v); ++v) continue;", name, name))
  table.insert(out, string.format("        atomic_store_explicit(&%s__choice, v, memory_order_relaxed);", name))
  table.insert(out, "    }")
  table.insert(out, "    return v;")
  table.insert(out, "}")
  table.insert(out, "")
  table.insert(out, string.format("const char *%s_isa(void) { return %s__chosen()->isa; }", name, name))
  table.insert(out, "")
  table.insert(out, string.format("int %s_select_isa(const char *isa)", name))
  table.insert(out, "{")
  table.insert(out, string.format("    for (int i = 0; i < %d; ++i) {", #ctxs))
  table.insert(out, string.format("        const %s__variant *v = &%s__variants[i];", name, name))
  table.insert(out, "        if (strcmp(v->isa, isa) != 0) continue;")
  table.insert(out, string.format("        if (!%s__runs(v)) return nnrt_fail(NNRT_ERR_ARG, \"%s: this CPU cannot run the %%s variant\", isa);", name, name))
  table.insert(out, string.format("        atomic_store_explicit(&%s__choice, v, memory_order_relaxed);", name))
  table.insert(out, "        return NNRT_OK;")
  table.insert(out, "    }")
  table.insert(out, string.format("    return nnrt_fail(NNRT_ERR_ARG, \"%s: no variant '%%s' in this build\", isa);", name))
  table.insert(out, "}")
  return join(out)
end

function M.model(plan, sched, backend, templates, meta)
  local spec = plan.spec
  local p = spec.precision
  assert(sched.forward, "the schedule comes first")
  local multi = backend.variants ~= nil
  local ctxs, sections = {}, {}
  for _, variant in ipairs(backend.variants or { backend }) do
    local vplan = multi and plan_pass.build(spec, plan.machine, variant) or plan
    local ctx = new_ctx(vplan, variant, multi)
    table.insert(ctxs, ctx)
    table.insert(sections, variant_text(ctx))
  end
  -- Shared structs are laid out for the variant with the widest vectors (the largest padding).
  local widest = ctxs[1]
  for _, ctx in ipairs(ctxs) do if ctx.V > widest.V then widest = ctx end end
  local name, NAME = spec.name, cname.upper(spec)
  local desc, heads = descriptor(widest)
  local common = {
    name = name, NAME = NAME, version = meta.version, spec_path = spec.path,
    summary = M.summary(plan), isa = backend.name, compile = meta.compile,
  }
  local function vars(extra)
    local v = {}
    for k, value in pairs(common) do v[k] = value end
    for k, value in pairs(extra) do v[k] = value end
    return v
  end
  local real = widest.real
  local weights = weights_fields(widest)
  if multi then
    local most = 0
    for _, ctx in ipairs(ctxs) do most = math.max(most, ctx.weights_count) end
    weights = string.format("    %s packed[%d]; /* packed for the variant in use (%s_isa()) */", real, most, name)
  end
  local target = spec.loss == "cross_entropy" and "int32_t" or real
  local header = template.render("templates/model.h", templates["model.h"], vars({
    input = tostring(spec.input), output = tostring(plan.output), seq_len = tostring(spec.seq_len),
    batch = tostring(spec.batch), num_params = tostring(plan.num_params), real = real,
    params_fields = params_fields(widest), state_fields = state_fields(widest), work_fields = work_fields(widest),
    weights_fields = weights, tape_fields = train.tape_fields(widest), target = target,
    y_shape = spec.output_at == "last" and "[B][O]" or "[T][B][O]",
    target_shape = (spec.output_at == "last" and "[B]" or "[T][B]") .. (spec.loss == "cross_entropy" and "" or "[O]"),
  }))
  if multi then
    table.insert(sections, dispatch_text(ctxs))
  else
    table.insert(sections, string.format("const char *%s_isa(void) { return \"%s\"; }\n\nint %s_select_isa(const char *isa)\n{\n"
      .. "    if (strcmp(isa, \"%s\") == 0) return NNRT_OK;\n"
      .. "    return nnrt_fail(NNRT_ERR_ARG, \"%s: generated for %s only, not %%s\", isa);\n}", name, backend.name, name, backend.name,
      name, backend.name))
  end
  local source = template.render("templates/model.c", templates["model.c"], vars({
    abi = "4", includes = multi and "#include <stdatomic.h>\n#include <immintrin.h>" or "",
    kernels = table.concat(sections, "\n\n"), impl = multi and (name .. "__chosen()->") or (widest.P .. "_"),
    loss_rows = spec.output_at == "last" and (NAME .. "_BATCH") or ("T * " .. NAME .. "_BATCH"),
    descriptor = desc, heads = heads, num_layers = tostring(#plan.layers), num_heads = tostring(#plan.heads),
    num_tensors = tostring(#plan.tensors), dtype = p == "f64" and "NNRT_F64" or "NNRT_F32",
    target_dtype = spec.loss == "cross_entropy" and "NNRT_I32" or (p == "f64" and "NNRT_F64" or "NNRT_F32"),
    output_last = spec.output_at == "last" and "1" or "0", loss = LOSS_ENUM[spec.loss],
  }))
  local main = template.render("templates/main.c", templates["main.c"],
    { name = name, version = meta.version, spec_path = spec.path, compile = meta.compile })
  return { header = header, source = source, main = main, python = M.python(plan, templates, meta) }
end

return M
