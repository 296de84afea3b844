-- emit_train.lua — what training adds to the emitted model: the tape the training forward
-- records, and the backward pass (BPTT), each kernel beside the forward one it reverses.
--
-- The backward sweep over time computes only what is inherently sequential: the cell backward
-- (elementwise) and W_hh^T delta_t. It stores each step's gate gradients; every weight gradient is
-- then one product over all T*B rows (dW = sum_t delta_t input_t^T), and so is the gradient of
-- the layer's input (delta W_ih), handed to the layer below.
local cname = require("rnnc.cname")
local cgen = require("rnnc.cgen")

local M = {}

local join = cgen.join

-- ---- The tape ------------------------------------------------------------------------------

function M.tape_fields(ctx)
  local plan, spec, real = ctx.plan, ctx.spec, ctx.real
  local B = cname.macro(spec, "BATCH")
  local rows = string.format("%s * %s", cname.macro(spec, "SEQ_LEN"), B)
  local out = { "    int T; /* timesteps recorded by the last training forward */" }
  local function field(name, size, comment)
    table.insert(out, string.format("    %s %s[%s]; /* %s */", real, name, size, comment))
  end
  local widest_gates, widest, any_gru = 1, plan.activation_width, false
  for _, L in ipairs(plan.layers) do
    local H, GH = L.hidden, L.gates * L.hidden
    local l = L.index
    table.insert(out, string.format("    %s h_init%d[%s][%d]; /* layer %d: h the sequence started from */", real, l, B, H, l))
    if L.cell == "lstm" then
      table.insert(out, string.format("    %s c_init%d[%s][%d]; /* layer %d: c the sequence started from */", real, l, B, H, l))
    end
    field("gates" .. l, rows .. " * " .. GH, string.format("[T*B][%d] %s", GH,
      L.cell == "rnn" and "input projection" or ("gate activations " .. table.concat(L.gate_names, ","))))
    field("hs" .. l, rows .. " * " .. H, string.format("[T*B][%d] outputs h_t", H))
    if L.cell == "lstm" then field("cs" .. l, rows .. " * " .. H, string.format("[T*B][%d] cell states c_t", H)) end
    if L.cell == "gru" then
      field("hn" .. l, rows .. " * " .. H, string.format("[T*B][%d] W_hn h_{t-1} + b_hn", H))
      any_gru = true
    end
    widest_gates = math.max(widest_gates, GH)
  end
  local head_rows = spec.output_at == "last" and B or rows
  for _, D in ipairs(plan.heads) do
    field("head_out" .. D.index, head_rows .. " * " .. D.output, string.format("[rows][%d] head layer %d outputs", D.output, D.index))
  end
  table.insert(out, "    /* backward scratch */")
  field("dgates", rows .. " * " .. widest_gates, "[T*B][G*H] gradients of the gate pre-activations")
  if any_gru then field("dhn", rows .. " * " .. widest, "[T*B][H] gru: gradient of W_hn h + b_hn") end
  field("dact0", rows .. " * " .. widest, "[T*B][width] gradients flowing down, used in turn with dact1")
  field("dact1", rows .. " * " .. widest, "[T*B][width]")
  field("carry_h", B .. " * " .. widest, "[B][H] dL/dh_{t-1} carried back through time")
  field("carry_c", B .. " * " .. widest, "[B][H] lstm: dL/dc_{t-1}")
  return join(out)
end

-- ---- Products over all rows ------------------------------------------------------------------

