-- tune.lua — `rnnc tune`: build and measure variants of a spec, and the code-generation knobs of
-- each, so users can pick layer sizes ahead of time.
--
--   tune.run(host, opts, toolkit) -> exit code
--     toolkit = { generate = function(spec, isa, dir) -> { compile = command } (writes the files),
--                 quote = shell quoting }
--
-- Every variant (one combination of the --vary values) gets a small search over the knobs that
-- change no result: the ISA first, then the register blocks (rb, jb) and unroll factors of the
-- products the chosen metric runs, a few moves around the generator's own choice, each candidate
-- built and timed with the driver's `bench --json`. Given data, each variant also trains from the
-- same seed for a fixed number of steps and reports its loss on held-out data. Builds and training
-- run in parallel on every CPU but one; measurements run one at a time, pinned to that one.
-- Results are cached under DIR/cache/<machine>/ by a hash of the candidate's spec text, the
-- generator (every embedded source) and the settings, so a re-run measures only what changed.
-- Like main.lua this module does I/O; the search itself is a coroutine per variant that asks for
-- candidates to be measured and reads their results.
local errors = require("rnnc.errors")
local spec_pass = require("rnnc.spec")
local plan_pass = require("rnnc.plan")
local backends = require("rnnc.backend.init")
local info = require("rnnc.info")

local M = {}

M.METRICS = { "step", "forward", "train" }
M.MARGIN = 0.02      -- a candidate replaces the best so far only when at least 2% faster (noise)
M.ROUNDS = 2         -- rounds of moves per group of products
M.MAX_RB, M.MAX_JB = 8, 8
M.VALID_PART = 5     -- without --valid-data, the last 1/5 of the timesteps validate
M.DEFAULTS = { steps = 200, bench_runs = 11, seed = "0", metric = "step" }

