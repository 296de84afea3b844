-- spec.lua — the spec pass: evaluate a spec file in a sandbox and validate it.
--
--   spec.parse(host, path, source) -> spec   (raises one user error listing every problem)
--   spec.variant(host, path, source, assignments) -> spec | nil, messages   (rnnc tune --vary)
--   spec.source(spec, comment) -> the text of an equivalent spec (what rnnc tune writes)
--
-- A spec is Lua evaluated with only the model constructors and pure helpers visible
-- (generator/sandbox.lua), under an instruction limit, a memory limit and a deadline. Every
-- problem is collected with the line of the offending constructor or field, then reported
-- together as FILE:LINE: error: ... The validator trusts nothing about the values the spec
-- returned (types, shapes, sizes, text): each check costs at most a bounded amount per value, and
-- at most MAX_REPORTED problems are worded.
local errors = require("rnnc.errors")
local hint = require("rnnc.hint")
local sandbox = require("rnnc.sandbox")

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
M.TIME_LIMIT = 5             -- seconds of wall-clock time for evaluating a spec
M.MAX_SOURCE_BYTES = 1 << 20 -- a spec file
M.MAX_REPORTED = 50          -- problems worded in one report (the count covers every one)

M.CELLS = { "rnn", "gru", "lstm" }
M.RNN_ACTIVATIONS = { "tanh", "relu" }
M.ACTIVATIONS = { "linear", "relu", "tanh", "sigmoid" }
M.LOSSES = { "mse", "cross_entropy", "bce" }
M.OUTPUT_AT = { "all", "last" }
M.PRECISIONS = { "f32", "f64" }
M.MATH = { "accurate", "fast" }
-- How the *_mt entry points use a team of threads (generator/parallel.lua): "auto" chooses by the
-- size of a layer-step, "split" shares every layer-step's units among the threads, "wavefront"
-- runs the layers side by side (sequence forward and backward), "one" keeps every call on one thread.
M.PARALLEL = { "auto", "split", "wavefront", "one" }
M.FIELDS = { "name", "input", "seq_len", "batch", "recurrent", "head", "loss", "output_at", "precision", "math",
  "parallel", "tuning" }

