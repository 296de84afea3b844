-- emit.lua — the emit pass: C text from the plan, the schedule and the backend.
--
--   emit.model(plan, sched, backend, templates, meta) -> { header = text, source = text, main = text }
--
-- Logic lives here, text lives in templates/: this module builds the pieces (struct fields,
-- kernels, entry-point bodies) and fills the templates' insertion points. Every kernel is
-- specialised to its sizes; loops over time stay loops, the work inside a timestep is unrolled
-- as far as the plan's code-size budget allows. The backward pass is built by emit_train.lua.
local cname = require("rnnc.cname")
local cgen = require("rnnc.cgen")
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

-- ---- Forward kernels ---------------------------------------------------------------------------

-- y[n][OUT] = act(x[n][IN] W^T + bias): one matrix product over all n rows, each weight row
-- reused n times. Each range of output rows has its own bias expression (biases may be folded).
local function dense_kernel(ctx, k)
  local real = ctx.real
  local out = {}
  table.insert(out, string.format("/* %s */", k.comment))
  table.insert(out, string.format("static void %s(int n, const %s *restrict x, const %s *restrict p, %s *restrict y)",
    k.name, real, ctx.params_type, real))
  table.insert(out, "{")
  table.insert(out, "    for (int row = 0; row < n; ++row) {")
  table.insert(out, string.format("        const %s *restrict in = x + (size_t)row * %d;", real, k.input))
  table.insert(out, string.format("        %s *restrict out = y + (size_t)row * %d;", real, k.output))
  for _, range in ipairs(k.ranges) do
    table.insert(out, string.format("        for (int r = %d; r < %d; ++r) {", range.first, range.last))
    table.insert(out, string.format("            const %s *restrict w = p->%s[r];", real, k.weight))
    table.insert(out, string.format("            %s acc = %s;", real, range.bias))
    cgen.dot(out, "            ", { { acc = "acc", w = "w" } }, "in", k.input, k.unroll, ctx.backend)
    table.insert(out, string.format("            out[r] = %s;", ctx.backend.activate(ctx.private, k.act, "acc")))
    table.insert(out, "        }")
  end
  table.insert(out, "    }")
  table.insert(out, "}")
  return join(out)
end

-- The elementwise cell update of unit j once the gate accumulators are complete.
--   xn: the C expression of W_in x + b_in (gru); train: also write the gates (and hn) to the tape
--   c_prev: the C expression of c_{t-1}[j] (lstm)
local function cell_update(ctx, L, xn, train_mode, c_prev)
  local real, P = ctx.real, ctx.private
  local one = ctx.backend.literal(ctx.precision, 1)
  local H = L.hidden
  if L.cell == "rnn" then
    return { string.format("        h[j] = %s;", ctx.backend.activate(P, L.activation, "acc_a")) }
  elseif L.cell == "gru" then
    local lines = {
      string.format("        const %s r = %s_sigmoid(acc_r);", real, P),
      string.format("        const %s z = %s_sigmoid(acc_z);", real, P),
      string.format("        const %s n = %s_tanh(%s + r * acc_hn);", real, P, xn),
      string.format("        h[j] = (%s - z) * n + z * h_prev[j];", one),
    }
    if train_mode then
      table.insert(lines, string.format("        gates[j] = r;"))
      table.insert(lines, string.format("        gates[%d + j] = z;", H))
      table.insert(lines, string.format("        gates[%d + j] = n;", 2 * H))
      table.insert(lines, "        hn[j] = acc_hn;")
    end
    return lines
  else
    local lines = {
      string.format("        const %s gate_i = %s_sigmoid(acc_i);", real, P),
      string.format("        const %s gate_f = %s_sigmoid(acc_f);", real, P),
      string.format("        const %s gate_g = %s_tanh(acc_g);", real, P),
      string.format("        const %s gate_o = %s_sigmoid(acc_o);", real, P),
      string.format("        const %s c_new = gate_f * %s + gate_i * gate_g;", real, c_prev),
      "        c[j] = c_new;",
      string.format("        h[j] = gate_o * %s_tanh(c_new);", P),
    }
    if train_mode then
      for g, name in ipairs(L.gate_names) do
        table.insert(lines, string.format("        gates[%d + j] = gate_%s;", (g - 1) * H, name))
      end
    end
    return lines
  end
