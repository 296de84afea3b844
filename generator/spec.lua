-- spec.lua — the spec pass: evaluate a spec file in a sandbox and validate it.
--
--   spec.parse(host, path, source) -> spec   (raises one user error listing every problem)
--
-- A spec is Lua evaluated with only the model constructors and pure helpers visible, under an
-- instruction limit and a memory limit. Every problem is collected with the line of the
-- offending constructor or field, then reported together as FILE:LINE: error: ...
local errors = require("rnnc.errors")

local M = {}

M.LIMITS = {
  input = 4096,        -- features per timestep
  hidden = 4096,       -- recurrent layer size
  dense = 4096,        -- head layer size
  layers = 16,         -- recurrent layers
  heads = 16,          -- head layers
  seq_len = 1000000,   -- maximum T
  batch = 4096,        -- B
  params = 1 << 31,    -- parameters in the model
  work_bytes = 1 << 34, -- sequence-forward workspace (16 GiB)
}
M.INSTRUCTION_LIMIT = 20000000
M.MEMORY_LIMIT = 64 << 20

M.CELLS = { "rnn", "gru", "lstm" }
M.RNN_ACTIVATIONS = { "tanh", "relu" }
M.ACTIVATIONS = { "linear", "relu", "tanh", "sigmoid" }
M.LOSSES = { "mse", "cross_entropy", "bce" }
M.OUTPUT_AT = { "all", "last" }
M.PRECISIONS = { "f32", "f64" }
M.MATH = { "accurate", "fast" }
-- How the *_mt entry points use a team of threads (generator/parallel.lua): "auto" chooses by the
-- size of a layer-step, "split" shares every layer-step's units among the threads, "wavefront"
-- runs the layers of the sequence forward side by side, "one" keeps every call on one thread.
M.PARALLEL = { "auto", "split", "wavefront", "one" }
M.FIELDS = { "name", "input", "seq_len", "batch", "recurrent", "head", "loss", "output_at", "precision", "math", "parallel" }

local C_KEYWORDS = {}
for word in ([[auto break case char const continue default do double else enum extern float for
  goto if inline int long register restrict return short signed sizeof static struct switch
  typedef union unsigned void volatile while]]):gmatch("%a+") do
  C_KEYWORDS[word] = true
end

local function contains(list, value)
  for _, v in ipairs(list) do
    if v == value then return true end
  end
  return false
end

local function one_of(list)
  return "expected one of: " .. table.concat(list, ", ")
end

