-- plan.lua — the plan pass: shapes, parameter tensors, work per timestep, cache residency and
-- unrolling, from a validated spec, the machine's cache sizes and the chosen backend.
--
--   plan.build(spec, machine, backend) -> plan
--
-- Pure: no I/O. machine = { l1d = bytes, l2 = bytes, l3 = bytes } (any may be absent).
local kernels = require("rnnc.kernels")

local M = {}

M.GATES = { rnn = 1, gru = 3, lstm = 4 }
M.GATE_NAMES = { rnn = { "a" }, gru = { "r", "z", "n" }, lstm = { "i", "f", "g", "o" } }

-- The work inside one timestep is unrolled until its estimated machine code would exceed this
-- many bytes: half of a 32 KiB L1 instruction cache, leaving the rest for the loops around it,
-- the head and the caller.
M.STEP_CODE_BUDGET = 16 * 1024

local function cache_level(bytes, machine)
  if machine.l1d and bytes <= machine.l1d then return "L1" end
  if machine.l2 and bytes <= machine.l2 then return "L2" end
  if machine.l3 and bytes <= machine.l3 then return "L3" end
  return "RAM"
end

-- Largest unroll factor (a power of two, or the whole trip count) of a loop over `trip`
-- iterations whose body emits `per_iteration` multiply-adds, within `budget` bytes.
local function unroll_factor(trip, per_iteration, bytes_per_fma, budget)
  if trip * per_iteration * bytes_per_fma <= budget then return trip end
  local factor = 1
  while factor * 2 <= trip and factor * 2 * per_iteration * bytes_per_fma <= budget do
    factor = factor * 2
  end
  return factor
end

local function add_tensor(plan, name, shape, bound)
  local count = 1
  for _, d in ipairs(shape) do count = count * d end
  local tensor = { name = name, shape = shape, offset = plan.num_params, count = count, bound = bound }
  table.insert(plan.tensors, tensor)
  plan.num_params = plan.num_params + count
  return tensor
end

