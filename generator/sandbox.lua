-- sandbox.lua — the world a spec runs in (spec.lua evaluates it under host.sandbox's instruction,
-- memory and time limits).
--
--   sandbox.environment(state) -> env   the globals a spec sees
--
-- What a spec sees: the constructors (rnn, gru, lstm, dense, model), the pure helpers (math,
-- string, table, utf8, ipairs, pairs, ...) and nothing that reaches outside. Every library
-- function whose C code loops on its own (where neither the instruction limit nor the deadline
-- can stop it) is replaced by a bounded one: the pattern functions and the table functions whose
-- loop runs over a length or a range (#t of { [1] = 1, [2] = 1, [4] = 1, ..., [1 << 50] = 1 } may
-- be 1 << 50) do the same work in Lua, where the instruction limit counts it; string.rep of an
-- empty string returns at once. The others do work bounded by the size of their arguments and
-- result, which the memory limit bounds.
--
-- The constructors return opaque tokens: what they record lives in state.objects, out of the
-- spec's reach, so the validator never trusts a table's shape. Reading an undefined global
-- gives an "undefined" token (state.undefined) that records the name and line, so a misspelt
-- variable or an unknown constructor is reported with the other problems instead of becoming a
-- silent hole in a list.
local errors = require("rnnc.errors")
local hint = require("rnnc.hint")
local pattern = require("rnnc.pattern")

local M = {}

-- Globals a spec may not use; reading one gives nil (and a hint in the message).
M.FORBIDDEN = { "os", "io", "require", "load", "loadfile", "dofile", "debug", "collectgarbage",
  "package", "print", "setmetatable", "getmetatable", "rawset", "rawget", "pcall", "xpcall" }

local arg_error, check_integer = pattern.arg_error, pattern.opt_integer
local maxinteger = math.maxinteger

local function fail(message) error(message, 0) end

local function check_table(t, i, name)
  if type(t) ~= "table" then arg_error(i, name, "table expected, got " .. (t == nil and "no value" or type(t))) end
end

local function integer(v, i, name)
  if v == nil then arg_error(i, name, "number expected, got no value") end
  return check_integer(v, i, name)
end

-- ---- table: the loops over lengths and ranges, in Lua ------------------------------------------

local function insert(t, ...)
  check_table(t, 1, "insert")
  local e = #t + 1
  local n = select("#", ...)
  if n == 1 then
    t[e] = ...
    return
  end
  if n ~= 2 then fail("wrong number of arguments to 'insert'") end
  local pos, value = ...
  pos = integer(pos, 2, "insert")
  if pos < 1 or pos > e then arg_error(2, "insert", "position out of bounds") end
  for i = e, pos + 1, -1 do t[i] = t[i - 1] end
  t[pos] = value
end

local function remove(t, pos)
  check_table(t, 1, "remove")
  local size = #t
  pos = pos == nil and size or integer(pos, 2, "remove")
  if pos ~= size and (pos < 1 or pos > size + 1) then arg_error(2, "remove", "position out of bounds") end
  local result = t[pos]
  while pos < size do
    t[pos] = t[pos + 1]
    pos = pos + 1
  end
  t[pos] = nil
  return result
end

local function move(a1, f, e, t, a2)
  f, e, t = integer(f, 2, "move"), integer(e, 3, "move"), integer(t, 4, "move")
  local dest = a2 == nil and a1 or a2
  check_table(a1, 1, "move")
  check_table(dest, a2 == nil and 1 or 5, "move")
  if e >= f then
    if not (f > 0 or e < maxinteger + f) then arg_error(3, "move", "too many elements to move") end
    local n = e - f + 1
    if t > maxinteger - n + 1 then arg_error(4, "move", "destination wrap around") end
    if t > e or t <= f or dest ~= a1 then
      for i = 0, n - 1 do dest[t + i] = a1[f + i] end
    else
      for i = n - 1, 0, -1 do dest[t + i] = a1[f + i] end
    end
  end
  return dest
end

local function default_less(x, y)
  local tx, ty = type(x), type(y)
  if tx == ty and (tx == "number" or tx == "string") then return x < y end
  if tx == ty then fail("attempt to compare two " .. tx .. " values") end
  fail("attempt to compare " .. tx .. " with " .. ty)
end

-- A bottom-up merge sort: n log n comparisons whatever the order function does.
local function sort(t, comp)
  check_table(t, 1, "sort")
  if comp ~= nil and type(comp) ~= "function" then arg_error(2, "sort", "function expected, got " .. type(comp)) end
  local less = comp or default_less
  local n = #t
  if n < 2 then return end
  if n >= 0x7fffffff then arg_error(1, "sort", "array too big") end
  local a, b = {}, {}
  for i = 1, n do a[i] = t[i] end
  local width = 1
  while width < n do
    for lo = 1, n, 2 * width do
      local mid, hi = math.min(lo + width, n + 1), math.min(lo + 2 * width, n + 1)
      local i, j = lo, mid
      for k = lo, hi - 1 do
        if j < hi and (i >= mid or less(a[j], a[i])) then
          b[k], j = a[j], j + 1
        else
          b[k], i = a[i], i + 1
        end
      end
    end
    a, b = b, a
    width = width * 2
  end
  for i = 1, n do t[i] = a[i] end