-- Edit distance, for "did you mean" hints.
local function distance(a, b)
  local previous = {}
  for j = 0, #b do previous[j] = j end
  for i = 1, #a do
    local current = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      current[j] = math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
    end
    previous = current
  end
  return previous[#b]
end

local function closest(word, candidates)
  local best, best_distance = nil, 3
  for _, candidate in ipairs(candidates) do
    local d = distance(word, candidate)
    if d < best_distance then best, best_distance = candidate, d end
  end
  return best
end

local function describe(value)
  if type(value) == "string" then return string.format("%q", value) end
  if type(value) == "table" and value.constructor then return value.constructor .. "(...)" end
  return tostring(value)
end

-- ---- The sandbox ------------------------------------------------------------------------------

local function copy_library(library, except)
  local copy = {}
  for k, v in pairs(library) do
    if not (except and except[k]) then copy[k] = v end
  end
  return copy
end

-- The line of the spec that called a constructor (nil when unknown).
local function caller_line()
  local info = debug.getinfo(3, "l")
  return info and info.currentline > 0 and info.currentline or nil
end

-- `return model { ... }` is a tail call, which leaves no caller frame to ask: find the line.
local function model_line(lines)
  for _, pattern in ipairs({ "%f[%w_]return%s+model%s*[{(]", "%f[%w_]model%s*[{(]" }) do
    for i, text in ipairs(lines) do
      if text:gsub("%-%-.*$", ""):find(pattern) then return i end
    end
  end
  return 1
end

local function make_environment(state, lines)
  local env = {
    math = copy_library(math, { random = true, randomseed = true }),
    string = copy_library(string, { dump = true }),
    table = copy_library(table),
    utf8 = copy_library(utf8),
    ipairs = ipairs, pairs = pairs, next = next, select = select, type = type,
    tostring = tostring, tonumber = tonumber, error = error, assert = assert,
  }
  local function layer(cell)
    return function(...)
      return { constructor = cell, kind = "recurrent", args = table.pack(...), line = caller_line() }
    end
  end
  env.rnn, env.gru, env.lstm = layer("rnn"), layer("gru"), layer("lstm")
  env.dense = function(...)
    return { constructor = "dense", kind = "dense", args = table.pack(...), line = caller_line() }
  end
  env.model = function(fields)
    local line = caller_line() or model_line(lines)
    if state.model then
      table.insert(state.problems, { line = line, message = "model { ... } is called more than once" })
    end
    state.model = { fields = fields, line = line }
    return state.model
  end
  return env
end

-- ---- Validation -------------------------------------------------------------------------------

-- The line where `field =` is written inside the model constructor (tables keep no lines).
local function field_line(lines, field, from)
  for i = from, #lines do
    local text = lines[i]:gsub("%-%-.*$", "")
    if text:find("%f[%w_]" .. field .. "%s*=") then return i end
  end
  return from
end

local Checker = {}
Checker.__index = Checker

function Checker:fail(line, message, ...)
  table.insert(self.problems, { line = line, message = string.format(message, ...) })
end

-- A positive integer up to limit, or nil after reporting what is wrong.
function Checker:size(value, limit, line, what)
  local n = math.type(value) == "float" and math.tointeger(value) or value
  if math.type(n) ~= "integer" or n < 1 then
    self:fail(line, "%s must be a positive integer, got %s", what, describe(value))
  elseif n > limit then
    self:fail(line, "%s must be at most %d, got %d", what, limit, n)
  else
    return n
  end
end

function Checker:choice(value, list, line, what, default)
  if value == nil then return default end
  if type(value) ~= "string" or not contains(list, value) then
    local hint = type(value) == "string" and closest(value, list)
    self:fail(line, "%s: unknown value %s; %s%s", what, describe(value), one_of(list),
      hint and string.format(" (did you mean %q?)", hint) or "")
    return nil
  end
  return value
end

function Checker:recurrent_layer(index, item, fallback_line)
  if type(item) ~= "table" or item.kind ~= "recurrent" then
    self:fail(type(item) == "table" and item.line or fallback_line,
      "recurrent[%d] must be rnn(H), gru(H) or lstm(H), got %s", index, describe(item))
    return nil
  end
  local what = string.format("layer %d (%s)", index, item.constructor)
  local args = item.args
  local max_args = item.constructor == "rnn" and 2 or 1
  if args.n > max_args then
    self:fail(item.line, "%s: takes %s, got %d arguments", what,
      max_args == 2 and "a size and an activation" or "one argument (the size)", args.n)
  end
  local layer = { cell = item.constructor, line = item.line }
  layer.size = self:size(args[1], M.LIMITS.hidden, item.line, what .. ": size")
  if item.constructor == "rnn" then
    layer.activation = self:choice(args[2], M.RNN_ACTIVATIONS, item.line, what .. ": activation", "tanh")
  end
  return layer
end

function Checker:head_layer(index, item, fallback_line)
  if type(item) ~= "table" or item.kind ~= "dense" then
    self:fail(type(item) == "table" and item.line or fallback_line,
      "head[%d] must be dense(size [, activation]), got %s", index, describe(item))
    return nil
  end
  local what = string.format("head layer %d (dense)", index)
  if item.args.n > 2 then
    self:fail(item.line, "%s: takes a size and an activation, got %d arguments", what, item.args.n)
  end
  return {
    size = self:size(item.args[1], M.LIMITS.dense, item.line, what .. ": size"),
    activation = self:choice(item.args[2], M.ACTIVATIONS, item.line, what .. ": activation", "linear"),
    line = item.line,
  }
end

function Checker:list(value, line, what, limit, required)
  if value == nil then
    if required then self:fail(line, "%s is required", what) end
    return {}
  end
  if type(value) ~= "table" or value.kind then
    self:fail(line, "%s must be a list { ... }, got %s", what, describe(value))
    return {}
  end
  local n = #value
  for k in pairs(value) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      self:fail(line, "%s must be a plain list, found key %s", what, describe(k))
      return {}
    end
  end
  if required and n == 0 then self:fail(line, "%s must hold at least one layer", what) end
  if n > limit then self:fail(line, "%s holds %d layers; at most %d are supported", what, n, limit) end
  return value
end

-- Whether name can prefix the generated C: nil, or the reason it cannot.
function M.name_problem(value)
  local check = setmetatable({ problems = {} }, Checker)
  check:name(value, 0)
  return check.problems[1] and check.problems[1].message
end

function Checker:name(value, line)
  if value == nil then
    self:fail(line, "name is required (the C prefix of the generated code, e.g. name = \"sine\")")
  elseif type(value) ~= "string" or not value:match("^[a-z][a-z0-9_]*$") then
    self:fail(line, "name must be a C identifier of the form [a-z][a-z0-9_]*, got %s", describe(value))
  elseif #value > 48 then
    self:fail(line, "name must be at most 48 characters, got %d", #value)
  elseif C_KEYWORDS[value] then
    self:fail(line, "name %q is a C keyword; choose another", value)
  elseif value:match("^nnrt") then
    self:fail(line, "name %q would clash with the runtime's nnrt_ prefix", value)
  else
    return value
  end
end

local function validate(model, lines, path)
  local problems = {}
  local check = setmetatable({ problems = problems }, Checker)
  local fields = model.fields
  if type(fields) ~= "table" then
    check:fail(model.line, "model expects a table: model { name = ..., ... }, got %s", describe(fields))
    return nil, problems
  end
  local function line_of(field) return field_line(lines, field, model.line) end
  for key in pairs(fields) do
    if type(key) ~= "string" or not contains(M.FIELDS, key) then
      local hint = type(key) == "string" and closest(key, M.FIELDS)
      check:fail(type(key) == "string" and line_of(key) or model.line, "unknown field %s%s; the fields are: %s",
        describe(key), hint and string.format(" (did you mean '%s'?)", hint) or "", table.concat(M.FIELDS, ", "))
    end
  end
  local spec = { path = path, line = model.line }
  spec.name = check:name(fields.name, line_of("name"))
  local function required(field, hint)
    if fields[field] ~= nil then return true end
    check:fail(model.line, "%s is required (%s)", field, hint)
    return false
  end
  spec.input = required("input", "features per timestep")
    and check:size(fields.input, M.LIMITS.input, line_of("input"), "input")
  spec.seq_len = required("seq_len", "the maximum T")
    and check:size(fields.seq_len, M.LIMITS.seq_len, line_of("seq_len"), "seq_len")
  spec.batch = check:size(fields.batch == nil and 1 or fields.batch, M.LIMITS.batch, line_of("batch"), "batch")
  spec.loss = check:choice(fields.loss, M.LOSSES, line_of("loss"), "loss", "mse")
  spec.output_at = check:choice(fields.output_at, M.OUTPUT_AT, line_of("output_at"), "output_at", "all")
  spec.precision = check:choice(fields.precision, M.PRECISIONS, line_of("precision"), "precision", "f32")
  spec.math = check:choice(fields.math, M.MATH, line_of("math"), "math", "accurate")
  spec.parallel = check:choice(fields.parallel, M.PARALLEL, line_of("parallel"), "parallel", "auto")

  spec.recurrent, spec.head = {}, {}
  local recurrent_line, head_line = line_of("recurrent"), line_of("head")
  for i, item in ipairs(check:list(fields.recurrent, recurrent_line, "recurrent", M.LIMITS.layers, true)) do
    spec.recurrent[i] = check:recurrent_layer(i, item, recurrent_line) or false
  end
  for i, item in ipairs(check:list(fields.head, head_line, "head", M.LIMITS.heads, false)) do
    spec.head[i] = check:head_layer(i, item, head_line) or false
  end
  if #problems > 0 then return nil, problems end

  -- Whole-model checks, once every part is valid.
  local last_head = spec.head[#spec.head]
  local output = last_head and last_head.size or spec.recurrent[#spec.recurrent].size
  local loss_line = line_of("loss")
  if spec.loss == "cross_entropy" and output < 2 then
    check:fail(loss_line, "loss cross_entropy needs at least 2 outputs (classes), the model has %d", output)
  end
  if spec.loss ~= "mse" and last_head and last_head.activation ~= "linear" then
    check:fail(last_head.line, "loss %s takes logits (it applies %s itself): the last head layer must be linear, got %s",
      spec.loss, spec.loss == "bce" and "the sigmoid" or "softmax", last_head.activation)
  end
  local params, widest = 0, spec.input
  local input = spec.input
  for _, layer in ipairs(spec.recurrent) do
    local gates = ({ rnn = 1, gru = 3, lstm = 4 })[layer.cell]
    params = params + gates * layer.size * (input + layer.size + 2)
    widest = math.max(widest, gates * layer.size)
    input = layer.size
  end
  for _, layer in ipairs(spec.head) do
    params = params + layer.size * (input + 1)
    widest = math.max(widest, layer.size)
    input = layer.size
  end
  if params > M.LIMITS.params then
    check:fail(model.line, "the model has %d parameters; at most %d are supported", params, M.LIMITS.params)
  end
  local bytes = (spec.precision == "f64" and 8 or 4) * spec.seq_len * spec.batch * widest * 3
  if bytes > M.LIMITS.work_bytes then
    check:fail(line_of("seq_len"), "seq_len * batch is too large: the sequence workspace would take %.1f GiB (at most %d GiB)",
      bytes / 2 ^ 30, M.LIMITS.work_bytes >> 30)
  end
  if #problems > 0 then return nil, problems end
  return spec
end

-- ---- Evaluation -------------------------------------------------------------------------------

local FORBIDDEN = { "os", "io", "require", "load", "loadfile", "dofile", "debug", "collectgarbage",
  "package", "print", "setmetatable", "getmetatable", "rawset", "rawget", "pcall", "xpcall" }

local function explain_runtime_error(message)
  for _, name in ipairs(FORBIDDEN) do
    if message:find("'" .. name .. "'", 1, true) and message:find("global", 1, true) then
      return message .. " (specs run in a sandbox: os, io, require, load, dofile, debug and "
        .. "collectgarbage are not available)"
    end
  end
  return message
end

-- "path:12: message" -> 12, "message"
local CHUNK_NAME = "spec"

local function split_position(message)
  local prefix = CHUNK_NAME .. ":"
  if message:sub(1, #prefix) == prefix then
    local line, rest = message:sub(#prefix + 1):match("^(%d+): (.*)$")
    if line then return tonumber(line), rest end
  end
  return nil, message
end

local function report(path, problems)
  table.sort(problems, function(a, b) return (a.line or 0) < (b.line or 0) end)
  local out = {}
  for _, p in ipairs(problems) do
    table.insert(out, string.format("%s:%s error: %s", path, p.line and (p.line .. ":") or "", p.message))
  end
  table.insert(out, string.format("%s: %d error%s", path, #problems, #problems == 1 and "" or "s"))
  errors.raise(table.concat(out, "\n"))
end

function M.parse(host, path, source)
  local lines = {}
  for line in (source .. "\n"):gmatch("([^\n]*)\n") do table.insert(lines, line) end
  local state = { problems = {} }
  local env = make_environment(state, lines)
  -- A short chunk name: Lua abbreviates long file names in its messages ("...k/dir/x.lua:4:"),
  -- so positions are read against this name and reported against the real path.
  local chunk, syntax_error = load(source, "=" .. CHUNK_NAME, "t", env)
  if not chunk then
    local line, message = split_position(syntax_error)
    report(path, { { line = line, message = "syntax error: " .. message } })
  end
  -- Strings index the real string library through their shared metatable: point it at the
  -- sandbox's copy while the spec runs.
  local string_meta = getmetatable("")
  string_meta.__index = env.string
  local ok, result, limit = host.sandbox(chunk, nil, M.INSTRUCTION_LIMIT, M.MEMORY_LIMIT)
  string_meta.__index = string
  if limit == "instructions" then
    report(path, { { message = string.format("the spec ran past the instruction limit (%d instructions): "
      .. "is there an endless loop?", M.INSTRUCTION_LIMIT) } })
  elseif limit == "memory" then
    report(path, { { message = string.format("the spec used more memory than the limit (%d MiB)",
      M.MEMORY_LIMIT >> 20) } })
  elseif not ok then
    local line, message = split_position(tostring(result))
    report(path, { { line = line, message = explain_runtime_error(message) } })
  end
  if #state.problems > 0 then report(path, state.problems) end
  if state.model == nil or result ~= state.model then
    report(path, { { line = #lines > 0 and 1 or nil,
      message = "a spec must return a model: return model { name = ..., input = ..., ... }" } })
  end
  local spec, problems = validate(state.model, lines, path)
  if not spec then report(path, problems) end
  return spec
end

return M