end

-- The accumulators of the recurrent part: one per gate (gru: r, z and the separate hn).
local function hidden_accumulators(L)
  local accs = {}
  for g, name in ipairs(L.gate_names) do
    local acc = (L.cell == "gru" and name == "n") and "acc_hn" or ("acc_" .. name)
    table.insert(accs, { acc = acc, w = "wh_" .. name, row = (g - 1) * L.hidden })
  end
  return accs
end

-- One timestep of layer L for one sequence, in one of three modes:
--   "infer": the input projection is in xp (sequence forward); lstm updates c in place;
--   "train": gates holds the input projection and receives the gate activations (the tape);
--            lstm reads c_prev and writes c, gru also writes hn = W_hn h + b_hn;
--   "step":  the streaming step: one pass over [x; h] yields every gate of unit j.
local function cell_kernel(ctx, L, mode)
  local real, H = ctx.real, L.hidden
  local name = cname.layer_fn(ctx.spec, L.index, ({ infer = "cell", train = "cell_train", step = "step_cell" })[mode])
  local out = {}
  local lstm, gru = L.cell == "lstm", L.cell == "gru"
  local first
  if mode == "step" then
    table.insert(out, string.format("/* One streaming timestep of layer %d for one sequence: every gate from x[%d] and h_prev[%d] in one pass. */",
      L.index, L.input, H))
    first = string.format("const %s *restrict x", real)
  elseif mode == "train" then
    table.insert(out, string.format("/* One recorded timestep of layer %d: gates[%d] holds the input projection on entry and the gate activations on return. */",
      L.index, L.gates * H))
    first = string.format("%s *restrict gates", real)
  else
    table.insert(out, string.format("/* One timestep of layer %d for one sequence: gates = xp[%d] (input projection, b_hh folded) + W_hh h_prev[%d]. */",
      L.index, L.gates * H, H))
    first = string.format("const %s *restrict xp", real)
  end
  local tail = ""
  if lstm and mode == "train" then tail = string.format(", const %s *restrict c_prev, %s *restrict c", real, real)
  elseif lstm then tail = string.format(", %s *restrict c", real)
  elseif gru and mode == "train" then tail = string.format(", %s *restrict hn", real) end
  table.insert(out, string.format("static void %s(%s, const %s *restrict p, const %s *restrict h_prev,",
    name, first, ctx.params_type, real))
  table.insert(out, string.format("    %s *restrict h%s)", real, tail))
  table.insert(out, "{")
  table.insert(out, string.format("    for (int j = 0; j < %d; ++j) {", H))
  local hidden = hidden_accumulators(L)
  local inputs = {}
  for _, a in ipairs(hidden) do
    table.insert(out, string.format("        const %s *restrict %s = p->%s[%d + j];", real, a.w, cname.field(L.weight_hh.name), a.row))
  end
  local bias_ih, bias_hh = cname.field(L.bias_ih.name), cname.field(L.bias_hh.name)
  local projection = mode == "train" and "gates" or "xp"
  for g, gate in ipairs(L.gate_names) do
    local row = (g - 1) * H
    local a = hidden[g]
    if mode == "step" then
      local wx = "wx_" .. gate
      table.insert(out, string.format("        const %s *restrict %s = p->%s[%d + j];", real, wx, cname.field(L.weight_ih.name), row))
      if gru and gate == "n" then
        table.insert(out, string.format("        %s acc_xn = p->%s[%d + j];", real, bias_ih, row))
        table.insert(out, string.format("        %s acc_hn = p->%s[%d + j];", real, bias_hh, row))
        table.insert(inputs, { acc = "acc_xn", w = wx })
      else
        table.insert(out, string.format("        %s %s = p->%s[%d + j] + p->%s[%d + j];", real, a.acc, bias_ih, row, bias_hh, row))
        table.insert(inputs, { acc = a.acc, w = wx })
      end
    elseif gru and gate == "n" then
      table.insert(out, string.format("        %s acc_hn = p->%s[%d + j];", real, bias_hh, row))
    else
      table.insert(out, string.format("        %s %s = %s[%d + j];", real, a.acc, projection, row))
    end
  end
  if mode == "step" then cgen.dot(out, "        ", inputs, "x", L.input, L.unroll_ih, ctx.backend) end
  cgen.dot(out, "        ", hidden, "h_prev", H, L.unroll_hh, ctx.backend)
  local xn = mode == "step" and "acc_xn" or string.format("%s[%d + j]", projection, 2 * H)
  local c_prev = mode == "train" and "c_prev[j]" or "c[j]"
  for _, line in ipairs(cell_update(ctx, L, xn, mode == "train", c_prev)) do table.insert(out, line) end
  table.insert(out, "    }")
  table.insert(out, "}")
  return name, join(out)