-- The optional `tuning` table: code-generation knobs that do not change any result (rnnc tune
-- writes them). Each product of a layer or head may set its register block (rb rows of the input
-- x jb blocks of units) and the unroll factor of its loop over k; what is absent is the plan's own
-- choice. The knobs apply when generating for `isa` (for any backend when isa is absent).
M.TUNING_FIELDS = { "isa", "layers", "heads" }
M.TUNING_ISAS = { "scalar", "sse4", "avx2", "avx512", "neon" }
M.LAYER_PRODUCTS = { "input_seq", "input_step", "recurrent" }
M.HEAD_PRODUCTS = { "seq", "step" }
M.KNOBS = { "rb", "jb", "unroll" }
M.MAX_BLOCK = 16 -- rb and jb (jb is also clamped to the layer's vector blocks)

-- What `rnnc tune --vary FIELD=...` can change.
M.VARY_FIELDS = { "input", "seq_len", "batch", "loss", "output_at", "precision", "math", "parallel" }
M.VARY_LAYER = { recurrent = { "size", "cell", "activation" }, head = { "size", "activation" } }

local C_KEYWORDS = {}
for word in ([[auto break case char const continue default do double else enum extern float for
  goto if inline int long register restrict return short signed sizeof static struct switch
  typedef union unsigned void volatile while]]):gmatch("%a+") do
  C_KEYWORDS[word] = true
end

-- Names whose generated files would clash with what they are compiled or imported with. The
-- build compiles with -I DIR, so DIR/<name>.h shadows any system header of that name that the
-- generated code, nnrt.h, or the headers they include (directly or through a backend, on every
-- ISA) read with #include <NAME.h>; DIR/<name>.py shadows the modules <name>.py imports. And
-- <name>_init, <name>_load are macros of <stdatomic.h> (--isa multi) for the name atomic.
-- tests/test_hostile.c derives the headers and identifiers from the sources and the compiler.
local SYSTEM_HEADERS = {}
for word in ([[assert complex ctype errno fenv float inttypes iso646 limits locale math setjmp signal
  stdalign stdarg stdatomic stdbool stddef stdint stdio stdlib stdnoreturn string tgmath threads time
  uchar wchar wctype features alloca endian sleef mm_malloc mm3dnow]]):gmatch("[%w_]+") do
  SYSTEM_HEADERS[word] = "the system header <" .. word .. ".h>"
end
local HEADER_PATTERNS = { "intrin$", "^arm_" } -- <immintrin.h> and the headers it includes; <arm_neon.h>, ...
local PYTHON_MODULES = { "json", "math", "os", "struct", "tempfile", "torch" } -- what <name>.py imports
local CLASHING_PREFIXES = { atomic = "the macros atomic_init and atomic_load of <stdatomic.h>" }

-- What the name would clash with, or nil.
local function name_clash(name)
  if SYSTEM_HEADERS[name] then return name .. ".h would shadow " .. SYSTEM_HEADERS[name] end
  for _, p in ipairs(HEADER_PATTERNS) do
    if name:find(p) then return name .. ".h would shadow the system header <" .. name .. ".h>" end
  end
  for _, module in ipairs(PYTHON_MODULES) do
    if name == module then return name .. ".py would shadow the Python module " .. module .. " that it imports" end
  end
  if CLASHING_PREFIXES[name] then return "its functions " .. name .. "_init, " .. name .. "_load would clash with " .. CLASHING_PREFIXES[name] end
  return nil
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

local closest = hint.closest

-- A value in a message: strings quoted on one line and cut, tokens by what made them.
local function describe(value, objects, undefined)
  local t = type(value)
  if t == "string" then return hint.quote(value) end
  if t == "table" then
    local object = objects and objects[value]
    if object then return object.constructor .. "(...)" end
    local name = undefined and undefined[value]
    if name then return hint.name(name.name) .. " (not defined)" end
    return "a table"
  end
  if t == "function" then return "a function" end
  return tostring(value)
end

-- ---- Validation -------------------------------------------------------------------------------

-- Where each `word =` is written: word -> ascending list of lines (tables keep no lines). One
-- pass over the source, so looking a field up costs a binary search, whatever the spec holds.
local function field_index(lines)
  local index = {}
  for i, text in ipairs(lines) do
    text = text:gsub("%-%-.*$", "")
    for word, after in text:gmatch("%f[%w_]([%a_][%w_]*)%s*=(.?)") do
      if after ~= "=" then
        local list = index[word]
        if not list then
          list = {}
          index[word] = list
        end
        list[#list + 1] = i
      end
    end
  end
  return index
end

-- The line where the n-th (default first) `field =` is written from line `from` on, or from.
local function field_line(index, field, from, n)
  local list = type(field) == "string" and index[field]
  if not list then return from end
  local lo, hi = 1, #list + 1 -- the first entry >= from
  while lo < hi do
    local mid = (lo + hi) // 2
    if list[mid] < from then lo = mid + 1 else hi = mid end
  end
  return list[lo + (n or 1) - 1] or from
end

local Checker = {}
Checker.__index = Checker

-- A checker over the tokens of one evaluation (state.objects, state.undefined).
local function new_checker(state)
  return setmetatable({ problems = state.problems, objects = state.objects or {}, undefined = state.undefined or {} },
    Checker)
end

function Checker:fail(line, message, ...)
  table.insert(self.problems, { line = line, message = string.format(message, ...) })
end

function Checker:describe(value) return describe(value, self.objects, self.undefined) end

-- A table the spec wrote (not a token of a constructor, of model or of an undefined name).
function Checker:plain_table(value)
  return type(value) == "table" and not self.objects[value] and not self.undefined[value]
end

-- A positive integer up to limit, or nil after reporting what is wrong.
function Checker:size(value, limit, line, what)
  local n = math.type(value) == "float" and math.tointeger(value) or value
  if math.type(n) ~= "integer" or n < 1 then
    self:fail(line, "%s must be a positive integer, got %s", what, self:describe(value))
  elseif n > limit then
    self:fail(line, "%s must be at most %d, got %d", what, limit, n)
  else
    return n
  end
end

function Checker:choice(value, list, line, what, default)
  if value == nil then return default end
  if type(value) ~= "string" or not contains(list, value) then
    self:fail(line, "%s: unknown value %s; %s%s", what, self:describe(value), one_of(list), hint.did_you_mean(value, list, '"'))
    return nil
  end
  return value
end

-- The constructor's record of a list item of the given kind, or nil after reporting what is
-- wrong (an undefined name has its own report).
function Checker:layer_item(item, kind, line, message, index)
  local object = self.objects[item]
  if object and object.kind == kind then return object end
  if not self.undefined[item] then
    self:fail(object and object.line or line, message, index, self:describe(item))
  end
  return nil
end

function Checker:recurrent_layer(index, item, fallback_line)
  item = self:layer_item(item, "recurrent", fallback_line, "recurrent[%d] must be rnn(H), gru(H) or lstm(H), got %s", index)
  if not item then return nil end
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
  item = self:layer_item(item, "dense", fallback_line, "head[%d] must be dense(size [, activation]), got %s", index)
  if not item then return nil end
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

-- A list { a, b, ... }: its items in order, or {} after reporting what is wrong. A nil entry (a
-- misspelt local, a hole) is an error, not a shorter list. Costs one pass over the keys.
function Checker:list(value, line, what, limit, required)
  if value == nil then
    if required then self:fail(line, "%s is required", what) end
    return {}
  end
  if not self:plain_table(value) then
    if not self.undefined[value] then self:fail(line, "%s must be a list { ... }, got %s", what, self:describe(value)) end
    return {}
  end
  local count, last, bad = 0, 0, nil
  for k in pairs(value) do
    if math.type(k) == "integer" and k >= 1 then
      count = count + 1
      if k > last then last = k end
    elseif bad == nil then
      bad = k
    end
  end
  if bad ~= nil then
    self:fail(line, "%s must be a plain list, found key %s", what, self:describe(bad))
    return {}
  end
  if last > limit then
    self:fail(line, "%s holds %d layers; at most %d are supported", what, last, limit)
    return {}
  end
  if count < last then -- holes: the first one lies within the first count + 1 entries
    for i = 1, last do
      if value[i] == nil then
        self:fail(line, "%s[%d] is nil (a misspelt or undefined variable?); the list holds %d entr%s", what, i, last,
          last == 1 and "y" or "ies")
        return {}
      end
    end
  end
  if required and last == 0 then self:fail(line, "%s must hold at least one layer", what) end
  return value
end

-- A total order on keys of any type, for stable messages (tables and functions tie).
local function key_before(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  if ta == "string" or ta == "number" then return a < b end
  if ta == "boolean" then return not a and b end
  return false
end

-- Each key of t must be one of names; reports the others (at line_of(key), or line): at most
-- MAX_REPORTED of them, the first ones in key order, then how many more there are. One pass over
-- the keys, each costing at most MAX_REPORTED comparisons.
function Checker:known_keys(t, names, line, what, line_of)
  local unknown, more = {}, 0
  for key in pairs(t) do
    if type(key) ~= "string" or not contains(names, key) then
      local n = #unknown
      if n == M.MAX_REPORTED and not key_before(key, unknown[n]) then
        more = more + 1
      else
        if n == M.MAX_REPORTED then
          unknown[n] = nil
          more = more + 1
          n = n - 1
        end
        local i = n + 1
        while i > 1 and key_before(key, unknown[i - 1]) do
          unknown[i] = unknown[i - 1]
          i = i - 1
        end
        unknown[i] = key
      end
    end
  end
  for _, key in ipairs(unknown) do
    local at = line_of and type(key) == "string" and line_of(key) or line
    if what then
      self:fail(at, "%s: unknown field %s%s; expected one of: %s", what, self:describe(key), hint.did_you_mean(key, names),
        table.concat(names, ", "))
    else
      self:fail(at, "unknown field %s%s; the fields are: %s", self:describe(key), hint.did_you_mean(key, names),
        table.concat(names, ", "))
    end
  end
  if more > 0 then self:fail(line, "%s%d more unknown fields", what and what .. ": " or "", more) end
end

-- The knobs of one product: { rb, jb, unroll } (each may be absent). rows: the rows the product
-- sees; K: the length of its loop over inputs.
function Checker:knobs(value, line, what, rows, K)
  if not self:plain_table(value) then
    self:fail(line, "%s must be a table { rb = ..., jb = ..., unroll = ... }, got %s", what, self:describe(value))
    return {}
  end
  self:known_keys(value, M.KNOBS, line, what)
  local function knob(key, limit)
    return value[key] ~= nil and self:size(value[key], limit, line, what .. "." .. key) or nil
  end
  return { rb = knob("rb", math.min(rows, M.MAX_BLOCK)), jb = knob("jb", M.MAX_BLOCK), unroll = knob("unroll", K) }
end

-- tuning = { isa = ..., layers = { per recurrent layer { input_seq = knobs, ... } }, heads = {...} }
function Checker:tuning(value, line, index, spec)
  if not self:plain_table(value) then
    self:fail(line, "tuning must be a table { isa = ..., layers = { ... }, heads = { ... } }, got %s", self:describe(value))
    return nil
  end
  self:known_keys(value, M.TUNING_FIELDS, line, "tuning")
  local tuning = { isa = self:choice(value.isa, M.TUNING_ISAS, line, "tuning.isa") }
  local all_rows = spec.seq_len * spec.batch
  local head_rows = spec.output_at == "last" and spec.batch or all_rows
  -- For each layer (or head) i: { product = { rows, K } }.
  local shapes = { layers = {}, heads = {} }
  local input = spec.input
  for i, layer in ipairs(spec.recurrent) do
    shapes.layers[i] = { input_seq = { all_rows, input }, input_step = { spec.batch, input }, recurrent = { spec.batch, layer.size } }
    input = layer.size
  end
  for j, head in ipairs(spec.head) do
    shapes.heads[j] = { seq = { head_rows, input }, step = { spec.batch, input } }
    input = head.size
  end
  for _, list in ipairs({ { "layers", M.LAYER_PRODUCTS, "recurrent layers" }, { "heads", M.HEAD_PRODUCTS, "head layers" } }) do
    local name, products, noun = list[1], list[2], list[3]
    local list_line = field_line(index, name, line)
    local problems = #self.problems
    local entries = self:list(value[name], list_line, "tuning." .. name, math.huge, false)
    if value[name] ~= nil and #self.problems == problems and #entries ~= #shapes[name] then
      self:fail(list_line, "tuning.%s has %d entries; the model has %d %s", name, #entries, #shapes[name], noun)
    elseif value[name] ~= nil and #self.problems == problems then
      tuning[name] = {}
      local seen = {} -- key -> entries so far that set it: the n-th `key =` in the text is theirs
      local function line_of(key)
        seen[key] = (seen[key] or 0) + 1
        return field_line(index, key, list_line, seen[key])
      end
      for i, entry in ipairs(entries) do
        local what = string.format("tuning.%s[%d]", name, i)
        tuning[name][i] = {}
        if not self:plain_table(entry) then
          self:fail(list_line, "%s must be a table { %s = { ... }, ... }, got %s", what, products[1], self:describe(entry))
        else
          self:known_keys(entry, products, list_line, what, line_of)
          for _, product in ipairs(products) do
            if entry[product] ~= nil then
              local shape = shapes[name][i][product]
              tuning[name][i][product] = self:knobs(entry[product], line_of(product), what .. "." .. product, shape[1], shape[2])
            end
          end
        end
      end
    end
  end
  return tuning
end

-- Whether name can prefix the generated C: nil, or the reason it cannot.
function M.name_problem(value)
  local check = new_checker({ problems = {} })
  check:name(value, 0)
  return check.problems[1] and check.problems[1].message
end

function Checker:name(value, line)
  if value == nil then
    self:fail(line, "name is required (the C prefix of the generated code, e.g. name = \"sine\")")
  elseif type(value) ~= "string" or not value:match("^[a-z][a-z0-9_]*$") then
    self:fail(line, "name must be a C identifier of the form [a-z][a-z0-9_]*, got %s", self:describe(value))
  elseif #value > 48 then
    self:fail(line, "name must be at most 48 characters, got %d", #value)
  elseif C_KEYWORDS[value] then
    self:fail(line, "name %q is a C keyword; choose another", value)
  elseif value:match("^nnrt") then
    self:fail(line, "name %q would clash with the runtime's nnrt_ prefix", value)
  elseif name_clash(value) then
    self:fail(line, "name %q cannot be used: the generated %s; choose another name", value, name_clash(value))
  else
    return value
  end
end

-- The validated spec, or nil and the problems (appended to state.problems).
local function validate(state, lines, path)
  local model = state.model
  local problems = state.problems
  local check = new_checker(state)
  local fields = model.fields
  if not check:plain_table(fields) then
    if not check.undefined[fields] then
      check:fail(model.line, "model expects a table: model { name = ..., ... }, got %s", check:describe(fields))
    end
    return nil, problems
  end
  local index = field_index(lines)
  local function line_of(field) return field_line(index, field, model.line) end
  check:known_keys(fields, M.FIELDS, model.line, nil, line_of)
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
  spec.math = check:choice(fields.math, M.MATH, line_of("math"), "math", "fast")
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
  if fields.tuning ~= nil then spec.tuning = check:tuning(fields.tuning, line_of("tuning"), index, spec) end
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

-- The text of the spec file at path, or raises: a regular file of at most MAX_SOURCE_BYTES.
function M.read(host, path)
  local source, why = host.read_file(path, M.MAX_SOURCE_BYTES)
  if not source then errors.raise("rnnc: cannot read spec: " .. hint.inline(why)) end
  return source
end

local function evaluate(host, path, source)
  return sandbox.evaluate(host, path, source, { instructions = M.INSTRUCTION_LIMIT, bytes = M.MEMORY_LIMIT,
    seconds = M.TIME_LIMIT, reported = M.MAX_REPORTED })
end

function M.parse(host, path, source)
  local state, lines = evaluate(host, path, source)
  local spec, problems = validate(state, lines, path)
  if not spec then errors.report(path, problems, M.MAX_REPORTED) end
  return spec
end

-- ---- Variants (rnnc tune --vary) ----------------------------------------------------------------

local function vary_fields()
  local names = {}
  for _, f in ipairs(M.VARY_FIELDS) do table.insert(names, f) end
  for _, list in ipairs({ "recurrent", "head" }) do
    for _, attr in ipairs(M.VARY_LAYER[list]) do table.insert(names, list .. ".N." .. attr) end
  end
  return names
end

-- A number when the text is one (sizes), else the text itself (the validator then says what is
-- wrong with it).
local function number_or_text(text)
  return math.tointeger(tonumber(text)) or tonumber(text) or text
end

-- Sets field (a --vary address such as "recurrent.2.size") to the text value in the model's
-- fields; nil, or what is wrong and whether it is the address (true) rather than the value.
local function assign(fields, objects, field, value)
  local names = vary_fields()
  local list, index, attr = field:match("^(%a+)%.(%d+)%.([%a_]+)$")
  if not list then
    if not contains(M.VARY_FIELDS, field) then
      local generic = field:gsub("%.%d+%.", ".N.")
      local hint = closest(generic, names)
      return string.format("unknown field '%s'%s; the fields are: %s", field,
        hint and string.format(" (did you mean '%s'?)", hint) or "", table.concat(names, ", ")), true
    end
    fields[field] = (field == "input" or field == "seq_len" or field == "batch") and number_or_text(value) or value
    return nil
  end
  if not M.VARY_LAYER[list] or not contains(M.VARY_LAYER[list], attr) then
    local hint = closest(list .. ".N." .. attr, names)
    return string.format("unknown field '%s'%s; the fields are: %s", field,
      hint and string.format(" (did you mean '%s'?)", hint) or "", table.concat(names, ", ")), true
  end
  local items, i = fields[list], tonumber(index)
  local count = type(items) == "table" and not objects[items] and #items or 0
  if i < 1 or i > count then
    return string.format("the spec has %d %s layer%s, so there is no %s %d", count, list, count == 1 and "" or "s", list, i), true
  end
  -- A copy: the spec may use one layer table in several places.
  local item = objects[items[i]]
  if not item then return nil end -- not a layer: the validator says so
  local copy = { constructor = item.constructor, kind = item.kind, line = item.line,
    args = table.pack(table.unpack(item.args, 1, item.args.n)) }
  local token = {}
  objects[token] = copy
  items[i] = token
  if attr == "size" then
    copy.args[1] = number_or_text(value)
  elseif attr == "cell" then
    if not contains(M.CELLS, value) then
      local hint = closest(value, M.CELLS)
      return string.format("unknown cell %q; %s%s", value, one_of(M.CELLS), hint and string.format(" (did you mean %q?)", hint) or "")
    end
    copy.constructor = value
    if value ~= "rnn" then copy.args.n = math.min(copy.args.n, 1) end -- only rnn takes an activation
  else
    if list == "recurrent" and copy.constructor ~= "rnn" then
      return string.format("recurrent layer %d is %s: only rnn layers take an activation", i, copy.constructor), true
    end
    copy.args[2] = value
    copy.args.n = math.max(copy.args.n, 2)
  end
  return nil
end

-- The spec with the assignments ({ field = "recurrent.2.size", value = "64" }, ...) made, and
-- without its tuning (rnnc tune chooses the knobs itself). Returns the spec, or nil, the messages
-- of what is wrong (without file and line: the problem is on the command line) and whether an
-- address (rather than a value) is wrong.
function M.variant(host, path, source, assignments)
  local state, lines = evaluate(host, path, source)
  local model = state.model
  if #state.problems > 0 or type(model.fields) ~= "table" or state.objects[model.fields] or state.undefined[model.fields] then
    return M.parse(host, path, source)
  end
  model.fields.tuning = nil
  for _, a in ipairs(assignments) do
    local problem, of_field = assign(model.fields, state.objects, a.field, a.value)
    if problem then return nil, { problem }, of_field end
  end
  local spec, problems = validate(state, lines, path)
  if spec then return spec end
  local messages = {}
  for _, p in ipairs(problems) do table.insert(messages, p.message) end
  return nil, messages
end

-- ---- Writing a spec -----------------------------------------------------------------------------

local function knobs_text(knobs)
  local parts = {}
  for _, key in ipairs(M.KNOBS) do
    if knobs[key] then table.insert(parts, string.format("%s = %d", key, knobs[key])) end
  end
  return "{ " .. table.concat(parts, ", ") .. " }"
end

local function tuning_text(tuning, out)
  table.insert(out, "  tuning = {             -- code-generation knobs chosen by measurement; results do not depend on them")
  if tuning.isa then table.insert(out, string.format("    isa = %q,", tuning.isa)) end
  for _, list in ipairs({ { "layers", M.LAYER_PRODUCTS }, { "heads", M.HEAD_PRODUCTS } }) do
    local entries = tuning[list[1]]
    if entries then
      table.insert(out, string.format("    %s = {", list[1]))
      for _, entry in ipairs(entries) do
        local parts = {}
        for _, product in ipairs(list[2]) do
          if entry[product] then table.insert(parts, product .. " = " .. knobs_text(entry[product])) end
        end
        table.insert(out, "      { " .. table.concat(parts, ", ") .. " },")
      end
      table.insert(out, "    },")
    end
  end
  table.insert(out, "  },")
end

-- The text of a spec equivalent to the validated spec (every default written out), after the
-- comment's lines.
function M.source(spec, comment)
  local out = {}
  for line in comment:gmatch("[^\n]+") do table.insert(out, "-- " .. line) end
  table.insert(out, "return model {")
  local function field(name, value) table.insert(out, string.format("  %s = %s,", name, value)) end
  field("name", string.format("%q", spec.name))
  field("input", spec.input)
  field("seq_len", spec.seq_len)
  field("batch", spec.batch)
  local layers, heads = {}, {}
  for _, layer in ipairs(spec.recurrent) do
    table.insert(layers, layer.cell == "rnn" and string.format("rnn(%d, %q)", layer.size, layer.activation)
      or string.format("%s(%d)", layer.cell, layer.size))
  end
  for _, head in ipairs(spec.head) do table.insert(heads, string.format("dense(%d, %q)", head.size, head.activation)) end
  field("recurrent", "{ " .. table.concat(layers, ", ") .. " }")
  field("head", #heads > 0 and ("{ " .. table.concat(heads, ", ") .. " }") or "{}")
  for _, name in ipairs({ "loss", "output_at", "precision", "math", "parallel" }) do field(name, string.format("%q", spec[name])) end
  if spec.tuning then tuning_text(spec.tuning, out) end
  table.insert(out, "}")
  return table.concat(out, "\n") .. "\n"
end

return M
