-- emit_train.lua — what training adds to the emitted model: the tape the training forward
-- records, and the backward pass (BPTT), each kernel beside the forward one it reverses.
--
-- The backward sweep over time computes only what is inherently sequential: the cell backward
-- (elementwise) and W_hh^T delta_t. It stores each step's gate gradients; every weight gradient is
-- then one product over all T*B rows (dW = sum_t delta_t input_t^T), and so is the gradient of
-- the layer's input (delta W_ih), handed to the layer below. The backward reads the canonical
-- (PyTorch-layout) weights, vectorised along their rows, and writes canonical gradients.
local cname = require("rnnc.cname")
local cgen = require("rnnc.cgen")
local kernels = require("rnnc.kernels")

local M = {}

local join = cgen.join

-- ---- Blocking of the backward products ---------------------------------------------------------

-- Both backward products are blocked m rows x n vectors of k: each step of the kernel's inner
-- loop loads n vectors and broadcasts m scalars into m*n multiply-adds. step_cycles(m, n) is a
-- cost model of one step; the cost of a shape sums it over the blocks: near-equal k groups of at
-- most n vectors (kernels.k_groups), full blocks of m rows, and the rows left over run one at a
-- time. The cheapest shape within the registers wins (ties: more rows).
local function best_blocking(regs, KB, rows, max_m, max_n, step_cycles)
  local best, best_cost = { 1, 1 }, math.huge
  for m = 1, math.min(rows, max_m) do
    for n = 1, math.min(KB, max_n) do
      if m * n + n + 2 <= regs then -- accumulators, the loaded vectors, a broadcast, addresses
        local groups, cost, kb = (KB + n - 1) // n, 0, 0
        for i = 1, groups do
          local width = (KB - kb) // (groups - i + 1)
          cost = cost + (rows // m) * step_cycles(m, width) + (rows % m) * step_cycles(1, width)
          kb = kb + width
        end
        if cost < best_cost - 1e-9 or (cost < best_cost + 1e-9 and m > best[1]) then best, best_cost = { m, n }, cost end
      end
    end
  end
  return best[1], best[2]
end

-- The weight gradients, dW[r][k] += sum_n dg[n][r] x[n][k]: mr weight rows (of H per gate) x nk
-- vectors of x. A step takes the FMA latency (4 cycles), the issue of its FMAs and loads (2 per
-- cycle each), plus a cycle of loop overhead. At most 4 vectors: measured on AVX-512 (dW_hh, LSTM
-- 2x128 and 2x256 at B = 16), 3 x 6 ran at 200 GFLOP/s, 4 x 4 to 8 x 3 at 255-270.
local function weight_gradient_blocking(regs, KB, H)
  return best_blocking(regs, KB, H, 8, 4, function(mr, nk) return math.max(4, mr * nk / 2, (mr + nk) / 2) + 1 end)
end

-- dst[row][k] = sum_r W[r][k] dg[row][r] (the carry, the input gradient): mb rows x nk vectors of
-- a weight row. As the forward's model (kernels.forward_blocking), plus, when W is larger than
-- half of L1, the time to bring its nk vectors from L2 (2 cycles each: W is streamed again for
-- every block of mb rows). Measured on AVX-512 (LSTM 2x128, B = 16): 3 x 6 with one row left
-- over ran the carry at 60% of the FMA peak; 8 x 2, 80%.
local function transposed_blocking(regs, KB, rows_hint, w_bytes, l1)
  local stream = w_bytes > l1 // 2
  return best_blocking(regs, KB, rows_hint, 8, 6, function(mb, nk)
    return math.max(4, mb * nk / 2, (mb + nk) / 2, stream and 2 * nk or 0)
  end)
end

local function k_shape(K, V) return (K + V - 1) // V, K % V end

-- The row stride of a layer's gate gradients (dgates), in reals: G*Hp, plus one cache line when
-- G*Hp is an even number of lines. The weight gradients broadcast dgates[row][r] for a block of
-- rows; with a stride of 2 or 4 KiB those rows all fall into one or two sets of L1 and evict each
-- other (measured, LSTM 2x256 B = 16, dW_hh: 186 GFLOP/s at 4096 bytes, 199 at 4160).
local function dgates_stride(ctx, L)
  local GHp, line = L.gates * L.padded, 64 // ctx.real_bytes
  if (GHp * ctx.real_bytes) % 128 == 0 then return GHp + line end
  return GHp
end

-- ---- The tape ------------------------------------------------------------------------------

function M.tape_fields(ctx)
  local plan, spec, real = ctx.plan, ctx.spec, ctx.real
  local B = cname.macro(spec, "BATCH")
  local rows = string.format("%s * %s", cname.macro(spec, "SEQ_LEN"), B)
  local out = {}
  -- The small [B][H] starting states and T go last: every array before them then starts on a
  -- cache line (an int T in front once put every vector load of the backward across two lines).
  local tail = {}
  local function field(name, size, comment) cgen.array_field(out, real, name, size, comment) end
  for _, L in ipairs(plan.layers) do
    local l, H, Hp, GHp = L.index, L.hidden, L.padded, L.gates * L.padded
    table.insert(tail, string.format("    %s h_init%d[%s][%d]; /* layer %d: h the sequence started from */", real, l, B, H, l))
    if L.cell == "lstm" then
      table.insert(tail, string.format("    %s c_init%d[%s][%d]; /* layer %d: c the sequence started from */", real, l, B, H, l))
    end
    field("gates" .. l, rows .. " * " .. GHp, string.format("[T*B][%d] %s", GHp,
      L.cell == "rnn" and "pre-activations" or L.cell == "lstm" and "gate activations i,f,g,o" or "r, z, n"))
    field("hs" .. l, rows .. " * " .. Hp, string.format("[T*B][%d] outputs h_t", Hp))
    if L.cell == "lstm" then
      field("cs" .. l, rows .. " * " .. Hp, string.format("[T*B][%d] cell states c_t", Hp))
      field("tanh_cs" .. l, rows .. " * " .. Hp, string.format("[T*B][%d] tanh(c_t), so the backward need not recompute it", Hp))
    end
    if L.cell == "gru" then field("hn" .. l, rows .. " * " .. Hp, string.format("[T*B][%d] W_hn h_{t-1} + b_hn", Hp)) end
  end
  local head_rows = spec.output_at == "last" and B or rows
  local widest_head = 1
  for _, D in ipairs(plan.heads) do
    field("head_out" .. D.index, head_rows .. " * " .. D.padded, string.format("[rows][%d] head layer %d outputs", D.padded, D.index))
    widest_head = math.max(widest_head, D.padded)
  end
  table.insert(out, "    /* backward scratch */")
  if ctx.par.backward == "wave" then
    -- The reverse wavefront sweeps the layers side by side: each has its own.
    for k, L in ipairs(plan.layers) do
      local l, Hp, GHp = L.index, L.padded, L.gates * L.padded
      local ldg = dgates_stride(ctx, L)
      field("dgates" .. l, rows .. " * " .. ldg, string.format("[T*B][%d] layer %d: gradients of the gate pre-activations (%d used)", ldg, l, GHp))
      if L.cell == "gru" then field("dhn" .. l, rows .. " * " .. Hp, string.format("[T*B][%d] layer %d: gradient of W_hn h + b_hn", Hp, l)) end
      field("carry" .. l, B .. " * " .. Hp, string.format("[B][%d] layer %d: dL/dh_{t-1} carried back through time", Hp, l))
      if L.cell == "lstm" then field("carry_c" .. l, B .. " * " .. Hp, string.format("[B][%d] layer %d: dL/dc_{t-1}", Hp, l)) end
      if k < #plan.layers then field("dh" .. l, rows .. " * " .. Hp, string.format("[T*B][%d] the gradient reaching layer %d's output", Hp, l)) end
    end
  else
    local widest = 0
    for _, L in ipairs(plan.layers) do widest = math.max(widest, dgates_stride(ctx, L)) end
    field("dgates", rows .. " * " .. widest, "[T*B][stride] gradients of the gate pre-activations, G*Hp used per row")
    if ctx.has_gru then field("dhn", rows .. " * " .. plan.hidden_width, "[T*B][Hp] gru: gradient of W_hn h + b_hn") end
    field("carry", B .. " * " .. plan.hidden_width, "[B][Hp] dL/dh_{t-1} carried back through time")
    field("carry_c", B .. " * " .. plan.hidden_width, "[B][Hp] lstm: dL/dc_{t-1}")
  end
  field("dact0", rows .. " * " .. plan.activation_width, "[T*B][width] gradients flowing down, used in turn with dact1")
  field("dact1", rows .. " * " .. plan.activation_width, "[T*B][width]")
  if #plan.heads > 0 then field("dpre", head_rows .. " * " .. widest_head, "[rows][Op] a head layer's pre-activation gradient") end
  for _, line in ipairs(tail) do table.insert(out, line) end
  table.insert(out, "    int T; /* timesteps recorded by the last training forward */")
  return join(out)
end

-- ---- Kernels -----------------------------------------------------------------------------------

function M.gradient_kernels(ctx)
  return cgen.banner("Backward kernels sit beside the forward ones of each layer")
end

-- The kernel's text, and its k groups (what threads share: ctx.groups[name]).
-- w_rows: the rows of W streamed per step of the sweep (gru's two carry products, gates r, z and
-- gate n, share one W_hh and must share their k groups, so they are blocked alike).
local function transposed(ctx, name, G, H, Hp, K, accumulate, rows_hint, comment, w_rows)
  local KB, ktail = k_shape(K, ctx.V)
  local w_bytes = (w_rows or G * H) * K * ctx.real_bytes
  local mb, nk = transposed_blocking(ctx.B.registers, KB, rows_hint, w_bytes, ctx.plan.machine.l1d or 32768)
  local k = { name = name, G = G, H = H, Hp = Hp, K = K, KB = KB, ktail = ktail, accumulate = accumulate, mb = mb, nk = nk,
    comment = comment }
  ctx.groups = ctx.groups or {}
  ctx.groups[name] = kernels.k_groups(k)
  return kernels.transposed_product(ctx, k)
end

local function weight_gradient(ctx, name, G, H, Hp, K, comment)
  local KB, ktail = k_shape(K, ctx.V)
  local mr, nk = weight_gradient_blocking(ctx.B.registers, KB, H)
  -- Row chunks whose x fits in half of L1 (what the machine reports; 32 KiB if unknown).
  local l1 = ctx.plan.machine.l1d or 32768
  local chunk = math.max(8, (l1 // 2) // (K * ctx.real_bytes))
  return kernels.weight_gradient(ctx, { name = name, G = G, H = H, Hp = Hp, K = K, KB = KB, ktail = ktail, mr = mr, nk = nk,
    chunk = chunk, comment = comment })
end

function M.layer_kernels(ctx, L, text)
  local P, names = ctx.P, ctx.kernels[L.index]
  local l, H, Hp, G, I, B = L.index, L.hidden, L.padded, L.gates, L.input, ctx.spec.batch
  local function name(what) return string.format("%s_l%d_%s", P, l, what) end
  names.cell_backward = name("cell_backward")
  table.insert(text, kernels.cell_backward(ctx, names.cell_backward, L))
  local hh_rows = L.cell == "gru" and 2 or G
  names.carry = name("carry")
  table.insert(text, transposed(ctx, names.carry, hh_rows, H, Hp, H, L.cell == "gru", B,
    string.format("carry[b][k] %s sum over rows r of W_hh[r][k] dgates[b][r]: dL/dh_{t-1}, the sequential part of layer %d's backward%s.",
      L.cell == "gru" and "+=" or "=", l, L.cell == "gru" and " (gates r, z)" or ""), G * H))
  if L.cell == "gru" then
    names.carry_n = name("carry_n")
    table.insert(text, transposed(ctx, names.carry_n, 1, H, Hp, H, true, B,
      string.format("carry[b][k] += sum over units j of W_hn[j][k] dhn[b][j] (layer %d, gate n).", l), G * H))
  end
  names.input_grad = name("input_gradient")
  local all_rows = ctx.spec.seq_len * B
  table.insert(text, transposed(ctx, names.input_grad, G, H, Hp, I, false, all_rows,
    string.format("dx[row][k] = sum over rows r of W_ih[r][k] dgates[row][r]: the gradient of layer %d's input, all rows at once.", l)))
  names.ih_grad = name("weight_ih_gradient")
  table.insert(text, weight_gradient(ctx, names.ih_grad, G, H, Hp, I,
    string.format("dW_ih[r][k] += sum over all T*B rows of dgates[row][r] x[row][k] (layer %d).", l)))
  names.hh_grad = name("weight_hh_gradient")
  table.insert(text, weight_gradient(ctx, names.hh_grad, hh_rows, H, Hp, H,
    string.format("dW_hh[r][k] += sum over rows of dgates[row][r] h_{t-1}[row][k] (layer %d%s).", l, L.cell == "gru" and ", gates r, z" or "")))
  if L.cell == "gru" then
    names.hh_grad_n = name("weight_hn_gradient")
    table.insert(text, weight_gradient(ctx, names.hh_grad_n, 1, H, Hp, H,
      string.format("dW_hn[j][k] += sum over rows of dhn[row][j] h_{t-1}[row][k] (layer %d).", l)))
  end
  names.bias_grad = name("bias_gradient")
  table.insert(text, kernels.bias_gradient(ctx, names.bias_grad, G, L.NB, L.tail, H, Hp))
  if L.cell == "gru" then
    names.bias_grad_rz = name("bias_rz_gradient")
    table.insert(text, kernels.bias_gradient(ctx, names.bias_grad_rz, 2, L.NB, L.tail, H, Hp))
    names.bias_grad_n = name("bias_n_gradient")
    table.insert(text, kernels.bias_gradient(ctx, names.bias_grad_n, 1, L.NB, L.tail, H, Hp))
  end
end

function M.head_kernels(ctx, D, text)
  local P, names = ctx.P, ctx.heads[D.index]
  local function name(what) return string.format("%s_head%d_%s", P, D.index, what) end
  local rows_hint = ctx.spec.batch * (ctx.spec.output_at == "last" and 1 or ctx.spec.seq_len)
  names.activation_backward = name("activation_backward")
  table.insert(text, kernels.activation_backward(ctx, names.activation_backward, D.activation, D.output, D.NB, D.tail, D.padded))
  names.weight_grad = name("weight_gradient")
  table.insert(text, weight_gradient(ctx, names.weight_grad, 1, D.output, D.padded, D.input,
    string.format("dW[o][k] += sum over rows of dpre[row][o] x[row][k] (head layer %d).", D.index)))
  names.bias_grad = name("bias_gradient")
  table.insert(text, kernels.bias_gradient(ctx, names.bias_grad, 1, D.NB, D.tail, D.output, D.padded))
  names.input_grad = name("input_gradient")
  table.insert(text, transposed(ctx, names.input_grad, 1, D.output, D.padded, D.input, false, rows_hint,
    string.format("dx[row][k] = sum over o of W[o][k] dpre[row][o]: the gradient of head layer %d's input.", D.index)))
end

-- ---- The backward entry point ------------------------------------------------------------------

-- The backward as a job of the team. One thread does it all. With "split" several share every
-- product over all rows by rows, every weight and bias gradient by weight rows and units, and
-- the sweep back through time by units: a thread's units are the k range of its share of the
-- carry product (W_hh^T delta), so the next step's cell backward reads only the carry its own
-- thread wrote, and the threads meet once per step, when every gate gradient of the step is in.
-- With "wave" (the reverse wavefront) layer l sweeps on thread l % count, a chunk of steps at a
-- time from the end, as soon as layer l + 1 has published the gradient of its input for the
-- chunk; each layer has its own gate gradients and carry. The weight gradients come after every
-- sweep, shared by weight rows either way.
function M.backward_body(ctx)
  local plan, spec, real = ctx.plan, ctx.spec, ctx.real
  local B = cname.macro(spec, "BATCH")
  local last = spec.output_at == "last"
  local split, wave = ctx.par.backward == "split", ctx.par.backward == "wave"
  local out = {}
  local function add(fmt, ...) table.insert(out, "    " .. string.format(fmt, ...)) end
  local function sync(why) if split or wave then add("nnrt_workers_sync(team); /* %s */", why) end end
  local function groups(name) return #ctx.groups[name] end
  local turn = 0
  local function next_dact()
    turn = turn + 1
    return "tape->dact" .. ((turn - 1) % 2)
  end
  local f = function(t) return cname.field(t.name) end
  if not (split or wave) then add("(void)id; (void)count; (void)team;") end
  add("int r0, r1, j0, j1, nb0, nb1; /* this thread's rows, weight rows and unit blocks */")
  -- The gradient flowing down: (buffer, row stride).
  local grad, ld = "dy", plan.output
  local head_rows = last and B or "rows"
  if #plan.heads > 0 then add("nnrt_share(%s, id, count, &r0, &r1);", head_rows) end
  for j = #plan.heads, 1, -1 do
    local D = plan.heads[j]
    local names = ctx.heads[D.index]
    local input, ld_in
    if j > 1 then input, ld_in = "tape->head_out" .. (D.index - 1), plan.heads[j - 1].padded
    else
      local top = plan.layers[#plan.layers]
      input, ld_in = "tape->hs" .. top.index, top.padded
      if last then input = string.format("%s + (size_t)(T - 1) * %s * %d", input, B, ld_in) end
    end
    local dinput = next_dact()
    add("/* head layer %d backward over %s rows: dpre, then dW, db and the input's gradient, each one product */",
      D.index, last and "B" or "all T*B")
    add("%s(r1 - r0, %s + (size_t)r0 * %d, %d, tape->head_out%d + (size_t)r0 * %d, tape->dpre + (size_t)r0 * %d);",
      names.activation_backward, grad, ld, ld, D.index, D.padded, D.padded)
    sync("dW and db sum over every row of dpre")
    add("nnrt_share(%d, id, count, &j0, &j1);", D.output)
    add("%s(%s, tape->dpre, %d, %s, %d, %s, j0, j1);", names.weight_grad, head_rows, D.padded, input, ld_in, cgen.row(real, "g->" .. f(D.weight)))
    add("nnrt_share(%d, id, count, &nb0, &nb1);", D.NB)
    add("%s(%s, tape->dpre, %d, g->%s, NULL, nb0, nb1);", names.bias_grad, head_rows, D.padded, f(D.bias))
    add("%s(r1 - r0, tape->dpre + (size_t)r0 * %d, %d, %s, %s + (size_t)r0 * %d, %d, 0, %d);", names.input_grad,
      D.padded, D.padded, cgen.row("const " .. real, "p->" .. f(D.weight)), dinput, ld_in, ld_in, groups(names.input_grad))
    sync("dpre is free again, every row of the input's gradient is in")
    grad, ld = dinput, ld_in
  end
  local top = plan.layers[#plan.layers]
  if last then
    local dst = next_dact()
    add("/* many-to-one: only the last step of the top layer receives a gradient from above */")
    if split or wave then add("if (id == 0) {") end
    add("memset(%s, 0, (size_t)(T - 1) * %s * %d * sizeof(%s));", dst, B, top.padded, real)
    add("for (int b = 0; b < %s; ++b) memcpy(%s + ((size_t)(T - 1) * %s + b) * %d, %s + (size_t)b * %d, %d * sizeof(%s));",
      B, dst, B, top.padded, grad, ld, top.hidden, real)
    if split or wave then add("}") end
    sync("the spread gradient is in")
    grad, ld = dst, top.padded
  end
  add("nnrt_share(rows, id, count, &r0, &r1);")

  -- Per layer: its gate gradients, gru's dhn, its carries; the wavefront gives each layer its own.
  local function dgates(L) return wave and ("tape->dgates" .. L.index) or "tape->dgates" end
  local function dhn(L) return wave and ("tape->dhn" .. L.index) or "tape->dhn" end
  local function carry(L) return wave and ("tape->carry" .. L.index) or "tape->carry" end
  local function carry_c(L) return wave and ("tape->carry_c" .. L.index) or "tape->carry_c" end
  -- The gradient reaching each layer's output: (buffer, stride). The top layer's comes from above;
  -- in the wavefront each layer below has its own dh<l>, else dact0/dact1 take turns.
  local incoming = {}
  incoming[#plan.layers] = { grad, ld }
  for k = #plan.layers - 1, 1, -1 do
    local L = plan.layers[k]
    incoming[k] = { wave and ("tape->dh" .. L.index) or next_dact(), L.padded }
  end
  local function input_of(k)
    if k == 1 then return "x", spec.input end
    return "tape->hs" .. plan.layers[k - 1].index, plan.layers[k - 1].padded
  end

  -- The sweep of layer k over steps t from t1 - 1 down to t0, cell backward over units u0..u1 and
  -- carry product over k groups q0..q1 (C variables in scope); after_cell: what comes between.
  local function sweep(indent, k, t0, t1, after_cell)
    local L = plan.layers[k]
    local names = ctx.kernels[L.index]
    local l, H, Hp, GHp = L.index, L.hidden, L.padded, L.gates * L.padded
    local dg_stride = dgates_stride(ctx, L)
    local gin, ldg = incoming[k][1], incoming[k][2]
    local function a(fmt, ...) add("%s" .. fmt, indent, ...) end
    a("for (int t = %s - 1; t >= %s; --t) {", t1, t0)
    a("    for (int b = 0; b < %s; ++b) {", B)
    a("        const size_t row = (size_t)t * %s + b;", B)
    local args = { string.format("%s + row * %d", gin, ldg), string.format("%s + (size_t)b * %d", carry(L), Hp) }
    if L.cell == "rnn" then
      table.insert(args, string.format("tape->hs%d + row * %d", l, Hp))
    elseif L.cell == "lstm" then
      a("        const %s *c_prev = t == 0 ? %s : tape->cs%d + (row - %s) * %d;", real, cgen.row(real, "tape->c_init" .. l, "b", L.hidden), l, B, Hp)
      table.insert(args, string.format("tape->gates%d + row * %d", l, GHp))
      table.insert(args, string.format("tape->tanh_cs%d + row * %d", l, Hp))
      table.insert(args, "c_prev")
      table.insert(args, string.format("%s + (size_t)b * %d", carry_c(L), Hp))
    else
      a("        const %s *h_prev = t == 0 ? %s : tape->hs%d + (row - %s) * %d;", real, cgen.row(real, "tape->h_init" .. l, "b", L.hidden), l, B, Hp)
      table.insert(args, string.format("tape->gates%d + row * %d", l, GHp))
      table.insert(args, string.format("tape->hn%d + row * %d", l, Hp))
      table.insert(args, "h_prev")
      table.insert(args, string.format("%s + row * %d", dhn(L), Hp))
    end
    table.insert(args, string.format("%s + row * %d", dgates(L), dg_stride))
    table.insert(args, "u0")
    table.insert(args, "u1")
    a("        %s(%s);", names.cell_backward, table.concat(args, ", "))
    a("    }")
    if after_cell then a("    %s", after_cell) end
    a("    %s(%s, %s + (size_t)t * %s * %d, %d, %s, %s, %d, q0, q1);", names.carry, B, dgates(L), B, dg_stride, dg_stride,
      cgen.row("const " .. real, "p->" .. f(L.weight_hh)), carry(L), Hp)
    if L.cell == "gru" then
      assert(#ctx.groups[names.carry_n] == #ctx.groups[names.carry], "the two carry products share their k groups")
      a("    %s(%s, %s + (size_t)t * %s * %d, %d, %s, %s, %d, q0, q1);", names.carry_n, B, dhn(L), B, Hp, Hp,
        cgen.row("const " .. real, "p->" .. f(L.weight_hh), tostring(2 * H), H), carry(L), Hp)
    end
    a("}")
  end
  -- Zeroing the carries over units u0..u1.
  local function zero_carry(indent, L)
    add("%sfor (int b = 0; b < %s; ++b) {", indent, B)
    add("%s    memset(%s + (size_t)b * %d + e0, 0, (e1 - e0) * sizeof(%s));", indent, carry(L), L.padded, real)
    if L.cell == "lstm" then add("%s    memset(%s + (size_t)b * %d + e0, 0, (e1 - e0) * sizeof(%s));", indent, carry_c(L), L.padded, real) end
    add("%s}", indent)
  end
  -- The gradient of layer k's input over rows row0..row1, into the layer below's incoming buffer
  -- (or dx).
  local function input_gradient(indent, k, row0, row1)
    local L = plan.layers[k]
    local names = ctx.kernels[L.index]
    local ldg = dgates_stride(ctx, L)
    local dst, ldd = "dx", spec.input
    if k > 1 then dst, ldd = incoming[k - 1][1], incoming[k - 1][2] end
    add("%s%s%s(%s - %s, %s + (size_t)%s * %d, %d, %s, %s + (size_t)%s * %d, %d, 0, %d);", indent, k == 1 and "if (dx) " or "",
      names.input_grad, row1, row0, dgates(L), row0, ldg, ldg, cgen.row("const " .. real, "p->" .. f(L.weight_ih)), dst, row0, ldd, ldd, groups(names.input_grad))
  end
  local function weight_gradients(k)
    local L = plan.layers[k]
    local names = ctx.kernels[L.index]
    local l, H, Hp, ldg = L.index, L.hidden, L.padded, dgates_stride(ctx, L)
    local input, ld_in = input_of(k)
    local dg, dn = dgates(L), dhn(L)
    add("/* layer %d: weight gradients, each one product over all T*B rows */", l)
    add("nnrt_share(%d, id, count, &j0, &j1);", H)
    add("nnrt_share(%d, id, count, &nb0, &nb1);", L.NB)
    local g_ih, g_hh = cgen.row(real, "g->" .. f(L.weight_ih)), cgen.row(real, "g->" .. f(L.weight_hh))
    local g_hn, h_init = cgen.row(real, "g->" .. f(L.weight_hh), tostring(2 * H), H), cgen.row(real, "tape->h_init" .. l)
    add("%s(rows, %s, %d, %s, %d, %s, j0, j1);", names.ih_grad, dg, ldg, input, ld_in, g_ih)
    -- b_ih and b_hh enter the gates alike: one sum serves both (gru's b_hn apart).
    add("%s(rows, %s, %d, g->%s, %s, nb0, nb1);", names.bias_grad, dg, ldg, f(L.bias_ih),
      L.cell == "gru" and "NULL" or ("g->" .. f(L.bias_hh)))
    add("/* W_hh sees h_{t-1}: the rows of steps t >= 1 pair with hs[t - 1], those of step 0 with h_init */")
    add("%s(rows - %s, %s + (size_t)%s * %d, %d, tape->hs%d, %d, %s, j0, j1);", names.hh_grad, B, dg, B, ldg, ldg, l, Hp, g_hh)
    add("%s(%s, %s, %d, %s, %d, %s, j0, j1);", names.hh_grad, B, dg, ldg, h_init, H, g_hh)
    if L.cell == "gru" then
      add("%s(rows - %s, %s + (size_t)%s * %d, %d, tape->hs%d, %d, %s, j0, j1);", names.hh_grad_n, B, dn, B, Hp, Hp, l, Hp, g_hn)
      add("%s(%s, %s, %d, %s, %d, %s, j0, j1);", names.hh_grad_n, B, dn, Hp, h_init, H, g_hn)
      add("%s(rows, %s, %d, g->%s, NULL, nb0, nb1);", names.bias_grad_rz, dg, ldg, f(L.bias_hh))
      add("%s(rows, %s, %d, g->%s + %d, NULL, nb0, nb1);", names.bias_grad_n, dn, Hp, f(L.bias_hh), 2 * H)
    end
  end

  if wave then
    local C = ctx.par.chunk
    add("/* the reverse wavefront: layer l sweeps on thread l %% count, %d steps at a time from the end */", C)
    add("{")
    add("    const int q0 = 0, u0 = 0;")
    add("    const size_t e0 = 0;")
    for k = #plan.layers, 1, -1 do
      local L = plan.layers[k]
      add("    if (%d %% count == id) {", k - 1)
      add("        const size_t e1 = %d;", L.padded)
      zero_carry("        ", L)
      add("    }")
    end
    add("    for (int t1 = T; t1 > 0; t1 -= %d) {", C)
    add("        const int t0 = t1 - %d > 0 ? t1 - %d : 0;", C, C)
    for k = #plan.layers, 1, -1 do
      local L = plan.layers[k]
      add("        if (%d %% count == id) { /* layer %d */", k - 1, L.index)
      if k < #plan.layers then
        add("            nnrt_flag_wait(team, &a->done[%d], (unsigned)(T - t0)); /* layer %d has published these rows */", k,
          plan.layers[k + 1].index)
      end
      add("            const int q1 = %d, u1 = %d;", #ctx.groups[ctx.kernels[L.index].carry], L.NB)
      sweep("            ", k, "t0", "t1")
      input_gradient("            ", k, "t0 * " .. B, "t1 * " .. B)
      add("            nnrt_flag_set(team, &a->done[%d], (unsigned)(T - t0));", k - 1)
      add("        }")
    end
    add("    }")
    add("}")
    sync("every sweep is done: every gate gradient is in")
    for k = #plan.layers, 1, -1 do weight_gradients(k) end
    return join(out)
  end
  for k = #plan.layers, 1, -1 do
    local L = plan.layers[k]
    local names = ctx.kernels[L.index]
    add("/* layer %d: back through time, the sequential part (the cell backward and W_hh^T delta) */", L.index)
    add("{")
    local starts = {}
    for _, grp in ipairs(ctx.groups[names.carry]) do table.insert(starts, grp.kb0) end
    table.insert(starts, tostring(L.NB))
    add("    static const int starts[%d] = {%s}; /* first unit block of each k group of the carry product */", #starts,
      table.concat(starts, ", "))
    add("    int q0, q1;")
    add("    nnrt_share(%d, id, count, &q0, &q1);", #starts - 1)
    add("    const int u0 = starts[q0], u1 = starts[q1];")
    add("    const size_t e0 = (size_t)u0 * %d, e1 = (size_t)u1 * %d;", ctx.V, ctx.V)
    zero_carry("    ", L)
    sweep("    ", k, "0", "T", split and "nnrt_workers_sync(team); /* every gate gradient of step t is in */" or nil)
    add("}")
    sync("the sweep is done: every dgates row is in")
    weight_gradients(k)
    if k > 1 then
      add("/* layer %d: the gradient of its input, one product over all T*B rows, for the layer below */", L.index)
      input_gradient("", k, "r0", "r1")
      sync("the layer below reads every row; dgates is reused")
    else
      add("/* the gradient of the input itself, when asked for */")
      input_gradient("", k, "r0", "r1")
    end
  end
  return join(out)
end

return M
