-- cname.lua — every C identifier the generator emits is built here, so names stay consistent
-- between the header, the source, the descriptor and the driver.
local M = {}

function M.upper(spec) return spec.name:upper() end
function M.macro(spec, what) return spec.name:upper() .. "_" .. what end
function M.type(spec, what) return spec.name .. "_" .. what end
function M.fn(spec, what) return spec.name .. "_" .. what end
function M.private(spec, what) return spec.name .. "__" .. what end

-- "rnn.weight_ih_l0" -> "rnn_weight_ih_l0", "head.1.bias" -> "head_1_bias"
function M.field(tensor_name) return (tensor_name:gsub("%.", "_")) end

-- Kernels of recurrent layer k (0-based, as PyTorch's _l{k}) and head layer j.
function M.layer_fn(spec, k, what) return string.format("%s__l%d_%s", spec.name, k, what) end
function M.head_fn(spec, j, what) return string.format("%s__head%d_%s", spec.name, j, what) end

-- State fields of layer k.
function M.state_h(k) return "h" .. k end
function M.state_c(k) return "c" .. k end

return M