end

local function input_projection_kernel(ctx, L)
  local H, G = L.hidden, L.gates
  local bias_ih, bias_hh = cname.field(L.bias_ih.name), cname.field(L.bias_hh.name)
  local folded = string.format("p->%s[r] + p->%s[r]", bias_ih, bias_hh)
  local ranges
  if L.cell == "gru" then -- b_hn stays inside r * (W_hn h + b_hn): only r and z fold b_hh
    ranges = { { first = 0, last = 2 * H, bias = folded }, { first = 2 * H, last = 3 * H, bias = "p->" .. bias_ih .. "[r]" } }
  else
    ranges = { { first = 0, last = G * H, bias = folded } }
  end
  local name = cname.layer_fn(ctx.spec, L.index, "input_projection")
  return name, dense_kernel(ctx, {
    name = name, input = L.input, output = G * H, weight = cname.field(L.weight_ih.name),
    ranges = ranges, act = "linear", unroll = L.unroll_ih,
    comment = string.format("Input projection of layer %d over n rows: xp[n][%d] = x[n][%d] W_ih^T + b_ih%s.",
      L.index, G * H, L.input, L.cell == "gru" and " + b_hh (rows r, z)" or " + b_hh"),
  })
end

local function head_kernel(ctx, D)
  local name = cname.head_fn(ctx.spec, D.index, "forward")
  return name, dense_kernel(ctx, {
    name = name, input = D.input, output = D.output, weight = cname.field(D.weight.name),
    ranges = { { first = 0, last = D.output, bias = "p->" .. cname.field(D.bias.name) .. "[r]" } },
    act = D.activation, unroll = D.unroll,
    comment = string.format("Head layer %d over n rows: y[n][%d] = %s(x[n][%d] W^T + b).", D.index, D.output, D.activation, D.input),
  })
end

-- ---- Entry points ------------------------------------------------------------------------------

