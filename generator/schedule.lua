-- schedule.lua — the schedule pass: the ordered list of work of each entry point.
--
--   schedule.build(plan) -> { step = {op...}, forward = {op...}, forward_train = {op...},
--                             backward = {op...} }
--
-- The sequence forward runs layer by layer: each layer's input projection W_ih x over all T*B rows
-- is one matrix product off the sequential path; only the recurrence (W_hh h_{t-1} and the cell
-- update) loops over time. Head layers then run over all T*B rows (or the B rows of the last step
-- when output_at = "last") as one matrix product each.
--
-- The training forward is the same work writing into the tape. The backward is its exact
-- reverse: head layers over all rows at once, then per layer from the top: the sweep back over
-- time (the only sequential part: the cell backward and W_hh^T delta), then every weight
-- gradient as one product over all T*B rows, then the gradient of the layer's input as one
-- product, handed to the layer below.
--
-- Buffers are named: "x", "y", "dy", "dx" (the caller's); "xp", "act0", "act1" (inference
-- workspace); "gates<l>", "hs<l>", "head_out<j>" (tape); "dact0", "dact1" (backward scratch).
local M = {}

local function alternate(prefix, i) return prefix .. (i % 2) end

local function step_ops(plan)
  local ops = {}
  for k, L in ipairs(plan.layers) do
    table.insert(ops, { op = "cell_step", layer = L, src = k == 1 and "x" or ("h" .. (k - 2)) })
  end
  for j, D in ipairs(plan.heads) do
    table.insert(ops, { op = "dense", head = D, rows = "one",
      src = j == 1 and ("h" .. (#plan.layers - 1)) or ("head_out" .. (j - 2)),
      dst = j == #plan.heads and "y" or ("head_out" .. (j - 1)) })
  end
  return ops
end

-- train = false: inference, layer outputs in turn in act0/act1;
-- train = true: every intermediate kept in the tape.
local function forward_ops(plan, train)
  local last = plan.spec.output_at == "last"
  local ops, src = {}, "x"
  for k, L in ipairs(plan.layers) do
    local xp = train and ("gates" .. L.index) or "xp"
    local dst = train and ("hs" .. L.index) or alternate("act", k - 1)
    table.insert(ops, { op = "input_projection", layer = L, src = src, dst = xp, rows = "T*B" })
    table.insert(ops, { op = "recurrence", layer = L, src = xp, dst = dst, train = train })
    src = dst
  end
  for j, D in ipairs(plan.heads) do
    local dst
    if train then dst = "head_out" .. D.index
    elseif j == #plan.heads then dst = "y"
    else dst = alternate("act", #plan.layers + j - 1) end
    table.insert(ops, { op = "dense", head = D, src = src, dst = dst,
      rows = last and "B" or "T*B", src_last_step = last and j == 1 })
    src = dst
  end
  if train or #plan.heads == 0 then
    table.insert(ops, { op = "copy_output", src = src, width = plan.output,
      rows = last and "B" or "T*B", src_last_step = last and #plan.heads == 0 })
  end
  return ops
end

local function backward_ops(plan)
  local last = plan.spec.output_at == "last"
  local ops = {}
  -- The gradient flowing down: dy, then each head's input gradient, in dact0/dact1 in turn.
  local grad, turn = "dy", 0
  for j = #plan.heads, 1, -1 do
    local D = plan.heads[j]
    local src = j > 1 and ("head_out" .. (j - 2)) or ("hs" .. (#plan.layers - 1))
    local dst = alternate("dact", turn)
    table.insert(ops, { op = "dense_backward", head = D, grad = grad, out = "head_out" .. D.index,
      input = src, input_last_step = last and j == 1, rows = last and "B" or "T*B", dinput = dst })
    grad, turn = dst, turn + 1
  end
  if last then
    -- Many-to-one: only the last step of the top layer receives a gradient from above.
    local dst = alternate("dact", turn)
    table.insert(ops, { op = "spread_last_step", grad = grad, dst = dst, width = plan.top_hidden })
    grad, turn = dst, turn + 1
  end
  for k = #plan.layers, 1, -1 do
    local L = plan.layers[k]
    local dinput = k > 1 and alternate("dact", turn) or "dx"
    table.insert(ops, { op = "recurrence_backward", layer = L, grad = grad })
    table.insert(ops, { op = "weight_gradients", layer = L, input = k > 1 and ("hs" .. (k - 2)) or "x" })
    table.insert(ops, { op = "input_gradient", layer = L, dinput = dinput, optional = k == 1 })
    grad, turn = dinput, turn + 1
  end
  return ops
end

function M.build(plan)
  return {
    step = step_ops(plan),
    forward = forward_ops(plan, false),
    forward_train = forward_ops(plan, true),
    backward = backward_ops(plan),
  }
end

return M