-- The moves tried around the best knobs so far, each on every product of a group at once.
M.MOVES = {
  { knob = "jb", name = "jb+1", f = function(v) return v + 1 end },
  { knob = "jb", name = "jb-1", f = function(v) return v - 1 end },
  { knob = "unroll", name = "unroll*2", f = function(v) return v * 2 end },
  { knob = "unroll", name = "unroll/2", f = function(v) return v // 2 end },
  { knob = "rb", name = "rb*2", f = function(v) return v * 2 end },
  { knob = "rb", name = "rb/2", f = function(v) return v // 2 end },
}

-- The products whose knobs matter to a metric: the step runs the sequential path and the step's
-- own products; forward and training run the sequential path and the products over all T*B rows
-- (the backward has no knobs).
local SEQUENTIAL = { name = "seq", layers = { "recurrent" }, heads = {} }
local GROUPS = {
  step = { { name = "seq", layers = { "recurrent", "input_step" }, heads = { "step" } } },
  forward = { SEQUENTIAL, { name = "batch", layers = { "input_seq" }, heads = { "seq" } } },
}
GROUPS.train = GROUPS.forward

-- ---- Variants ------------------------------------------------------------------------------------

-- "recurrent.2.size=32,64" -> { field = "recurrent.2.size", values = { "32", "64" } }
function M.parse_vary(text)
  local field, list = text:match("^([^=]+)=(.*)$")
  if not field or list == "" then
    errors.usage("--vary " .. text .. ": expected FIELD=V1,V2,... (e.g. --vary recurrent.1.size=32,64)")
  end
  local values, seen = {}, {}
  for value in (list .. ","):gmatch("([^,]*),") do
    if value == "" then errors.usage("--vary " .. text .. ": an empty value") end
    if seen[value] then errors.usage("--vary " .. text .. ": " .. value .. " is listed twice") end
    seen[value] = true
    table.insert(values, value)
  end
  return { field = field, values = values }
end

-- Every combination, the first --vary varying slowest: lists of { field, value }.
function M.combinations(varies)
  local out = { {} }
  for _, vary in ipairs(varies) do
    local longer = {}
    for _, partial in ipairs(out) do
      for _, value in ipairs(vary.values) do
        local assignments = { table.unpack(partial) }
        table.insert(assignments, { field = vary.field, value = value })
        table.insert(longer, assignments)
      end
    end
    out = longer
  end
  return out
end

local function label(assignments)
  local parts = {}
  for _, a in ipairs(assignments) do table.insert(parts, a.field .. "=" .. a.value) end
  return #parts > 0 and table.concat(parts, " ") or "(the spec as written)"
end

-- The validated variants, or a usage error listing every bad --vary address, every value no
-- combination accepts, then every other bad combination: all before anything is built.
local function make_variants(host, path, source, vary_texts)
  local varies, fields = {}, {}
  for _, text in ipairs(vary_texts) do
    local vary = M.parse_vary(text)
    if fields[vary.field] then errors.usage("--vary " .. vary.field .. " is given twice; list every value in one --vary") end
    fields[vary.field] = true
    table.insert(varies, vary)
  end
  local problems, said = {}, {}
  local function problem(text)
    if not said[text] then table.insert(problems, text) end
    said[text] = true
  end
  for _, vary in ipairs(varies) do
    local _, messages, of_field = spec_pass.variant(host, path, source, { { field = vary.field, value = vary.values[1] } })
    if of_field then problem(string.format("--vary %s: %s", vary.field, messages[1])) end
  end
  if #problems > 0 then errors.usage(table.concat(problems, "\nrnnc: ")) end
  local variants, failures = {}, {} -- failures: "field=value" -> { combinations, first message }
  for i, assignments in ipairs(M.combinations(varies)) do
    local spec, messages = spec_pass.variant(host, path, source, assignments)
    variants[i] = { index = i, label = label(assignments), spec = spec, candidates = {}, by_key = {},
      problem = messages and messages[1] }
    for _, a in ipairs(assignments) do
      local id = a.field .. "=" .. a.value
      failures[id] = failures[id] or { count = 0 }
      failures[id].count = failures[id].count + (spec and 0 or 1)
      failures[id].message = failures[id].message or (messages and messages[1])
    end
  end
  -- A value that fails in every combination is itself wrong; other failures are combinations.
  for _, vary in ipairs(varies) do
    for _, value in ipairs(vary.values) do
      local f = failures[vary.field .. "=" .. value]
      if f.count == #variants // #vary.values then problem(string.format("--vary %s=%s: %s", vary.field, value, f.message)) end
    end
  end
  local values_ok = #problems == 0
  for _, v in ipairs(variants) do
    if v.problem and values_ok then problem(string.format("--vary: the variant %s: %s", v.label, v.problem)) end
  end
  if #problems > 0 then errors.usage(table.concat(problems, "\nrnnc: ")) end
  return variants
end

-- ---- Data ----------------------------------------------------------------------------------------

local function read_npy(host, path)
  local data, why = host.read_file(path)
  if not data then errors.raise("rnnc: " .. why) end
  local function bad(what) errors.raise(string.format("%s: not a usable .npy file: %s", path, what)) end
  if data:sub(1, 6) ~= "\x93NUMPY" or #data < 12 then bad("no \\x93NUMPY magic") end
  local size_format, start = "<I2", 11
  if data:byte(7) >= 2 then size_format, start = "<I4", 13 end
  local header = data:sub(start, start + string.unpack(size_format, data, 9) - 1)
  local descr = header:match("'descr'%s*:%s*'([^']*)'")
  local shape_text = header:match("'shape'%s*:%s*(%b())")
  if not descr or not shape_text then bad("no descr or shape in the header") end
  if header:match("'fortran_order'%s*:%s*True") then bad("Fortran order; save it in C order") end
  local shape = {}
  for d in shape_text:gmatch("%d+") do table.insert(shape, tonumber(d)) end
  return { path = path, data = data, descr = descr, shape = shape, body = start + #header,
    itemsize = tonumber(descr:match("%d+$")) or bad("descr " .. descr) }
end

-- The rows [first, first + count) of the first axis, as the bytes of a .npy file.
local function npy_rows(a, first, count)
  local row = a.itemsize
  for i = 2, #a.shape do row = row * a.shape[i] end
  local dims = { tostring(count) }
  for i = 2, #a.shape do table.insert(dims, tostring(a.shape[i])) end
  local header = string.format("{'descr': '%s', 'fortran_order': False, 'shape': (%s%s), }", a.descr,
    table.concat(dims, ", "), #dims == 1 and "," or "")
  header = header .. string.rep(" ", 63 - (10 + #header) % 64) .. "\n"
  return "\x93NUMPY\x01\x00" .. string.pack("<I2", #header) .. header
    .. a.data:sub(a.body + first * row, a.body + (first + count) * row - 1)
end

local function shape_text(shape)
  local parts = {}
  for i, d in ipairs(shape) do parts[i] = tostring(d) end
  return "[" .. table.concat(parts, ", ") .. "]"
end

local function mkdir(host, path)
  local ok, why = host.mkdir_p(path)
  if not ok then errors.raise("rnnc: " .. why) end
end

-- The data, checked against every variant: { x, y, T, hash, valid_x, valid_y (given), held }.
-- Without --valid-data the last 1/VALID_PART of the stream is held out: per seq_len among the
-- variants, held[seq_len] = { x, y, steps } is the training part, the timesteps before it cut
-- to whole chunks of seq_len, so that the whole stream and its training part alone go through
-- the same chunks when the driver evaluates them.
local function prepare_data(host, opts, variants, dir)
  local x, y = read_npy(host, opts.data), read_npy(host, opts.target)
  for _, v in ipairs(variants) do
    local s = v.spec
    if #x.shape ~= 3 or x.shape[2] ~= s.batch or x.shape[3] ~= s.input then
      errors.raise(string.format("%s: shape %s does not fit the variant %s: expected [T, %d, %d] (time-major [T][B][I])",
        opts.data, shape_text(x.shape), v.label, s.batch, s.input))
    end
    if s.output_at == "all" and y.shape[1] ~= x.shape[1] then
      errors.raise(string.format("%s: %d timesteps, but %s has %d", opts.target, y.shape[1], opts.data, x.shape[1]))
    end
    if s.output_at == "last" and not opts.valid_data then
      errors.raise(string.format("the variant %s has output_at = \"last\": its targets have no time axis to hold out "
        .. "a validation part along; pass --valid-data and --valid-target", v.label))
    end
  end
  local data = { x = opts.data, y = opts.target, valid_x = opts.valid_data, valid_y = opts.valid_target,
    T = x.shape[1], held = {} }
  local texts = { x.data, y.data }
  if opts.valid_data then
    for _, path in ipairs({ opts.valid_data, opts.valid_target }) do
      local text, problem = host.read_file(path)
      if not text then errors.raise("rnnc: " .. problem) end
      table.insert(texts, text)
    end
  else
    mkdir(host, dir .. "/data")
    for _, v in ipairs(variants) do
      local L = v.spec.seq_len
      local steps = (data.T - math.max(1, data.T // M.VALID_PART)) // L * L
      if steps < 1 then
        errors.raise(string.format("%s: %d timesteps are too few to train on whole chunks of seq_len %d (the variant %s) "
          .. "and hold out the last 1/%d; pass --valid-data and --valid-target", opts.data, data.T, L, v.label, M.VALID_PART))
      end
      if not data.held[L] then
        data.held[L] = { steps = steps, x = string.format("%s/data/train%d_x.npy", dir, L),
          y = string.format("%s/data/train%d_y.npy", dir, L) }
        for _, file in ipairs({ { data.held[L].x, x }, { data.held[L].y, y } }) do
          local ok, why = host.write_atomic(file[1], npy_rows(file[2], 0, steps))
          if not ok then errors.raise("rnnc: " .. why) end
        end
      end
    end
  end
  data.hash = host.hash(table.unpack(texts))
  return data
end

-- ---- The cache: one small Lua file per result ---------------------------------------------------

local function cache_get(host, dir, key)
  local text = host.read_file(dir .. "/" .. key .. ".lua")
  local chunk = text and load(text, "=cache", "t", {})
  local ok, value = pcall(chunk or error)
  return ok and type(value) == "table" and value or nil
end

local function cache_put(host, dir, key, values)
  local keys = {}
  for k in pairs(values) do table.insert(keys, k) end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = values[k]
    table.insert(parts, string.format("%s = %s", k, type(v) == "number" and string.format("%.17g", v) or string.format("%q", v)))
  end
  host.write_atomic(dir .. "/" .. key .. ".lua", "return { " .. table.concat(parts, ", ") .. " }\n")
end

-- CPU model and flags: measurements hold for this kind of machine only.
local function machine(host)
  local text = host.read_file("/proc/cpuinfo") or ""
  local model = text:match("model name%s*:%s*([^\n]*)") or text:match("CPU part%s*:%s*([^\n]*)") or "unknown CPU"
  local flags = text:match("\nflags%s*:%s*([^\n]*)") or text:match("\nFeatures%s*:%s*([^\n]*)") or ""
  local caches = host.cache_sizes()
  return model, host.hash(model, flags, tostring(caches.l1d), tostring(caches.l2), tostring(caches.l3))
end

-- ---- Knobs ---------------------------------------------------------------------------------------

local function copy(t)
  if type(t) ~= "table" then return t end
  local c = {}
  for k, v in pairs(t) do c[k] = copy(v) end
  return c
end

-- The knobs the plan chose for each product, and the shape of each product the moves respect:
-- { knobs = { layers = {...}, heads = {...} }, shapes = same layout of { K, G, NB, rows, regs } }.
local function plan_defaults(host, spec, isa)
  local backend = backends.load(host, isa)
  local plan = plan_pass.build(spec, host.cache_sizes(), backend)
  local out = { plan = plan, knobs = { layers = {}, heads = {} }, shapes = { layers = {}, heads = {} } }
  local big_rows = spec.seq_len * spec.batch
  local function add(list, i, name, k, NB, rows)
    out.knobs[list][i] = out.knobs[list][i] or {}
    out.shapes[list][i] = out.shapes[list][i] or {}
    out.knobs[list][i][name] = { rb = k.rb, jb = k.jb, unroll = k.unroll }
    out.shapes[list][i][name] = { K = k.K, G = k.G, NB = NB, rows = rows, regs = backend.registers }
  end
  for i, L in ipairs(plan.layers) do
    add("layers", i, "input_seq", L.input_seq, L.NB, big_rows)
    add("layers", i, "input_step", L.input_step, L.NB, spec.batch)
    add("layers", i, "recurrent", L.recurrent, L.NB, spec.batch)
  end
  for j, D in ipairs(plan.heads) do
    add("heads", j, "seq", D.seq, D.NB, spec.output_at == "last" and spec.batch or big_rows)
    add("heads", j, "step", D.step, D.NB, spec.batch)
  end
  return out
end

-- The knobs after a move on every product of the group, each kept within its shape and the
-- registers (as forward_blocking does); nil when no product changes.
local function apply_move(knobs, shapes, group, move)
  local new, changed = copy(knobs), false
  for _, list in ipairs({ "layers", "heads" }) do
    for i, entry in ipairs(new[list]) do
      for _, product in ipairs(group[list]) do
        local k, s = entry[product], shapes[list][i][product]
        local limit = ({ rb = math.min(s.rows, M.MAX_RB), jb = math.min(s.NB, M.MAX_JB), unroll = s.K })[move.knob]
        local value = math.max(1, math.min(limit, move.f(k[move.knob])))
        local rb = move.knob == "rb" and value or k.rb
        local jb = move.knob == "jb" and value or k.jb
        if value ~= k[move.knob] and rb * jb * s.G + rb + 4 <= s.regs then
          k[move.knob] = value
          changed = true
        end
      end
    end
  end
  return changed and new or nil
end

-- ---- Reporting -----------------------------------------------------------------------------------

-- Marks the Pareto front: lowest latency against lowest loss (with data) or most parameters.
function M.pareto(rows, with_loss)
  local function y(r) return with_loss and r.loss or -r.params end
  for _, r in ipairs(rows) do
    r.pareto = r.latency ~= nil and (not with_loss or r.loss ~= nil)
    for _, o in ipairs(rows) do
      if r.pareto and o ~= r and o.latency and (not with_loss or o.loss)
        and o.latency <= r.latency and y(o) <= y(r) and (o.latency < r.latency or y(o) < y(r)) then
        r.pareto = false
      end
    end
  end
end

-- The variant to write: within the budget, the lowest loss (with data) or the most parameters
-- (the largest model that fits); ties go to the faster.
function M.choose(rows, with_loss)
  local best
  for _, r in ipairs(rows) do
    if r.latency and r.within ~= false and (not with_loss or r.loss) then
      local key = with_loss and r.loss or -r.params
      local best_key = best and (with_loss and best.loss or -best.params)
      if not best or key < best_key or (key == best_key and r.latency < best.latency) then best = r end
    end
  end
  return best
end

local function write_chart(host, dir, rows, opts, with_loss)
  if host.system("command -v gnuplot >/dev/null 2>&1") ~= 0 then
    return "chart: skipped (gnuplot is not installed; apt-get install gnuplot-nox)"
  end
  local points, front, fastest, slowest = {}, {}, math.huge, 0
  for _, r in ipairs(rows) do
    local y = with_loss and r.loss or r.params
    if r.latency and y then
      fastest, slowest = math.min(fastest, r.latency), math.max(slowest, r.latency)
      table.insert(points, string.format("%.6g,%.9g,#%d", r.latency, y, r.index))
      if r.pareto then table.insert(front, { r.latency, y }) end
    end
  end
  table.sort(front, function(a, b) return a[1] < b[1] end)
  local front_lines = {}
  for _, p in ipairs(front) do table.insert(front_lines, string.format("%.6g,%.9g", p[1], p[2])) end
  host.write_atomic(dir .. "/points.csv", table.concat(points, "\n") .. "\n")
  host.write_atomic(dir .. "/front.csv", table.concat(front_lines, "\n") .. "\n")
  local script = {
    "# written by rnnc tune: the variants' latency against " .. (with_loss and "validation loss" or "parameters"),
    "set terminal pngcairo size 900,560 font \",10\"",
    string.format("set output '%s/tune.png'", dir),
    "set datafile separator \",\"",
    string.format("set title \"rnnc tune: %s_us against %s (Pareto front joined)\"", opts.metric,
      with_loss and "validation loss" or "parameters"),
    string.format("set xlabel \"%s latency (us, median)\"", opts.metric),
    string.format("set ylabel \"%s\"", with_loss and "validation loss" or "parameters"),
    "set termoption noenhanced", "set logscale y", "set grid", "set key top right", "set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05",
  }
  if slowest > 10 * fastest then table.insert(script, "set logscale x") end -- latencies over more than a decade
  if opts.budget_us then
    table.insert(script, string.format("set arrow from %.6g, graph 0 to %.6g, graph 1 nohead dt 2 lw 2 lc rgb \"#d62728\"",
      opts.budget_us, opts.budget_us))
    table.insert(script, string.format("set label \"budget %.6g us\" at %.6g, graph 0.95 offset 0.5,0 tc rgb \"#d62728\"",
      opts.budget_us, opts.budget_us))
  end
  table.insert(script, string.format("plot '%s/points.csv' using 1:2 with points pt 7 ps 1.2 lc rgb \"#1f77b4\" title \"variants\", \\", dir))
  table.insert(script, "     '' using 1:2:3 with labels offset 0,1 notitle, \\")
  table.insert(script, string.format("     '%s/front.csv' using 1:2 with linespoints pt 6 ps 2.2 lw 2 lc rgb \"#2ca02c\" title \"Pareto front\"", dir))
  host.write_atomic(dir .. "/tune.gp", table.concat(script, "\n") .. "\n")
  if host.system(string.format("gnuplot '%s/tune.gp' 2>'%s/gnuplot.log'", dir, dir)) ~= 0 then
    return "chart: gnuplot failed, see " .. dir .. "/gnuplot.log"
  end
  return "chart: " .. dir .. "/tune.png"
end

local function csv_field(v)
  if v == nil then return "" end
  if type(v) == "number" then return string.format("%.6g", v) end
  if type(v) == "boolean" then return v and "yes" or "no" end
  v = tostring(v)
  return v:find("[,\"]") and ('"' .. v:gsub('"', '""') .. '"') or v
end

local CSV_COLUMNS = { "index", "variant", "params", "weight_bytes", "cache", "flops_per_step", "isa", "knobs",
  "step_us", "forward_us", "train_us", "default_step_us", "default_forward_us", "default_train_us", "gain",
  "loss", "train_loss", "pareto", "within_budget", "chosen", "build_dir" }

-- ---- The run -------------------------------------------------------------------------------------
-- One table, `t`, holds a run's settings and state: the variants, the work queues, the counts.

local function check_options(host, opts)
  opts.metric = opts.metric or M.DEFAULTS.metric
  local known = false
  for _, m in ipairs(M.METRICS) do known = known or m == opts.metric end
  if not known then errors.usage("--metric: unknown metric '" .. opts.metric .. "'; expected step, forward or train") end
  if (opts.data == nil) ~= (opts.target == nil) then errors.usage("--data and --target go together") end
  if (opts.valid_data == nil) ~= (opts.valid_target == nil) then errors.usage("--valid-data and --valid-target go together") end
  if opts.valid_data and not opts.data then errors.usage("--valid-data needs --data and --target") end
  for _, flag in ipairs({ "steps", "lr", "seed" }) do
    if opts[flag] and not opts.data then errors.usage("--" .. flag .. " sets the training of --data, which is not given") end
  end
  opts.steps, opts.seed = opts.steps or M.DEFAULTS.steps, opts.seed or M.DEFAULTS.seed
  opts.bench_runs, opts.threads = opts.bench_runs or M.DEFAULTS.bench_runs, opts.threads or 1
  if opts.isa then backends.load(host, opts.isa) end -- an unknown ISA is a usage error, before anything runs
  if opts.isa == "multi" then errors.usage("--isa multi: tune measures one ISA at a time; name one, or leave --isa out to try each") end
end

local function say(t, v, fmt, ...)
  io.write(string.format("[%d/%d] %s: " .. fmt .. "\n", v.index, #t.variants, v.label, ...))
  io.flush()
end

local function times(r)
  return string.format("step %.4g us, forward %.4g us, train %.4g us", r.step_us, r.forward_us, r.train_us)
end

local function spawn(t, command, log, cpus, job)
  local pid, problem = t.host.spawn(command, log, cpus)
  if not pid then errors.raise("rnnc: " .. problem) end
  t.running[pid] = job
end

-- A candidate: the variant's spec with its tuning written out, parsed from that text under the
-- path of the tuned spec, exactly as `rnnc generate` will read the written file.
local function candidate(t, v, isa, knobs, moves)
  local spec = copy(v.spec)
  spec.tuning = { isa = isa, layers = knobs.layers, heads = knobs.heads }
  local text = spec_pass.source(spec, string.format("%s: written by rnnc tune from %s\nvariant: %s\n"
    .. "tuning: the fastest knobs measured on %s; `rnnc generate` reads them back", t.tuned_path:match("[^/]*$"),
    t.opts.spec, v.label, t.cpu_model))
  local key = t.host.hash("measure", t.generator_id, text, tostring(t.opts.bench_runs), tostring(t.opts.threads))
  if v.by_key[key] then return v.by_key[key] end
  local c = { variant = v, isa = isa, knobs = knobs, moves = moves, text = text, key = key,
    spec = spec_pass.parse(t.host, t.tuned_path, text), dir = t.dir .. "/build/" .. key,
    desc = isa .. (moves ~= "" and (" " .. moves) or " defaults"), result = cache_get(t.host, t.cache_dir, key) }
  v.by_key[key] = c
  table.insert(v.candidates, c)
  if c.result then
    c.state = "done"
    t.counts.cached = t.counts.cached + 1
    say(t, v, "cached   %-28s %s", c.desc, times(c.result))
  else
    c.state = "queued"
    table.insert(t.build_queue, { candidate = c, measure = true })
  end
  return c
end

-- The fastest of best and list, where only a gain beyond the noise margin displaces best.
local function better(t, best, list)
  local key, fastest = t.metric_key, best
  for _, c in ipairs(list) do
    if c.result and (not fastest or c.result[key] < fastest.result[key]) then fastest = c end
  end
  if best and fastest ~= best and fastest.result[key] > best.result[key] * (1 - M.MARGIN) then return best end
  return fastest
end

-- Asks for the candidates to be measured: the search waits (yields) until all are done or failed.
local function measure(list)
  if #list > 0 then coroutine.yield(list) end
  return list
end

-- The training of a variant needs its baseline's driver; the loss comes from the cache if it can.
local function plan_training(t, v)
  v.loss_key = t.host.hash("loss", t.generator_id, spec_pass.source(v.spec, ""), t.data.hash, tostring(t.opts.steps),
    tostring(t.opts.lr), t.opts.seed)
  local cached = cache_get(t.host, t.cache_dir, v.loss_key)
  if cached then
    v.loss, v.train_loss = cached.loss, cached.train_loss
    say(t, v, "cached   loss %.6g (validation)", v.loss)
  elseif v.baseline.state == "done" then -- measured in an earlier run: build it again to train it
    table.insert(t.build_queue, 1, { candidate = v.baseline, measure = false })
  end
end

-- The search of one variant (a coroutine): the generator's defaults on the best ISA, then the
-- other ISAs' defaults, then per group of products up to M.ROUNDS rounds of moves from the best
-- so far. v.choice follows the best.
local function search(t, v)
  local defaults = {}
  local function defaults_of(isa)
    defaults[isa] = defaults[isa] or plan_defaults(t.host, v.spec, isa)
    return defaults[isa]
  end
  v.plan = defaults_of(t.isas[1]).plan
  v.baseline = candidate(t, v, t.isas[1], defaults_of(t.isas[1]).knobs, "")
  if t.data then plan_training(t, v) end
  v.choice = better(t, nil, measure({ v.baseline }))
  if not v.choice or t.opts.no_search then return end
  local others = {}
  for i = 2, #t.isas do table.insert(others, candidate(t, v, t.isas[i], defaults_of(t.isas[i]).knobs, "")) end
  v.choice = better(t, v.choice, measure(others))
  for _, group in ipairs(GROUPS[t.opts.metric]) do
    for _ = 1, M.ROUNDS do
      local best, list = v.choice, {}
      for _, move in ipairs(M.MOVES) do
        local knobs = apply_move(best.knobs, defaults_of(best.isa).shapes, group, move)
        if knobs then
          local moves = (best.moves ~= "" and (best.moves .. " ") or "") .. group.name .. ":" .. move.name
          table.insert(list, candidate(t, v, best.isa, knobs, moves))
        end
      end
      v.choice = better(t, best, measure(list))
      if v.choice == best then break end
    end
  end
end

-- Runs a variant's search on until it waits for a candidate still in work, or is done.
local function advance(t, v)
  while coroutine.status(v.co) ~= "dead" do
    for _, c in ipairs(v.waiting or {}) do
      if c.state ~= "done" and c.state ~= "failed" then return end
    end
    local resumed, list = coroutine.resume(v.co, t, v)
    if not resumed then
      if errors.is_user_error(list) then error(list, 0) end
      error(debug.traceback(v.co, tostring(list)), 0)
    end
    v.waiting = list
  end
  v.waiting = nil
end

local function start_build(t, item)
  local c = item.candidate
  if item.measure then c.state = "building" end
  local result = t.toolkit.generate(c.spec, c.isa, c.dir)
  spawn(t, result.compile, c.dir .. "/build.log", t.build_cpus, { kind = "build", item = item })
  t.running_builds = t.running_builds + 1
end

local function start_measure(t, c)
  c.state = "measuring"
  local command = string.format("%s bench --json --steps %d --threads %d", t.toolkit.quote(c.dir .. "/" .. c.spec.name),
    t.opts.bench_runs, t.opts.threads)
  spawn(t, command, c.dir .. "/bench.json", t.measure_cpus, { kind = "measure", candidate = c })
  t.measuring = true
end

-- Trains from the seed's init for --steps on the training data (the driver then prints the loss
-- over all of it, "final loss"), then evaluates: one SGD step at learning rate 0 leaves the weights
-- as they are, and train prints the loss over all of its data, from the zero state. That data is
-- the validation files, or the whole stream, whose loss summed less the training part's is the
-- held-out steps', the state carried into them from the training part.
local function start_training(t, v)
  local dir, q, opts, data = t.dir .. "/train/" .. v.loss_key, t.toolkit.quote, t.opts, t.data
  mkdir(t.host, dir)
  local held = data.held[v.spec.seq_len]
  local driver = q(v.baseline.dir .. "/" .. v.spec.name)
  local init, trained = q(dir .. "/init.safetensors"), q(dir .. "/trained.safetensors")
  local command = string.format("%s init --seed %s -o %s && %s train -w %s -i %s -t %s --steps %d%s -o %s && "
    .. "%s train -w %s -i %s -t %s --steps 1 --optim sgd --lr 0 -o %s",
    driver, opts.seed, init, driver, init, q(held and held.x or data.x), q(held and held.y or data.y), opts.steps,
    opts.lr and string.format(" --lr %.17g", opts.lr) or "", trained,
    driver, trained, q(held and data.x or data.valid_x), q(held and data.y or data.valid_y), q(dir .. "/valid.safetensors"))
  spawn(t, command, dir .. "/train.log", t.build_cpus, { kind = "train", variant = v, log = dir .. "/train.log" })
  t.running_builds = t.running_builds + 1
end

local function failed(t, v, c, what, log)
  if c then c.state = "failed" end
  t.counts.failed = t.counts.failed + 1
  say(t, v, "%s failed (%s):\n%s", what, log, (t.host.read_file(log) or ""):sub(-800))
end

local function finished(t, job, status)
  if job.kind == "build" then
    t.running_builds = t.running_builds - 1
    local c = job.item.candidate
    if status ~= 0 then return failed(t, c.variant, c, "building " .. c.desc, c.dir .. "/build.log") end
    t.counts.built = t.counts.built + 1
    if job.item.measure then
      c.state = "built"
      table.insert(t.measure_queue, c)
    end
    local v = c.variant
    if c == v.baseline and t.data and not v.loss then table.insert(t.train_queue, v) end
  elseif job.kind == "measure" then
    t.measuring = false
    local c = job.candidate
    local text = t.host.read_file(c.dir .. "/bench.json") or ""
    local r = { isa = text:match('"isa": "(%w+)"') }
    for _, name in ipairs(M.METRICS) do r[name .. "_us"] = tonumber(text:match('"' .. name .. '_us": ([%d.eE+-]+)')) end
    if status ~= 0 or not (r.step_us and r.forward_us and r.train_us) then
      return failed(t, c.variant, c, "measuring " .. c.desc, c.dir .. "/bench.json")
    end
    c.result, c.state = r, "done"
    t.counts.measured = t.counts.measured + 1
    cache_put(t.host, t.cache_dir, c.key, r)
    say(t, c.variant, "measured %-28s %s", c.desc, times(r))
  else
    t.running_builds = t.running_builds - 1
    local v = job.variant
    local losses = {}
    for value in (t.host.read_file(job.log) or ""):gmatch("final loss (%S+)") do table.insert(losses, tonumber(value)) end
    if status ~= 0 or #losses < 2 then return failed(t, v, nil, "training", job.log) end
    v.train_loss, v.loss = losses[1], losses[2]
    local held, T = t.data.held[v.spec.seq_len], t.data.T
    if held then v.loss = (losses[2] * T - losses[1] * held.steps) / (T - held.steps) end
    cache_put(t.host, t.cache_dir, v.loss_key, { loss = v.loss, train_loss = v.train_loss })
    say(t, v, "trained  %d steps: loss %.6g on the training data, %.6g on the validation data", t.opts.steps,
      v.train_loss, v.loss)
  end
end

-- The loop: advance every search, start what the CPUs have room for, wait for a child. Returns
-- true when interrupted (after stopping the children).
local function schedule(t)
  local host = t.host
  host.catch_interrupts()
  for _, v in ipairs(t.variants) do v.co = coroutine.create(search) end
  while true do
    for _, v in ipairs(t.variants) do advance(t, v) end
    if host.interrupted() then break end
    while t.running_builds < t.jobs and not (t.exclusive and t.measuring) and (#t.build_queue > 0 or #t.train_queue > 0) do
      if #t.build_queue > 0 then start_build(t, table.remove(t.build_queue, 1)) else start_training(t, table.remove(t.train_queue, 1)) end
    end
    if not t.measuring and #t.measure_queue > 0 and not (t.exclusive and t.running_builds > 0) then
      start_measure(t, table.remove(t.measure_queue, 1))
    end
    if next(t.running) == nil then return false end
    local pid, status = host.wait()
    if not pid then break end
    local job = t.running[pid]
    t.running[pid] = nil
    if job then finished(t, job, status) end
  end
  io.write("rnnc tune: interrupted; stopping the builds and measurements in progress\n")
  for pid in pairs(t.running) do host.kill(pid) end
  while next(t.running) do
    local pid = host.wait(true)
    if not pid then break end
    t.running[pid] = nil
  end
  return true
end

-- One row per variant: its sizes, its best candidate's figures, the defaults', the loss.
local function result_rows(t, interrupted)
  local rows, key = {}, t.metric_key
  for _, v in ipairs(t.variants) do
    -- The search's choice (defaults kept within the noise margin); if cut short, the fastest so far.
    local best = v.choice
    for _, c in ipairs(v.candidates) do
      if coroutine.status(v.co) ~= "dead" and c.result and (not best or c.result[key] < best.result[key]) then best = c end
    end
    local plan = v.plan or { layers = {}, heads = {}, num_params = 0, weight_bytes = 0, cache = "?" }
    local flops = 0
    for _, L in ipairs(plan.layers) do flops = flops + L.flops_sequential + L.flops_batched end
    for _, D in ipairs(plan.heads) do flops = flops + D.flops end
    local r = { index = v.index, variant = v.label, best = best, loss = v.loss, train_loss = v.train_loss,
      params = plan.num_params, weight_bytes = plan.weight_bytes, cache = plan.cache, flops_per_step = flops,
      knobs = interrupted and "(not measured)" or "(failed)" }
    if best then
      local base = v.baseline.result
      r.isa, r.knobs, r.latency = best.isa, best.desc, best.result[key]
      r.step_us, r.forward_us, r.train_us = best.result.step_us, best.result.forward_us, best.result.train_us
      if base then
        r.default_step_us, r.default_forward_us, r.default_train_us = base.step_us, base.forward_us, base.train_us
        r.gain = 1 - r.latency / base[key]
      end
      r.build_dir = best.dir
      if t.opts.budget_us then r.within = r.latency <= t.opts.budget_us end
    end
    table.insert(rows, r)
  end
  return rows
end

local function print_table(t, rows)
  local width, knobs_width = 7, 13
  for _, r in ipairs(rows) do
    width = math.max(width, #r.variant)
    knobs_width = math.max(knobs_width, #r.knobs)
  end
  local format = "%3s  %-" .. width .. "s %8s %9s %5s %8s  %-" .. knobs_width .. "s %9s %9s %9s %7s %10s  %s\n"
  io.write("\n" .. string.format(format, "#", "variant", "params", "weights", "cache", "FLOP/t", "isa and knobs",
    "step_us", "fwd_us", "train_us", "gain", "loss", "marks"))
  local function us(x) return x and string.format("%.4g", x) or "-" end
  for _, r in ipairs(rows) do
    local marks = {}
    if r.pareto then table.insert(marks, "pareto") end
    if r.within ~= nil then table.insert(marks, r.within and "in-budget" or "over-budget") end
    if r.chosen then table.insert(marks, "CHOSEN") end
    io.write(string.format(format, r.index, r.variant, r.params, info.bytes_text(r.weight_bytes), r.cache,
      info.count_text(r.flops_per_step), r.knobs, us(r.step_us), us(r.forward_us), us(r.train_us),
      r.gain and string.format("%.1f%%", 100 * r.gain) or "-", r.loss and string.format("%.4g", r.loss) or "-",
      table.concat(marks, " ")))
  end
  local opts = t.opts
  io.write(string.format("\nlatency: %s_us, the median of %d runs of the driver's bench (%d thread%s) on CPU %s; gain: "
    .. "over the generator's defaults on %s;\npareto: no other variant is both faster and %s", opts.metric,
    opts.bench_runs, opts.threads, opts.threads == 1 and "" or "s", table.concat(t.measure_cpus, ","), t.isas[1],
    t.data and "lower in validation loss" or "larger"))
  if t.data then
    io.write(string.format(";\nloss: %s after %d steps of training from seed %s, on %s", t.base.loss, opts.steps,
      opts.seed, opts.valid_data or string.format("the last 1/%d of the stream (held out; the state carried in from "
        .. "the training part)", M.VALID_PART)))
  end
  io.write(string.format(".\n%d measured, %d from the cache, %d built, %d failed\n", t.counts.measured,
    t.counts.cached, t.counts.built, t.counts.failed))
end

local function write_csv(host, dir, rows)
  local lines = { table.concat(CSV_COLUMNS, ",") }
  for _, r in ipairs(rows) do
    local fields = {}
    for i, column in ipairs(CSV_COLUMNS) do
      local value = r[column]
      if column == "within_budget" then value = r.within end
      if column == "chosen" then value = r.chosen or false end
      fields[i] = csv_field(value)
    end
    table.insert(lines, table.concat(fields, ","))
  end
  host.write_atomic(dir .. "/results.csv", table.concat(lines, "\n") .. "\n")
  return "results: " .. dir .. "/results.csv"
end

-- Removes the builds of every candidate but each variant's choice: their numbers are cached, and
-- the choice's build is where its tuned spec regenerates the code it measured.
local function prune(t)
  local doomed = {}
  for _, v in ipairs(t.variants) do
    for _, c in ipairs(v.candidates) do
      if c ~= v.choice and t.host.file_exists(c.dir) then table.insert(doomed, t.toolkit.quote(c.dir)) end
    end
  end
  if #doomed > 0 then t.host.system("rm -rf " .. table.concat(doomed, " ")) end
end

function M.run(host, opts, toolkit)
  local source = spec_pass.read(host, opts.spec)
  local base = spec_pass.parse(host, opts.spec, source)
  check_options(host, opts)
  local t = { host = host, opts = opts, toolkit = toolkit, base = base, metric_key = opts.metric .. "_us",
    variants = make_variants(host, opts.spec, source, opts.vary), dir = opts.dir or ("out/tune/" .. base.name),
    build_queue = {}, measure_queue = {}, train_queue = {}, running = {}, running_builds = 0, measuring = false,
    counts = { measured = 0, cached = 0, built = 0, failed = 0 }, generator_id = host.generator_hash() }
  t.tuned_path = (opts.spec:match("^(.*)%.tuned%.lua$") or opts.spec:match("^(.*)%.lua$") or opts.spec) .. ".tuned.lua"
  mkdir(host, t.dir)
  t.data = opts.data and prepare_data(host, opts, t.variants, t.dir)
  local machine_id
  t.cpu_model, machine_id = machine(host)
  t.cache_dir = t.dir .. "/cache/" .. machine_id
  mkdir(host, t.cache_dir)
  -- ISAs to try, best first (--isa fixes one); measurements on the last --threads CPUs, builds
  -- and training on the others (with none left, never both at once).
  t.isas = opts.isa and { opts.isa == "native" and backends.native(host) or opts.isa } or backends.runnable(host)
  if #t.isas == 0 then t.isas = { "scalar" } end
  local cpus = host.cpus()
  if #cpus == 0 then cpus = { 0 } end
  local rest = math.max(0, #cpus - opts.threads)
  t.measure_cpus, t.exclusive = { table.unpack(cpus, rest + 1) }, rest == 0
  t.build_cpus = rest > 0 and { table.unpack(cpus, 1, rest) } or cpus
  t.jobs = opts.jobs or #t.build_cpus
  io.write(string.format("rnnc tune: %d variant%s of %s, knobs chosen by %s_us%s\n", #t.variants,
    #t.variants == 1 and "" or "s", opts.spec, opts.metric, opts.no_search and " (no search: defaults only)" or ""))
  io.write(string.format("machine: %s; builds on CPU %s (%d at a time), measurements on CPU %s%s; results in %s\n",
    t.cpu_model, table.concat(t.build_cpus, ","), t.jobs, table.concat(t.measure_cpus, ","),
    t.exclusive and " (no CPU to spare: never both at once)" or "", t.dir))
  io.flush()

  local interrupted = schedule(t)
  local rows = result_rows(t, interrupted)
  M.pareto(rows, t.data ~= nil)
  local chosen = not interrupted and M.choose(rows, t.data ~= nil)
  if chosen then chosen.chosen = true end
  print_table(t, rows)
  io.write(write_csv(host, t.dir, rows) .. "\n")
  io.write(write_chart(host, t.dir, rows, opts, t.data ~= nil) .. "\n")
  if interrupted then
    io.write("interrupted: no spec written; what was measured is cached, a re-run goes on from there\n")
    return 130
  end
  prune(t)
  if chosen then
    local ok, problem = host.write_atomic(t.tuned_path, chosen.best.text)
    if not ok then errors.raise("rnnc: " .. problem) end
    io.write(string.format("wrote %s: variant #%d (%s), %s (built in %s)\n", t.tuned_path, chosen.index, chosen.variant,
      chosen.knobs, chosen.build_dir))
  else
    io.write(opts.budget_us and string.format("no variant meets the budget of %.6g us: no spec written\n", opts.budget_us)
      or "no variant was measured: no spec written\n")
  end
  for _, r in ipairs(rows) do
    if not r.best then return 1 end
  end
  return 0
end

return M