function M.gradient_helpers(ctx)
  local real, P = ctx.real, ctx.private
  return join({
    cgen.banner("Begin gradient products over all rows"),
    "/* dw[R][K] += sum over rows of dg[row][0..R) (row stride dg_stride) times x[row][0..K) (stride x_stride):",
    " * a weight gradient, one product over every timestep and sequence at once. */",
    string.format("static void %s_grad_weight(int rows, int R, int K, const %s *restrict dg, int dg_stride,", P, real),
    string.format("    const %s *restrict x, int x_stride, %s *restrict dw)", real, real),
    "{",
    "    for (int row = 0; row < rows; ++row) {",
    string.format("        const %s *restrict g = dg + (size_t)row * dg_stride;", real),
    string.format("        const %s *restrict in = x + (size_t)row * x_stride;", real),
    "        for (int r = 0; r < R; ++r) {",
    string.format("            const %s gr = g[r];", real),
    string.format("            %s *restrict w = dw + (size_t)r * K;", real),
    "            for (int k = 0; k < K; ++k) w[k] += gr * in[k];",
    "        }",
    "    }",
    "}",
    "",
    "/* db[R] += sum over rows of dg[row][0..R). */",
    string.format("static void %s_grad_bias(int rows, int R, const %s *restrict dg, int dg_stride, %s *restrict db)", P, real, real),
    "{",
    "    for (int row = 0; row < rows; ++row)",
    "        for (int r = 0; r < R; ++r) db[r] += dg[(size_t)row * dg_stride + r];",
    "}",
    "",
    "/* dx[row][0..K) = sum_r dg[row][r] w[r][0..K): the gradient of a layer's input, all rows at once. */",
    string.format("static void %s_grad_input(int rows, int R, int K, const %s *restrict dg, int dg_stride,", P, real),
    string.format("    const %s *restrict w, %s *restrict dx)", real, real),
    "{",
    "    for (int row = 0; row < rows; ++row) {",
    string.format("        %s *restrict out = dx + (size_t)row * K;", real),
    "        for (int k = 0; k < K; ++k) out[k] = 0;",
    "        for (int r = 0; r < R; ++r) {",
    string.format("            const %s gr = dg[(size_t)row * dg_stride + r];", real),
    string.format("            const %s *restrict wr = w + (size_t)r * K;", real),
    "            for (int k = 0; k < K; ++k) out[k] += gr * wr[k];",
    "        }",
    "    }",
    "}",
    cgen.banner("End gradient products over all rows"),
  })
end

-- ---- Head layers -----------------------------------------------------------------------------

-- The derivative of activation act as a function of its output y.
local function act_derivative(ctx, act, y)
  local one = ctx.backend.literal(ctx.precision, 1)
  if act == "linear" then return nil end
  if act == "relu" then return string.format("(%s > %s ? %s : %s)", y, ctx.backend.literal(ctx.precision, 0), one, ctx.backend.literal(ctx.precision, 0)) end
  if act == "tanh" then return string.format("(%s - %s * %s)", one, y, y) end
  return string.format("%s * (%s - %s)", y, one, y) -- sigmoid
end

-- Backward of head layer D over n rows: from dout (= dL/dy) and the layer's own output and
-- input, accumulate dW and db and write din = dL/dx. The reverse of <name>__head<j>_forward.
function M.dense_backward_kernel(ctx, D)
  local real = ctx.real
  local name = cname.head_fn(ctx.spec, D.index, "backward")
  local weight, bias = cname.field(D.weight.name), cname.field(D.bias.name)
  local out = {}
  table.insert(out, string.format("/* Backward of head layer %d over n rows: dpre = dout * %s'(out); dW += dpre^T x; db += sum dpre; din = dpre W. */",
    D.index, D.activation))
  table.insert(out, string.format("static void %s(int n, const %s *restrict dout, const %s *restrict out, const %s *restrict x,",
    name, real, real, real))
  table.insert(out, string.format("    const %s *restrict p, %s *restrict g, %s *restrict din)", ctx.params_type, ctx.params_type, real))
  table.insert(out, "{")
  if D.activation == "linear" then table.insert(out, "    (void)out; /* a linear layer's derivative does not depend on it */") end
  table.insert(out, "    for (int row = 0; row < n; ++row) {")
  table.insert(out, string.format("        const %s *restrict in = x + (size_t)row * %d;", real, D.input))
  table.insert(out, string.format("        %s *restrict d_in = din + (size_t)row * %d;", real, D.input))
  table.insert(out, string.format("        for (int k = 0; k < %d; ++k) d_in[k] = 0;", D.input))
  table.insert(out, string.format("        for (int r = 0; r < %d; ++r) {", D.output))
  local derivative = act_derivative(ctx, D.activation, string.format("out[(size_t)row * %d + r]", D.output))
  table.insert(out, string.format("            const %s d = dout[(size_t)row * %d + r]%s;", real, D.output,
    derivative and (" * " .. derivative) or ""))
  table.insert(out, string.format("            g->%s[r] += d;", bias))
  table.insert(out, string.format("            %s *restrict gw = g->%s[r];", real, weight))
  table.insert(out, string.format("            const %s *restrict w = p->%s[r];", real, weight))
  cgen.axpy(out, "            ", "gw", "d", "in", D.input, D.unroll, ctx.backend)
  cgen.axpy(out, "            ", "d_in", "d", "w", D.input, D.unroll, ctx.backend)
  table.insert(out, "        }")
  table.insert(out, "    }")
  table.insert(out, "}")
  return name, join(out)