local function step_body(ctx, sched)
  local plan, spec, real = ctx.plan, ctx.spec, ctx.real
  local out = { string.format("    for (int b = 0; b < %s; ++b) {", cname.macro(spec, "BATCH")) }
  local function source(buffer)
    if buffer == "x" then return string.format("x + (size_t)b * %s", cname.macro(spec, "INPUT")) end
    if buffer:match("^h%d+$") then return string.format("s->%s[b]", buffer) end
    return buffer
  end
  for _, op in ipairs(sched.step) do
    if op.op == "cell_step" then
      local L = op.layer
      local h_new = "h_new" .. L.index
      table.insert(out, string.format("        %s %s[%d]; /* layer %d's new h: h_prev is read until the last unit */",
        real, h_new, L.hidden, L.index))
      table.insert(out, string.format("        %s(%s, p, s->%s[b], %s%s);", ctx.kernels.step_cell[L.index],
        source(op.src), cname.state_h(L.index), h_new, L.cell == "lstm" and (", s->" .. cname.state_c(L.index) .. "[b]") or ""))
      table.insert(out, string.format("        memcpy(s->%s[b], %s, sizeof %s);", cname.state_h(L.index), h_new, h_new))
    elseif op.op == "dense" then
      local D = op.head
      local dst = op.dst == "y" and string.format("y + (size_t)b * %s", cname.macro(spec, "OUTPUT")) or op.dst
      if op.dst ~= "y" then table.insert(out, string.format("        %s %s[%d];", real, op.dst, D.output)) end
      table.insert(out, string.format("        %s(1, %s, p, %s);", ctx.kernels.head[D.index], source(op.src), dst))
    end
  end
  if #plan.heads == 0 then
    local top = cname.state_h(#plan.layers - 1)
    table.insert(out, string.format("        memcpy(y + (size_t)b * %s, s->%s[b], sizeof s->%s[b]);",
      cname.macro(spec, "OUTPUT"), top, top))
  end
  table.insert(out, "    }")
  return join(out)
end

-- The body of the sequence forward (container "w", the workspace) or of the training forward
-- (container "tape"): the same schedule, different buffers.
local function forward_body(ctx, ops, container)
  local B = cname.macro(ctx.spec, "BATCH")
  local out = {}
  local function buffer(name)
    if name == "x" or name == "y" then return name end
    return container .. "->" .. name
  end
  local function last_step(expr, width) return string.format("%s + (size_t)(T - 1) * %s * %d", expr, B, width) end
  if container == "tape" then
    table.insert(out, "    tape->T = T;")
    for _, L in ipairs(ctx.plan.layers) do
      table.insert(out, string.format("    memcpy(tape->h_init%d, s->%s, sizeof tape->h_init%d);", L.index, cname.state_h(L.index), L.index))
      if L.cell == "lstm" then
        table.insert(out, string.format("    memcpy(tape->c_init%d, s->%s, sizeof tape->c_init%d);", L.index, cname.state_c(L.index), L.index))
      end
    end
  end
  for _, op in ipairs(ops) do
    if op.op == "input_projection" then
      local L = op.layer
      table.insert(out, string.format("    /* layer %d (%s %d -> %d): input projection, one product over all T*B rows */",
        L.index, L.cell, L.input, L.hidden))
      table.insert(out, string.format("    %s(rows, %s, p, %s);", ctx.kernels.input_projection[L.index], buffer(op.src), buffer(op.dst)))
    elseif op.op == "recurrence" then
      local L = op.layer
      local H, GH = L.hidden, L.gates * L.hidden
      local dst, xp = buffer(op.dst), buffer(op.src)
      local h, c = cname.state_h(L.index), cname.state_c(L.index)
      table.insert(out, string.format("    /* layer %d: the sequential path, W_hh h_{t-1} and the cell update */", L.index))
      table.insert(out, "    for (int t = 0; t < T; ++t) {")
      table.insert(out, string.format("        for (int b = 0; b < %s; ++b) {", B))
      table.insert(out, string.format("            const size_t row = (size_t)t * %s + b;", B))
      table.insert(out, string.format("            const %s *h_prev = t == 0 ? s->%s[b] : %s + (row - %s) * %d;", ctx.real, h, dst, B, H))
      local args
      if op.train and L.cell == "lstm" then
        table.insert(out, string.format("            const %s *c_prev = t == 0 ? s->%s[b] : tape->cs%d + (row - %s) * %d;",
          ctx.real, c, L.index, B, H))
        args = string.format("%s + row * %d, p, h_prev, %s + row * %d, c_prev, tape->cs%d + row * %d", xp, GH, dst, H, L.index, H)
      elseif op.train and L.cell == "gru" then
        args = string.format("%s + row * %d, p, h_prev, %s + row * %d, tape->hn%d + row * %d", xp, GH, dst, H, L.index, H)
      else
        args = string.format("%s + row * %d, p, h_prev, %s + row * %d%s", xp, GH, dst, H,
          L.cell == "lstm" and (", s->" .. c .. "[b]") or "")
      end
      local kernel = (op.train and L.cell ~= "rnn") and ctx.kernels.cell_train[L.index] or ctx.kernels.cell[L.index]
      table.insert(out, string.format("            %s(%s);", kernel, args))
      table.insert(out, "        }")
      table.insert(out, "    }")
      table.insert(out, string.format("    memcpy(s->%s, %s, sizeof s->%s);", h, last_step(dst, H), h))
      if op.train and L.cell == "lstm" then
        table.insert(out, string.format("    memcpy(s->%s, %s, sizeof s->%s);", c, last_step("tape->cs" .. L.index, H), c))
      end
    elseif op.op == "dense" then
      local D = op.head
      local src = buffer(op.src)
      if op.src_last_step then src = last_step(src, D.input) end
      table.insert(out, string.format("    /* head layer %d (%s %d -> %d): one product over %s rows */",
        D.index, D.activation, D.input, D.output, op.rows))
      table.insert(out, string.format("    %s(%s, %s, p, %s);", ctx.kernels.head[D.index],
        op.rows == "B" and B or "rows", src, buffer(op.dst)))
    elseif op.op == "copy_output" then
      local src = buffer(op.src)
      if op.src_last_step then src = last_step(src, op.width) end
      table.insert(out, string.format("    memcpy(y, %s, (size_t)%s * %d * sizeof(%s));",
        src, op.rows == "B" and B or "rows", op.width, ctx.real))
    end
  end
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
  return string.format("input %d -> %s%s; output %d at %s steps; seq_len %d, batch %d, %s, loss %s",
    spec.input, table.concat(parts, " -> "), #head > 0 and (" -> " .. table.concat(head, " -> ")) or "",
    plan.output, spec.output_at, spec.seq_len, spec.batch, spec.precision, spec.loss)
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
  return join({
    string.format("    %s xp[%s * %d];   /* [T*B][G*H] input projections of the current layer */", ctx.real, rows, plan.projection_width),
    string.format("    %s act0[%s * %d]; /* [T*B][width] layer outputs, used in turn with act1 */", ctx.real, rows, plan.activation_width),
    string.format("    %s act1[%s * %d]; /* [T*B][width] */", ctx.real, rows, plan.activation_width),
  })
end

local function descriptor(ctx)
  local plan = ctx.plan
  local P = ctx.private
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

-- ---- The model ---------------------------------------------------------------------------------

local function layer_kernels(ctx, L)
  local spec = ctx.spec
  local text = {}
  table.insert(text, cgen.banner(string.format("Begin layer %d (rnn.*_l%d): %s, input %d -> hidden %d, from %s:%d",
    L.index, L.index, L.cell == "rnn" and ("rnn " .. L.activation) or L.cell, L.input, L.hidden, spec.path, L.line)))
  table.insert(text, "/* " .. CELL_MATH[L.cell]:format(L.activation or "") .. " */")
  local name, code = input_projection_kernel(ctx, L)
  ctx.kernels.input_projection[L.index] = name
  table.insert(text, code)
  for _, mode in ipairs(L.cell == "rnn" and { "infer", "step" } or { "infer", "train", "step" }) do
    name, code = cell_kernel(ctx, L, mode)
    ctx.kernels[({ infer = "cell", train = "cell_train", step = "step_cell" })[mode]][L.index] = name
    table.insert(text, code)
  end
  name, code = train.cell_backward_kernel(ctx, L)
  ctx.kernels.cell_backward[L.index] = name
  table.insert(text, code)
  table.insert(text, cgen.banner(string.format("End layer %d", L.index)))
  return join(text)
end

local function head_kernels(ctx, D)
  local spec = ctx.spec
  local name, code = head_kernel(ctx, D)
  ctx.kernels.head[D.index] = name
  local back_name, back_code = train.dense_backward_kernel(ctx, D)
  ctx.kernels.head_backward[D.index] = back_name
  return join({
    cgen.banner(string.format("Begin head layer %d (head.%d): dense %d -> %d, %s, from %s:%d",
      D.index, D.index, D.input, D.output, D.activation, spec.path, D.line)),
    code, back_code,
    cgen.banner(string.format("End head layer %d", D.index)),
  })
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

function M.model(plan, sched, backend, templates, meta)
  local spec = plan.spec
  local types = backend.types(spec.precision)
  local ctx = {
    plan = plan, spec = spec, backend = backend, precision = spec.precision, real = types.real,
    private = spec.name .. "_", -- helpers are <name>__sigmoid, ... (private: double underscore)
    params_type = cname.type(spec, "params"),
    kernels = { input_projection = {}, cell = {}, cell_train = {}, step_cell = {}, head = {},
      cell_backward = {}, head_backward = {} },
  }

  local kernels = { train.gradient_helpers(ctx) }
  for _, L in ipairs(plan.layers) do table.insert(kernels, layer_kernels(ctx, L)) end
  for _, D in ipairs(plan.heads) do table.insert(kernels, head_kernels(ctx, D)) end

  local name, NAME = spec.name, cname.upper(spec)
  local desc, heads = descriptor(ctx)
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
  local target = spec.loss == "cross_entropy" and "int32_t" or types.real
  local header = template.render("templates/model.h", templates["model.h"], vars({
    input = tostring(spec.input), output = tostring(plan.output), seq_len = tostring(spec.seq_len),
    batch = tostring(spec.batch), num_params = tostring(plan.num_params), real = types.real,
    params_fields = params_fields(ctx), state_fields = state_fields(ctx), work_fields = work_fields(ctx),
    tape_fields = train.tape_fields(ctx), target = target,
    y_shape = spec.output_at == "last" and "[B][O]" or "[T][B][O]",
    target_shape = (spec.output_at == "last" and "[B]" or "[T][B]") .. (spec.loss == "cross_entropy" and "" or "[O]"),
  }))
  local source = template.render("templates/model.c", templates["model.c"], vars({
    abi = "2", isa_guard = backend.guard, math_helpers = backend.math_helpers(ctx.private, spec.precision),
    kernels = table.concat(kernels, "\n\n"), step_body = step_body(ctx, sched),
    forward_body = forward_body(ctx, sched.forward, "w"),
    forward_train_body = forward_body(ctx, sched.forward_train, "tape"),
    backward_body = train.backward_body(ctx, sched.backward),
    loss_rows = spec.output_at == "last" and (NAME .. "_BATCH") or ("T * " .. NAME .. "_BATCH"),
    descriptor = desc, heads = heads, num_layers = tostring(#plan.layers), num_heads = tostring(#plan.heads),
    num_tensors = tostring(#plan.tensors), dtype = spec.precision == "f64" and "NNRT_F64" or "NNRT_F32",
    target_dtype = spec.loss == "cross_entropy" and "NNRT_I32" or (spec.precision == "f64" and "NNRT_F64" or "NNRT_F32"),
    output_last = spec.output_at == "last" and "1" or "0", loss = LOSS_ENUM[spec.loss],
  }))
  local main = template.render("templates/main.c", templates["main.c"],
    { name = name, version = meta.version, spec_path = spec.path, compile = meta.compile })
  return { header = header, source = source, main = main, python = M.python(plan, templates, meta) }
end

return M
