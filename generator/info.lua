-- info.lua — the report of `rnnc info`: sizes, parameters, FLOPs on and off the sequential path,
-- cache residency, critical path and code size. Pure: returns text.
local emit = require("rnnc.emit")

local M = {}

function M.bytes_text(n)
  if n < 1024 then return string.format("%d B", n) end
  if n < 1024 * 1024 then return string.format("%.1f KiB", n / 1024) end
  if n < 1024 ^ 3 then return string.format("%.1f MiB", n / 1024 ^ 2) end
  return string.format("%.1f GiB", n / 1024 ^ 3)
end

function M.count_text(n)
  if n < 1e4 then return tostring(math.floor(n)) end
  if n < 1e6 then return string.format("%.1f K", n / 1e3) end
  if n < 1e9 then return string.format("%.2f M", n / 1e6) end
  return string.format("%.2f G", n / 1e9)
end

local bytes_text, count_text = M.bytes_text, M.count_text

local function machine_text(machine)
  local parts = {}
  for _, key in ipairs({ "l1d", "l2", "l3" }) do
    if machine[key] then table.insert(parts, string.format("%s %s", key:upper(), bytes_text(machine[key]))) end
  end
  return #parts > 0 and table.concat(parts, ", ") or "unknown (no /sys cache information)"
end

-- code: { source_bytes = n, source_lines = n } of the generated model source.
function M.report(plan, code)
  local spec = plan.spec
  local T, B, N = spec.seq_len, spec.batch, #plan.layers
  local out = {}
  local function add(fmt, ...) table.insert(out, string.format(fmt, ...)) end
  add("model %s (%s)", spec.name, spec.path)
  add("  %s", emit.summary(plan))
  add("  backend %s; caches of this machine: %s", plan.backend, machine_text(plan.machine))
  add("")
  local row = "%-16s %11s %9s %10s %12s %12s %-9s %9s"
  add(row, "layer", "in -> out", "params", "weights", "seq FLOP/t", "batch FLOP/t", "cache", "code")
  local sequential, batched_per_step, head_per_row = 0, 0, 0
  for _, L in ipairs(plan.layers) do
    add(row, string.format("l%d %s", L.index, L.cell == "rnn" and ("rnn " .. L.activation) or L.cell),
      string.format("%d -> %d", L.input, L.hidden), count_text(L.params), bytes_text(L.weight_bytes),
      count_text(L.flops_sequential), count_text(L.flops_batched),
      L.cache .. "/" .. L.cache_sequential, bytes_text(L.code_bytes))
    sequential = sequential + L.flops_sequential
    batched_per_step = batched_per_step + L.flops_batched
  end
  for _, D in ipairs(plan.heads) do
    add(row, string.format("head%d %s", D.index, D.activation), string.format("%d -> %d", D.input, D.output),
      count_text(D.params), bytes_text(D.weight_bytes), "0", count_text(D.flops), D.cache, bytes_text(D.code_bytes))
    head_per_row = head_per_row + D.flops
  end
  add("")
  add("FLOP/t: floating-point operations per timestep of one sequence (a multiply-add counts 2;")
  add("elementwise gate math not counted). 'seq' sits on the sequential critical path (W_hh h_{t-1});")
  add("'batch' runs off it, as one matrix product over all T*B rows (W_ih x_t and the head).")
  add("cache: the level that holds the layer's weights for a streaming step / its W_hh for the")
  add("sequence forward.")
  add("")
  local head_rows = spec.output_at == "last" and B or T * B
  local total = T * B * (sequential + batched_per_step) + head_rows * head_per_row
  add("parameters        %d (%s of weights, held in %s for a streaming step)", plan.num_params,
    bytes_text(plan.weight_bytes), plan.cache)
  add("FLOPs/sequence    %s at T = %d, B = %d; %s on the sequential path (%.0f%%)", count_text(total), T, B,
    count_text(T * B * sequential), total > 0 and 100 * T * B * sequential / total or 0)
  add("critical path     %d layer-steps layer by layer (N*T = %d*%d); %d with a layer wavefront (T+N-1)",
    N * T, N, T, T + N - 1)
  local par = require("rnnc.parallel").build(plan)
  local how = { split = "split by units", wave = "layer wavefront", one = "one thread" }
  add("on a team         step %s; sequence forward %s; training forward %s; backward %s (parallel = \"%s\")",
    how[par.step], how[par.sequence], how[par.train], how[par.backward], spec.parallel)
  add("code size         %s of step kernels, estimated (budget %s); %s: %d lines, %s of C",
    bytes_text(plan.code_bytes), bytes_text(require("rnnc.plan").STEP_CODE_BUDGET), spec.name .. ".c",
    code.source_lines, bytes_text(code.source_bytes))
  return table.concat(out, "\n") .. "\n"
end

return M
