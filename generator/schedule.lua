-- schedule.lua — the schedule pass: the ordered list of work of each entry point.
--
--   schedule.build(plan) -> { step = {op...}, forward = {op...} }
--
-- The sequence forward runs layer by layer: each layer's input projection W_ih x over all T*B rows
-- is one matrix product off the sequential path; only the recurrence (W_hh h_{t-1} and the cell
-- update) loops over time. Head layers then run over all T*B rows (or the B rows of the last
-- step when output_at = "last") as one matrix product each. Buffers: "x" (input), "y" (output),
-- "xp" (projections), and two activation buffers "act0"/"act1" used in turn.
local M = {}

local function activation_buffer(i) return "act" .. (i % 2) end

function M.build(plan)
  local last = plan.spec.output_at == "last"
  local step, forward = {}, {}

  -- Streaming step: one timestep, every batch row; each cell reads [x; h] in one pass.
  for k, L in ipairs(plan.layers) do
    table.insert(step, { op = "cell_step", layer = L, src = k == 1 and "x" or ("h" .. (k - 2)) })
  end
  for j, D in ipairs(plan.heads) do
    table.insert(step, { op = "dense", head = D, rows = "one",
      src = j == 1 and ("h" .. (#plan.layers - 1)) or activation_buffer(j - 2),
      dst = j == #plan.heads and "y" or activation_buffer(j - 1) })
  end

  -- Sequence forward.
  local src = "x"
  for k, L in ipairs(plan.layers) do
    local dst = activation_buffer(k - 1)
    table.insert(forward, { op = "input_projection", layer = L, src = src, dst = "xp", rows = "T*B" })
    table.insert(forward, { op = "recurrence", layer = L, src = "xp", dst = dst })
    src = dst
  end
  local buffer_index = #plan.layers
  for j, D in ipairs(plan.heads) do
    local dst = j == #plan.heads and "y" or activation_buffer(buffer_index)
    table.insert(forward, { op = "dense", head = D, src = src, dst = dst,
      rows = last and "B" or "T*B", src_last_step = last and j == 1 })
    src, buffer_index = dst, buffer_index + 1
  end
  if #plan.heads == 0 then
    table.insert(forward, { op = "copy_output", src = src, width = plan.top_hidden,
      rows = last and "B" or "T*B", src_last_step = last })
  end
  return { step = step, forward = forward }
end

return M