end

-- ---- string ------------------------------------------------------------------------------------

local c_rep = string.rep

-- string.rep("", n) loops n times in C for nothing.
local function rep(s, n, sep)
  s = pattern.check_string(s, 1, "rep")
  n = integer(n, 2, "rep")
  if sep ~= nil then sep = pattern.check_string(sep, 3, "rep") end
  if n > 0 and #s == 0 and (sep == nil or #sep == 0) then return "" end
  return c_rep(s, n, sep)
end

local function copy(library, except)
  local out = {}
  for k, v in pairs(library) do
    if not (except and except[k]) then out[k] = v end
  end
  return out
end

local function libraries()
  local s = copy(string, { dump = true })
  s.rep, s.find, s.match, s.gmatch, s.gsub = rep, pattern.find, pattern.match, pattern.gmatch, pattern.gsub
  local t = copy(table)
  t.insert, t.remove, t.move, t.sort = insert, remove, move, sort
  return {
    math = copy(math, { random = true, randomseed = true }), -- specs are deterministic
    string = s, table = t, utf8 = copy(utf8),
  }
end

-- ---- The environment ---------------------------------------------------------------------------

-- The line of the spec at stack level `level` (counted from this function's caller), or nil.
local function line_at(level)
  local info = debug.getinfo(level + 1, "l")
  return info and info.currentline > 0 and info.currentline or nil
end

local MAX_UNDEFINED = 1000 -- distinct undefined names recorded
local OVERFLOW = "(and more undefined names)"

local ARITHMETIC = { "__add", "__sub", "__mul", "__div", "__mod", "__pow", "__unm", "__idiv", "__band", "__bor",
  "__bxor", "__shl", "__shr", "__bnot", "__concat", "__len", "__lt", "__le", "__newindex" }

-- state: { objects = {}, undefined = {}, undefined_by_name = {}, problems = {} }; model_line():
-- the line of `return model`, for the tail call that leaves no frame to ask.
function M.environment(state, model_line)
  local libs = libraries()
  local env = {
    math = libs.math, string = libs.string, table = libs.table, utf8 = libs.utf8,
    ipairs = ipairs, pairs = pairs, next = next, select = select, type = type,
    tostring = tostring, tonumber = tonumber, error = error, assert = assert,
  }
  local function layer(constructor, kind)
    return function(...)
      local token = {}
      state.objects[token] = { constructor = constructor, kind = kind, args = table.pack(...), line = line_at(2) }
      return token
    end
  end
  env.rnn, env.gru, env.lstm = layer("rnn", "recurrent"), layer("gru", "recurrent"), layer("lstm", "recurrent")
  env.dense = layer("dense", "dense")
  env.model = function(fields)
    local line = line_at(2) or model_line()
    if state.model then -- reported once per line (a loop may call it a million times)
      state.repeated = state.repeated or {}
      if not state.repeated[line or 0] and #state.problems < 100 then
        state.repeated[line or 0] = true
        table.insert(state.problems, { line = line, message = "model { ... } is called more than once" })
      end
    end
    local token = {}
    state.model = { fields = fields, line = line, token = token }
    return token
  end

  local forbidden = {}
  for _, name in ipairs(M.FORBIDDEN) do forbidden[name] = true end
  local marker_meta = {}
  local function not_defined(token)
    local record = state.undefined[token]
    fail((record and record.name or "?") .. " is not defined")
  end
  marker_meta.__call = function(token)
    state.undefined[token].called = true
    return token
  end
  marker_meta.__index = function(token)
    state.undefined[token].indexed = true
    return token
  end
  for _, event in ipairs(ARITHMETIC) do
    marker_meta[event] = function(a, b) not_defined(state.undefined[a] and a or b) end
  end
  setmetatable(env, {
    __index = function(_, name)
      if forbidden[name] then return nil end
      local key = type(name) == "string" and name or tostring(name)
      local token = state.undefined_by_name[key]
      if not token then
        -- Distinct names are recorded up to a bound (a loop may read _ENV["x" .. i]); the rest
        -- share one token, counted.
        state.undefined_count = (state.undefined_count or 0) + 1
        if state.undefined_count > MAX_UNDEFINED then
          token = state.undefined_by_name[OVERFLOW]
          if token then return token end
          key = OVERFLOW
        end
        token = setmetatable({}, marker_meta)
        state.undefined_by_name[key] = token
        state.undefined[token] = { name = key, line = line_at(2) }
      end
      return token
    end,
  })
  return env
end

-- The line of `return model { ... }`: a tail call leaves no caller frame to ask.
local function model_line(lines)
  for _, pattern in ipairs({ "%f[%w_]return%s+model%s*[{(]", "%f[%w_]model%s*[{(]" }) do
    for i, text in ipairs(lines) do
      if text:gsub("%-%-.*$", ""):find(pattern) then return i end
    end
  end
  return 1
end

-- ---- Evaluation -------------------------------------------------------------------------------

local function explain_runtime_error(message)
  for _, name in ipairs(M.FORBIDDEN) do
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

local LUA_KEYWORDS = {}
for word in ([[and break do else elseif end false for function goto if in local nil not or repeat return then
  true until while]]):gmatch("%a+") do LUA_KEYWORDS[word] = true end

-- Names a misspelt one may have meant: the sandbox's globals and the identifiers of the source.
local function known_names(env, source)
  local names, seen = {}, {}
  local function add(word)
    if #names < 1024 and not seen[word] and not LUA_KEYWORDS[word] then
      seen[word] = true
      table.insert(names, word)
    end
  end
  for _, word in ipairs({ "rnn", "gru", "lstm", "dense", "model" }) do add(word) end
  for word in pairs(env) do
    if type(word) == "string" then add(word) end
  end
  for text in (source .. "\n"):gmatch("([^\n]*)\n") do
    for word in text:gsub("%-%-.*$", ""):gmatch("[%a_][%w_]*") do add(word) end
  end
  return names
end

-- The undefined names the spec read (or called), as problems.
local function undefined_problems(state, env, source, max_reported)
  local records = {}
  for _, record in pairs(state.undefined) do table.insert(records, record) end
  table.sort(records, function(a, b)
    if (a.line or 0) ~= (b.line or 0) then return (a.line or 0) < (b.line or 0) end
    return a.name < b.name
  end)
  local names
  for i, record in ipairs(records) do
    if i > max_reported then break end
    names = names or known_names(env, source)
    if i > 10 then names = {} end -- hints for the first ten: each costs up to 1024 bounded distances
    local name = hint.name(record.name)
    -- The source's own words are many: only a close one is a likely meaning of a short name.
    local near = #record.name <= 4 and 1 or 2
    local message
    if record.name == OVERFLOW then
      message = string.format("more than %d distinct undefined names are read", MAX_UNDEFINED)
    elseif record.called and not record.indexed then
      message = string.format("unknown function %s%s; the constructors are rnn, gru, lstm, dense and model", name,
        hint.did_you_mean(record.name, names, nil, near))
    else
      message = string.format("%s is not defined%s", name, hint.did_you_mean(record.name, names, nil, near))
    end
    table.insert(state.problems, { line = record.line, message = message })
  end
  if #records > max_reported then
    table.insert(state.problems, { message = string.format("%d more undefined names", #records - max_reported) })
  end
end

-- Runs the spec in the sandbox: the evaluation's state (state.model: what model{} recorded) and
-- the source's lines, or raises with every problem found.
function M.evaluate(host, path, source, limits)
  local lines = {}
  for line in (source .. "\n"):gmatch("([^\n]*)\n") do table.insert(lines, line) end
  local state = { problems = {}, objects = {}, undefined = {}, undefined_by_name = {} }
  local env = M.environment(state, function() return model_line(lines) end)
  -- A short chunk name: Lua abbreviates long file names in its messages ("...k/dir/x.lua:4:"),
  -- so positions are read against this name and reported against the real path.
  local chunk, syntax_error = load(source, "=" .. CHUNK_NAME, "t", env)
  if not chunk then
    local line, message = split_position(syntax_error)
    errors.report(path, { { line = line, message = "syntax error: " .. message } })
  end
  -- Strings index the real string library through their shared metatable: point it at the
  -- sandbox's copy while the spec runs.
  local string_meta = getmetatable("")
  string_meta.__index = env.string
  local ok, result, limit = host.sandbox(chunk, nil, limits.instructions, limits.bytes, limits.seconds)
  string_meta.__index = string
  -- The limits: the line the spec was running when it stopped (none for memory).
  local stopped_at = limit and split_position(type(result) == "string" and result or "")
  if limit == "instructions" then
    errors.report(path, { { line = stopped_at, message = string.format("the spec ran past the instruction limit (%d "
      .. "instructions): is there an endless loop?", limits.instructions) } })
  elseif limit == "memory" then
    errors.report(path, { { message = string.format("the spec used more memory than the limit (%d MiB)",
      limits.bytes >> 20) } })
  elseif limit == "time" then
    errors.report(path, { { line = stopped_at, message = string.format("the spec ran past the time limit (%g s)", limits.seconds) } })
  end
  undefined_problems(state, env, source, limits.reported)
  if not ok then
    local line, message = split_position(type(result) == "string" and result
      or string.format("error called with a %s value", type(result)))
    local undefined = message:match("^(.*) is not defined$") -- an undefined name used: reported above
    if not (undefined and state.undefined_by_name[undefined]) then
      table.insert(state.problems, { line = line, message = explain_runtime_error(message) })
    end
    errors.report(path, state.problems, limits.reported)
  end
  if state.model == nil or result ~= state.model.token then
    if #state.problems > 0 then errors.report(path, state.problems, limits.reported) end
    errors.report(path, { { line = #lines > 0 and 1 or nil,
      message = "a spec must return a model: return model { name = ..., input = ..., ... }" } })
  end
  return state, lines
end

return M
