-- parallel.lua — how the multi-core entry points share a model's work among the threads of an
-- nnrt_workers team.
--
--   parallel.build(plan) -> { step = S, sequence = S, train = S, backward = S, chunk = steps }
--     S: "split" (weight split), "wave" (layer wavefront; not the step) or "one"
--   (and per layer L: L.granule, L.granules)
--
-- "split": the sequential path is shared by hidden units. Each thread owns a contiguous range of
-- granules (a granule = the recurrent product's register block of unit blocks), computes its
-- units' gates from its own share of W_hh (which stays in its own core's cache) and its units'
-- cell update, and the threads meet at a barrier once per layer-step, when the new h is
-- complete. Everything batched over T*B rows (input projections, head layers, the gradients of
-- inputs) is split by rows, and every weight gradient by weight rows.
--
-- "wave": layer l runs on thread l % count, in chunks of `chunk` steps: a chunk of layer l
-- starts when layer l-1 has published that chunk (an acquire/release flag, no barrier), so layer
-- l at step t runs beside layer l+1 at an earlier step. It needs no meeting per step, so it pays
-- for layers too small for the split, but at most N threads work and the pipeline takes
-- (N-1) chunks to fill.
--
-- Either way each output element is computed by one thread, in the same order as on one
-- thread, so results are bitwise identical for every thread count.
--
-- A meeting costs about 0.3 us here (a cache line crossing cores both ways). The split pays only
-- when a layer-step's work is well above that: from SPLIT_FLOPS per layer-step (about 1 us of
-- one core's work); the wavefront from WAVE_FLOPS, with chunks of about CHUNK_FLOPS. Below both
-- the entry point runs on the calling thread alone. The spec's `parallel` field overrides the
-- choice ("split", "wavefront" or "one").
local M = {}

M.SPLIT_FLOPS = 64 * 1024
M.WAVE_FLOPS = 4 * 1024
M.CHUNK_FLOPS = 256 * 1024

function M.build(plan)
  local spec = plan.spec
  -- Work per layer-step: the step's (input projection and recurrence), the sequential path's.
  local step, seq = 0, 0
  for _, L in ipairs(plan.layers) do
    L.granule = L.recurrent.jb
    L.granules = (L.NB + L.granule - 1) // L.granule
    step = step + 2 * L.gates * L.hidden * (L.input + L.hidden) * spec.batch
    seq = seq + 2 * L.gates * L.hidden * L.hidden * spec.batch
  end
  local n = #plan.layers
  step, seq = step / n, seq / n
  local function choose(flops, wave_ok)
    local wave = wave_ok and n >= 2 and "wave" or "one"
    if spec.parallel == "split" then return "split" end
    if spec.parallel == "wavefront" then return wave end
    if spec.parallel == "one" then return "one" end
    if flops >= M.SPLIT_FLOPS then return "split" end
    if flops >= M.WAVE_FLOPS then return wave end
    return "one"
  end
  local sequence = choose(seq, true)
  return {
    step = choose(step, false), sequence = sequence, train = sequence,
    backward = sequence,
    chunk = math.max(1, math.min(spec.seq_len, 32, math.ceil(M.CHUNK_FLOPS / step))),
  }
end

-- The granule kernels a layer needs: sizes of its granules (all L.granule, and the last one).
function M.granule_sizes(L)
  local sizes = { L.granule }
  local last = L.NB - (L.granules - 1) * L.granule
  if last ~= L.granule then table.insert(sizes, last) end
  return sizes
end

return M
