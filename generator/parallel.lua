-- parallel.lua — how the multi-core entry points share a model's work among the threads of an
-- nnrt_workers team.
--
--   parallel.build(plan) -> { step = bool, sequence = bool, train = bool } (and per layer L:
--                           L.granule, L.granules)
--
-- The sequential path is split by hidden units ("weight split"): each thread owns a contiguous
-- range of granules (a granule = the recurrent product's register block of unit blocks), computes
-- its units' gates from its own share of W_hh (which stays in its own core's L2) and its units'
-- cell update, and the threads meet at a barrier once per layer-step, when the new h is complete.
-- Everything batched over T*B rows (input projections, head layers, the gradients of inputs) is
-- split by rows, and every weight gradient by weight rows. Each output element is computed by one
-- thread, in the same order as on one thread, so results are bitwise identical for every thread
-- count.
--
-- A barrier costs about 0.3 us here (a cache line crossing cores both ways). Splitting a
-- layer-step pays only when its work is well above that: below MIN_FLOPS per layer-step (about
-- 1 us of one core's work) the entry point runs on the calling thread alone. The spec's
-- `parallel` field overrides the choice ("split": always, "one": never).
local M = {}

M.MIN_FLOPS = 64 * 1024

function M.build(plan)
  local spec = plan.spec
  local step, seq = 0, 0
  for _, L in ipairs(plan.layers) do
    L.granule = L.recurrent.jb
    L.granules = (L.NB + L.granule - 1) // L.granule
    step = step + 2 * L.gates * L.hidden * (L.input + L.hidden) * spec.batch
    seq = seq + 2 * L.gates * L.hidden * L.hidden * spec.batch
  end
  local n = #plan.layers
  local function pays(flops)
    if spec.parallel == "auto" then return flops / n >= M.MIN_FLOPS end
    return spec.parallel == "split"
  end
  return { step = pays(step), sequence = pays(seq), train = pays(seq) }
end

-- The granule kernels a layer needs: sizes of its granules (all L.granule, and the last one).
function M.granule_sizes(L)
  local sizes = { L.granule }
  local last = L.NB - (L.granules - 1) * L.granule
  if last ~= L.granule then table.insert(sizes, last) end
  return sizes
end

return M