end

-- ---- Recurrent layers ------------------------------------------------------------------------

-- The elementwise backward of unit j: from dh (and the carried dc) to the gate pre-activation
-- gradients; the exact reverse of the cell update in emit.lua.
local function cell_backward_update(ctx, L)
  local real, P, H = ctx.real, ctx.private, L.hidden
  local one = ctx.backend.literal(ctx.precision, 1)
  local lines = { string.format("        const %s dh = dh_out[j] + carry_h[j];", real) }
  local function add(fmt, ...) table.insert(lines, "        " .. string.format(fmt, ...)) end
  if L.cell == "rnn" then
    local derivative = act_derivative(ctx, L.activation, "h[j]")
    add("dgates[j] = dh * %s;", derivative)
  elseif L.cell == "gru" then
    add("const %s r = gates[j], z = gates[%d + j], n = gates[%d + j];", real, H, 2 * H)
    add("const %s dn_pre = dh * (%s - z) * (%s - n * n); /* through n = tanh(xn + r * hn) */", real, one, one)
    add("dgates[j] = dn_pre * hn[j] * r * (%s - r);", one)
    add("dgates[%d + j] = dh * (h_prev[j] - n) * z * (%s - z);", H, one)
    add("dgates[%d + j] = dn_pre; /* W_in, b_in see the pre-activation itself */", 2 * H)
    add("dhn[j] = dn_pre * r;     /* W_hn, b_hn see it through r */")
    add("carry_h[j] = dh * z;     /* the direct path h' = ... + z * h */")
  else
    add("const %s gate_i = gates[j], gate_f = gates[%d + j], gate_g = gates[%d + j], gate_o = gates[%d + j];",
      real, H, 2 * H, 3 * H)
    add("const %s tanh_c = %s_tanh(c[j]);", real, P)
    add("const %s dc = carry_c[j] + dh * gate_o * (%s - tanh_c * tanh_c);", real, one)
    add("dgates[j] = dc * gate_g * gate_i * (%s - gate_i);", one)
    add("dgates[%d + j] = dc * c_prev[j] * gate_f * (%s - gate_f);", H, one)
    add("dgates[%d + j] = dc * gate_i * (%s - gate_g * gate_g);", 2 * H, one)
    add("dgates[%d + j] = dh * tanh_c * gate_o * (%s - gate_o);", 3 * H, one)
    add("carry_c[j] = dc * gate_f;")
  end
  return lines
end