function M.build(spec, machine, backend)
  local real_bytes = spec.precision == "f64" and 8 or 4
  local plan = {
    spec = spec, backend = backend.name,
    real_bytes = real_bytes, tensors = {}, num_params = 0, layers = {}, heads = {},
    machine = machine,
  }
  local input = spec.input
  for k, layer in ipairs(spec.recurrent) do
    local G, H = M.GATES[layer.cell], layer.size
    local suffix = "_l" .. (k - 1)
    local bound = 1 / math.sqrt(H)
    local L = {
      index = k - 1, number = k, cell = layer.cell, activation = layer.activation, line = layer.line,
      gates = G, gate_names = M.GATE_NAMES[layer.cell], input = input, hidden = H,
      weight_ih = add_tensor(plan, "rnn.weight_ih" .. suffix, { G * H, input }, bound),
      weight_hh = add_tensor(plan, "rnn.weight_hh" .. suffix, { G * H, H }, bound),
      bias_ih = add_tensor(plan, "rnn.bias_ih" .. suffix, { G * H }, bound),
      bias_hh = add_tensor(plan, "rnn.bias_hh" .. suffix, { G * H }, bound),
    }
    L.params = G * H * (input + H + 2)
    L.weight_bytes = L.params * real_bytes
    L.recurrent_bytes = G * H * (H + 1) * real_bytes -- W_hh and b_hh: what the sequential path streams
    -- FLOPs per timestep for one sequence: the sequential part (W_hh h) and the part batched over
    -- all T*B rows (W_ih x), each a multiply-add per weight.
    L.flops_sequential = 2 * G * H * H
    L.flops_batched = 2 * G * H * input
    L.cache = cache_level(L.weight_bytes, machine)
    L.cache_sequential = cache_level(L.recurrent_bytes, machine)
    table.insert(plan.layers, L)
    input = H
  end
  for j, head in ipairs(spec.head) do
    local bound = 1 / math.sqrt(input)
    local D = {
      index = j - 1, number = j, activation = head.activation, line = head.line,
      input = input, output = head.size,
      weight = add_tensor(plan, "head." .. (j - 1) .. ".weight", { head.size, input }, bound),
      bias = add_tensor(plan, "head." .. (j - 1) .. ".bias", { head.size }, bound),
    }
    D.params = head.size * (input + 1)
    D.weight_bytes = D.params * real_bytes
    D.flops = 2 * head.size * input
    D.cache = cache_level(D.weight_bytes, machine)
    table.insert(plan.heads, D)
    input = head.size
  end
  plan.output = input
  plan.top_hidden = plan.layers[#plan.layers].hidden

  -- Layouts: V lanes per vector; each size padded to whole vectors inside internal buffers.
  local V = backend.lanes(spec.precision)
  plan.V = V
  local function layout(t, size)
    t.NB = (size + V - 1) // V
    t.padded = t.NB * V
    t.tail = size % V
  end
  for _, L in ipairs(plan.layers) do layout(L, L.hidden) end
  for _, D in ipairs(plan.heads) do layout(D, D.output) end

  -- Register blocking of every packed product (forward), chosen for the rows it will see: all
  -- T*B rows for the sequence's input projections and head layers, B rows on the sequential
  -- path and in the streaming step. The spec's tuning knobs, measured for this backend (or for
  -- any when they name none), replace the choices of the cost model and of the code budget.
  local regs = backend.registers
  local big_rows = spec.seq_len * spec.batch
  local tuning = spec.tuning
  local tuned = tuning and (tuning.isa == nil or tuning.isa == backend.name)
  local knobs = {} -- product -> its knobs
  local function product(K, G, NB, rows_hint, list, i, name)
    local rb, jb = kernels.forward_blocking(regs, G, NB, rows_hint)
    local knob = tuned and tuning[list] and tuning[list][i][name] or {}
    local k = { K = K, G = G, rb = knob.rb or rb, jb = knob.jb and math.min(knob.jb, NB) or jb }
    knobs[k] = knob
    return k
  end
  for i, L in ipairs(plan.layers) do
    L.input_seq = product(L.input, L.gates, L.NB, big_rows, "layers", i, "input_seq")
    L.input_step = product(L.input, L.gates, L.NB, spec.batch, "layers", i, "input_step")
    L.recurrent = product(L.hidden, L.gates, L.NB, spec.batch, "layers", i, "recurrent")
  end
  for j, D in ipairs(plan.heads) do
    D.seq = product(D.input, 1, D.NB, spec.output_at == "last" and spec.batch or big_rows, "heads", j, "seq")
    D.step = product(D.input, 1, D.NB, spec.batch, "heads", j, "step")
  end

  -- Unrolling: the loop over k of each product is unrolled until its body's estimated machine
  -- code reaches the kernel's share of the budget (the step runs each of them once).
  local steps = {}
  for _, L in ipairs(plan.layers) do
    table.insert(steps, L.input_step)
    table.insert(steps, L.recurrent)
  end
  for _, D in ipairs(plan.heads) do table.insert(steps, D.step) end
  local share = M.STEP_CODE_BUDGET // #steps
  local function unroll(k)
    local per_k = k.jb * k.G * (k.rb + 1) -- multiply-adds and weight loads of one k
    k.unroll = knobs[k].unroll or unroll_factor(k.K, per_k, backend.bytes_per_fma, share)
    k.code_bytes = k.unroll * per_k * backend.bytes_per_fma * (k.rb > 1 and 2 or 1)
  end
  plan.code_bytes = 0
  for _, L in ipairs(plan.layers) do
    unroll(L.input_seq)
    unroll(L.input_step)
    unroll(L.recurrent)
    L.code_bytes = L.input_step.code_bytes + L.recurrent.code_bytes
    plan.code_bytes = plan.code_bytes + L.code_bytes
  end
  for _, D in ipairs(plan.heads) do
    unroll(D.seq)
    unroll(D.step)
    D.code_bytes = D.step.code_bytes
    plan.code_bytes = plan.code_bytes + D.code_bytes
  end

  -- Widths of the internal buffers (padded).
  plan.projection_width, plan.activation_width, plan.hidden_width = 1, 1, 1
  for _, L in ipairs(plan.layers) do
    plan.projection_width = math.max(plan.projection_width, L.gates * L.padded)
    plan.activation_width = math.max(plan.activation_width, L.padded)
    plan.hidden_width = math.max(plan.hidden_width, L.padded)
  end
  for _, D in ipairs(plan.heads) do plan.activation_width = math.max(plan.activation_width, D.padded) end
  plan.weight_bytes = plan.num_params * real_bytes
  plan.cache = cache_level(plan.weight_bytes, machine)
  return plan
end

return M