-- One step back through time for one sequence: gate gradients of step t, and the new carry
-- dL/dh_{t-1} = W_hh^T delta_t (+ the direct path for gru). The reverse of <name>__l<k>_cell_train.
function M.cell_backward_kernel(ctx, L)
  local real, H, GH = ctx.real, L.hidden, L.gates * L.hidden
  local name = cname.layer_fn(ctx.spec, L.index, "cell_backward")
  local params = {
    string.format("const %s *restrict dh_out", real),
    string.format("const %s *restrict %s", real, L.cell == "rnn" and "h" or "gates"),
  }
  if L.cell == "lstm" then
    table.insert(params, string.format("const %s *restrict c", real))
    table.insert(params, string.format("const %s *restrict c_prev", real))
  elseif L.cell == "gru" then
    table.insert(params, string.format("const %s *restrict hn", real))
    table.insert(params, string.format("const %s *restrict h_prev", real))
  end
  table.insert(params, string.format("const %s *restrict p", ctx.params_type))
  table.insert(params, string.format("%s *restrict carry_h", real))
  if L.cell == "lstm" then table.insert(params, string.format("%s *restrict carry_c", real)) end
  table.insert(params, string.format("%s *restrict dgates", real))
  if L.cell == "gru" then table.insert(params, string.format("%s *restrict dhn", real)) end
  local out = {}
  table.insert(out, string.format("/* One step of layer %d back through time for one sequence: dgates[%d] from dh = dh_out + carry_h,",
    L.index, GH))
  table.insert(out, " * then carry_h = dL/dh_{t-1} = W_hh^T dgates (the sequential part of the backward). */")
  table.insert(out, string.format("static void %s(%s)", name, table.concat(params, ", ")))
  table.insert(out, "{")
  table.insert(out, string.format("    for (int j = 0; j < %d; ++j) {", H))
  for _, line in ipairs(cell_backward_update(ctx, L)) do table.insert(out, line) end
  table.insert(out, "    }")
  if L.cell ~= "gru" then
    table.insert(out, string.format("    for (int k = 0; k < %d; ++k) carry_h[k] = 0;", H))
  end
  local weight_hh = cname.field(L.weight_hh.name)
  -- W_hh^T delta, one weight row at a time (rows are contiguous); for gru the n rows see dhn.
  table.insert(out, string.format("    for (int r = 0; r < %d; ++r) {", L.cell == "gru" and 2 * H or GH))
  table.insert(out, string.format("        const %s d = dgates[r];", real))
  table.insert(out, string.format("        const %s *restrict w = p->%s[r];", real, weight_hh))
  cgen.axpy(out, "        ", "carry_h", "d", "w", H, L.unroll_hh, ctx.backend)
  table.insert(out, "    }")
  if L.cell == "gru" then
    table.insert(out, string.format("    for (int r = 0; r < %d; ++r) {", H))
    table.insert(out, string.format("        const %s d = dhn[r];", real))
    table.insert(out, string.format("        const %s *restrict w = p->%s[%d + r];", real, weight_hh, 2 * H))
    cgen.axpy(out, "        ", "carry_h", "d", "w", H, L.unroll_hh, ctx.backend)
    table.insert(out, "    }")
  end
  table.insert(out, "}")
  return name, join(out)
end

-- ---- The backward entry point ------------------------------------------------------------------

function M.backward_body(ctx, ops)
  local spec, real, P = ctx.spec, ctx.real, ctx.private
  local B = cname.macro(spec, "BATCH")
  local out = {}
  local function add(fmt, ...) table.insert(out, "    " .. string.format(fmt, ...)) end
  local function buffer(name)
    if name == "x" or name == "dy" or name == "dx" then return name end
    return "tape->" .. name
  end
  for _, op in ipairs(ops) do
    if op.op == "dense_backward" then
      local D = op.head
      local input = buffer(op.input)
      if op.input_last_step then input = string.format("%s + (size_t)(T - 1) * %s * %d", input, B, D.input) end
      add("/* head layer %d backward: one pass over %s rows */", D.index, op.rows)
      add("%s(%s, %s, %s, %s, p, g, %s);", ctx.kernels.head_backward[D.index], op.rows == "B" and B or "rows",
        buffer(op.grad), buffer(op.out), input, buffer(op.dinput))
    elseif op.op == "spread_last_step" then
      add("/* many-to-one: only the last step of the top layer receives a gradient from above */")
      add("memset(%s, 0, (size_t)(T - 1) * %s * %d * sizeof(%s));", buffer(op.dst), B, op.width, real)
      add("memcpy(%s + (size_t)(T - 1) * %s * %d, %s, (size_t)%s * %d * sizeof(%s));", buffer(op.dst), B, op.width,
        buffer(op.grad), B, op.width, real)
    elseif op.op == "recurrence_backward" then
      local L = op.layer
      local l, H, GH = L.index, L.hidden, L.gates * L.hidden
      add("/* layer %d: back through time, the sequential part (cell backward and W_hh^T delta) */", l)
      add("memset(tape->carry_h, 0, sizeof tape->carry_h);")
      if L.cell == "lstm" then add("memset(tape->carry_c, 0, sizeof tape->carry_c);") end
      add("for (int t = T - 1; t >= 0; --t) {")
      add("    for (int b = 0; b < %s; ++b) {", B)
      add("        const size_t row = (size_t)t * %s + b;", B)
      local args = { string.format("%s + row * %d", buffer(op.grad), H) }
      if L.cell == "rnn" then
        table.insert(args, string.format("tape->hs%d + row * %d", l, H))
      else
        table.insert(args, string.format("tape->gates%d + row * %d", l, GH))
      end
      if L.cell == "lstm" then
        add("        const %s *c_prev = t == 0 ? tape->c_init%d[b] : tape->cs%d + (row - %s) * %d;", real, l, l, B, H)
        table.insert(args, string.format("tape->cs%d + row * %d", l, H))
        table.insert(args, "c_prev")
      elseif L.cell == "gru" then
        add("        const %s *h_prev = t == 0 ? tape->h_init%d[b] : tape->hs%d + (row - %s) * %d;", real, l, l, B, H)
        table.insert(args, string.format("tape->hn%d + row * %d", l, H))
        table.insert(args, "h_prev")
      end
      table.insert(args, "p")
      table.insert(args, string.format("tape->carry_h + (size_t)b * %d", H))
      if L.cell == "lstm" then table.insert(args, string.format("tape->carry_c + (size_t)b * %d", H)) end
      table.insert(args, string.format("tape->dgates + row * %d", GH))
      if L.cell == "gru" then table.insert(args, string.format("tape->dhn + row * %d", H)) end
      add("        %s(%s);", ctx.kernels.cell_backward[l], table.concat(args, ", "))
      add("    }")
      add("}")
    elseif op.op == "weight_gradients" then
      local L = op.layer
      local l, H, GH, I = L.index, L.hidden, L.gates * L.hidden, L.input
      local w_ih, w_hh = cname.field(L.weight_ih.name), cname.field(L.weight_hh.name)
      local b_ih, b_hh = cname.field(L.bias_ih.name), cname.field(L.bias_hh.name)
      add("/* layer %d: weight gradients, each one product over all T*B rows */", l)
      add("%s_grad_weight(rows, %d, %d, tape->dgates, %d, %s, %d, &g->%s[0][0]);", P, GH, I, GH, buffer(op.input), I, w_ih)
      add("%s_grad_bias(rows, %d, tape->dgates, %d, g->%s);", P, GH, GH, b_ih)
      add("/* W_hh sees h_{t-1}: rows of steps t >= 1 pair with hs[t - 1], those of step 0 with h_init */")
      local blocks = { { rows = L.cell == "gru" and 2 * H or GH, src = "tape->dgates", stride = GH, first = 0 } }
      if L.cell == "gru" then table.insert(blocks, { rows = H, src = "tape->dhn", stride = H, first = 2 * H }) end
      for _, blk in ipairs(blocks) do
        add("%s_grad_weight(rows - %s, %d, %d, %s + (size_t)%s * %d, %d, tape->hs%d, %d, &g->%s[%d][0]);",
          P, B, blk.rows, H, blk.src, B, blk.stride, blk.stride, l, H, w_hh, blk.first)
        add("%s_grad_weight(%s, %d, %d, %s, %d, &tape->h_init%d[0][0], %d, &g->%s[%d][0]);",
          P, B, blk.rows, H, blk.src, blk.stride, l, H, w_hh, blk.first)
        add("%s_grad_bias(rows, %d, %s, %d, g->%s + %d);", P, blk.rows, blk.src, blk.stride, b_hh, blk.first)
      end
    elseif op.op == "input_gradient" then
      local L = op.layer
      local GH = L.gates * L.hidden
      local call = string.format("%s_grad_input(rows, %d, %d, tape->dgates, %d, &p->%s[0][0], %s);",
        P, GH, L.input, GH, cname.field(L.weight_ih.name), buffer(op.dinput))
      if op.optional then
        add("/* the gradient of the input itself, when asked for */")
        add("if (dx) %s", call)
      else
        add("/* layer %d: gradient of its input, one product over all T*B rows, for the layer below */", L.index)
        add("%s", call)
      end
    end
  end
  return join(out)
end

return M
