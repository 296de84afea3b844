-- main.lua — the driver of the generator: command line, file I/O, and the passes in order
--   spec (parse, validate) -> plan -> schedule -> emit
-- This is the only module that touches files or runs commands; the passes are pure functions.
require("rnnc.strict").enable(_G)

local errors = require("rnnc.errors")
local spec_pass = require("rnnc.spec")
local plan_pass = require("rnnc.plan")
local schedule_pass = require("rnnc.schedule")
local emit = require("rnnc.emit")
local backends = require("rnnc.backend.init")
local dump = require("rnnc.dump")
local info = require("rnnc.info")
local tune = require("rnnc.tune")

local USAGE = [[
usage: rnnc COMMAND SPEC [options]

Compiles a recurrent network spec (a Lua file) into specialised C.

commands:
  generate SPEC [-o DIR] [--isa ISA]   write DIR/<name>.h, <name>.c, <name>_main.c (the driver)
                                       and <name>.py (the PyTorch module); default DIR: out/<name>
  build    SPEC [-o DIR] [--isa ISA]   generate, then compile the driver program DIR/<name>
  info     SPEC [--isa ISA]            sizes, parameters, FLOPs, critical path, cache residency
  check    SPEC                        validate only
  tune     SPEC [--vary FIELD=V1,V2,...]... [--budget-us X] [--data X.npy --target Y.npy]
                                       build and measure variants of the spec and the fastest
                                       code-generation knobs of each; write SPEC's .tuned.lua

options:
  -o DIR          output directory
  --isa ISA       scalar, sse4, avx2, avx512, neon or native (default: the spec's tuning.isa,
                  else native, the best backend this machine supports)
  --name NAME     generate under another C prefix than the spec's name (e.g. two builds of one
                  spec in one program)
  --dump=PASS     print the result of a pass (spec, plan, schedule, emit) and stop
  -h, --help      this help;  --version  rnnc's version

tune options (default DIR: out/tune/<name>):
  --vary FIELD=V1,V2,...   values of one field, repeatable: every combination is a variant.
                  FIELD: input, seq_len, batch, loss, output_at, precision, math, parallel,
                  recurrent.N.size, recurrent.N.cell, recurrent.N.activation, head.N.size,
                  head.N.activation (N from 1, in the spec's order)
  --metric M      step, forward or train: the latency the knobs minimise (default step)
  --budget-us X   flag the variants whose metric is within X microseconds
  --data X.npy --target Y.npy   train every variant on these, from the same seed, and
                  measure the loss on held-out data: --valid-data XV.npy --valid-target YV.npy,
                  else the last fifth of the stream X, Y (the state carried into it)
  --steps N       optimizer steps of that training (default 200); --lr R (default 1e-3);
                  --seed N (default 0)
  --bench-runs N  timed runs per measurement (default 11); --threads N the team the
                  measurements run on (default 1; the *_mt entry points); --jobs N parallel builds
  --no-search     measure each variant with the generator's default knobs only

exit status: 0 success, 1 error in the spec or files, 2 usage or internal error (every
problem with --vary is a usage error), 130 interrupted (tune keeps what it measured).
]]

local COMMANDS = { generate = true, build = true, info = true, check = true, tune = true }
local PASSES = { spec = true, plan = true, schedule = true, emit = true }
-- Options of tune only: flag -> the field of opts, and how to read its value (nil: no value).
local TUNE_OPTIONS = {
  ["--vary"] = { "vary", "list" }, ["--metric"] = { "metric", "text" }, ["--budget-us"] = { "budget_us", "real" },
  ["--data"] = { "data", "text" }, ["--target"] = { "target", "text" }, ["--valid-data"] = { "valid_data", "text" },
  ["--valid-target"] = { "valid_target", "text" }, ["--steps"] = { "steps", "count" }, ["--lr"] = { "lr", "real" },
  ["--seed"] = { "seed", "seed" }, ["--bench-runs"] = { "bench_runs", "count" }, ["--jobs"] = { "jobs", "count" },
  ["--threads"] = { "threads", "count" },
  ["--no-search"] = { "no_search" },
}

local function tune_value(flag, kind, text)
  if kind == "text" or kind == "list" then return text end
  local n = tonumber(text)
  if kind == "real" and n and n >= 0 and n < math.huge then return n end
  if (kind == "count" or kind == "seed") and text:match("^%d+$") and math.tointeger(n) and (kind == "seed" or n >= 1) then
    return kind == "seed" and text or math.tointeger(n)
  end
  errors.usage(string.format("%s: expected %s, got '%s'", flag,
    kind == "real" and "a number >= 0" or kind == "seed" and "an integer >= 0" or "a positive integer", text))
end

local function parse_args(args)
  local opts = { vary = {} }
  local i = 1
  local function value(flag)
    i = i + 1
    if args[i] == nil then errors.usage(flag .. " needs a value") end
    return args[i]
  end
  while i <= #args do
    local a = args[i]
    local tune_option = TUNE_OPTIONS[a]
    if tune_option then
      opts.tune_flag = opts.tune_flag or a
      local field, kind = tune_option[1], tune_option[2]
      if not kind then
        opts[field] = true
      elseif kind == "list" then
        table.insert(opts[field], value(a))
      else
        opts[field] = tune_value(a, kind, value(a))
      end
    elseif a == "-h" or a == "--help" then
      opts.help = true
    elseif a == "--version" then
      opts.version = true
    elseif a == "-o" then
      opts.dir = value(a)
    elseif a == "--isa" then
      opts.isa = value(a)
    elseif a == "--name" then
      opts.name = value(a)
    elseif a:match("^%-%-isa=") then
      opts.isa = a:sub(7)
    elseif a:match("^%-%-dump=") then
      opts.dump = a:sub(8)
      if not PASSES[opts.dump] then errors.usage("unknown pass '" .. opts.dump .. "' for --dump; expected spec, plan, schedule or emit") end
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      errors.usage("unknown option '" .. a .. "'")
    elseif not opts.command then
      if not COMMANDS[a] then errors.usage("unknown command '" .. a .. "'; expected generate, build, info, check or tune") end
      opts.command = a
    elseif not opts.spec then
      opts.spec = a
    else
      errors.usage("unexpected argument '" .. a .. "'")
    end
    i = i + 1
  end
  if opts.tune_flag and opts.command ~= "tune" then
    errors.usage("option " .. opts.tune_flag .. " applies to the tune command only")
  end
  return opts
end

-- Where the runtime lives: installed (PREFIX/bin/rnnc, PREFIX/include, PREFIX/lib) or in the
-- source tree (build/rnnc, runtime/, build/libnnrt.a).
local function find_runtime(host)
  local bin = host.exe_dir()
  local prefix = host.realpath(bin .. "/..") or (bin .. "/..")
  local installed = { include = prefix .. "/include", lib = prefix .. "/lib/libnnrt.a" }
  if host.file_exists(installed.include .. "/nnrt.h") and host.file_exists(installed.lib) then return installed end
  -- In the tree the binary sits in build/ (or a build/<variant>/ such as build/sanitize).
  local up = bin
  for _ = 1, 3 do
    up = host.realpath(up .. "/..") or up
    if host.file_exists(up .. "/runtime/nnrt.h") and host.file_exists(bin .. "/libnnrt.a") then
      return { include = up .. "/runtime", lib = bin .. "/libnnrt.a" }
    end
  end
  errors.raise("rnnc: cannot find the runtime (nnrt.h, libnnrt.a) next to " .. bin .. "; reinstall rnnc")
end

local function shell_quote(s)
  if s:match("^[%w%./_%-=+]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function compile_command(runtime, backend, dir, name)
  local cc = os.getenv("CC") or "cc"
  local parts = { cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror" }
  if backend.cflags ~= "" then table.insert(parts, backend.cflags) end
  for _, p in ipairs({ "-I" .. dir, "-I" .. runtime.include, dir .. "/" .. name .. ".c", dir .. "/" .. name .. "_main.c",
    runtime.lib }) do
    table.insert(parts, shell_quote(p))
  end
  if backend.libs ~= "" then table.insert(parts, backend.libs) end
  for _, p in ipairs({ "-ljansson", "-lm", "-pthread", "-o", dir .. "/" .. name }) do
    table.insert(parts, shell_quote(p))
  end
  return table.concat(parts, " ")
end

local function load_templates(host)
  local t = {}
  for _, name in ipairs({ "model.h", "model.c", "main.c", "model.py" }) do
    t[name] = host.source("templates/" .. name) or error("template missing from the build: " .. name)
  end
  return t
end

-- The passes after the spec, for backend into dir: nil and the text of the pass to dump, or the
-- result { plan, files, dir, compile }. with_runtime: the compile command names the runtime.
local function passes(host, spec, backend, dir, dump_pass, with_runtime)
  local plan = plan_pass.build(spec, host.cache_sizes(), backend)
  if dump_pass == "plan" then return nil, dump.text(plan) end
  local sched = schedule_pass.build(plan)
  if dump_pass == "schedule" then return nil, dump.text(sched) end
  local runtime = with_runtime and find_runtime(host)
  local compile = runtime and compile_command(runtime, backend, dir, spec.name)
    or "see `rnnc build` (it prints the exact command)"
  local files = emit.model(plan, sched, backend, load_templates(host), { version = host.version, compile = compile })
  if dump_pass == "emit" then return nil, files.header .. files.source .. files.main .. files.python end
  return { plan = plan, files = files, dir = dir, compile = compile }
end

local function run_passes(host, opts)
  local source = spec_pass.read(host, opts.spec)
  local spec = spec_pass.parse(host, opts.spec, source)
  if opts.name then
    local problem = spec_pass.name_problem(opts.name)
    if problem then errors.usage("--name: " .. problem) end
    spec.name = opts.name
  end
  if opts.dump == "spec" then return nil, dump.text(spec) end
  if opts.command == "check" then return spec end
  local backend = backends.load(host, opts.isa or (spec.tuning and spec.tuning.isa) or "native")
  local result, dumped = passes(host, spec, backend, opts.dir or ("out/" .. spec.name), opts.dump,
    opts.command == "build" or opts.command == "generate")
  return spec, dumped, result
end

local function write_outputs(host, spec, result)
  local ok, why = host.mkdir_p(result.dir)
  if not ok then errors.raise("rnnc: " .. why) end
  local written = {}
  local files = { [".h"] = result.files.header, [".c"] = result.files.source, ["_main.c"] = result.files.main,
    [".py"] = result.files.python }
  for suffix, text in pairs(files) do
    local path = result.dir .. "/" .. spec.name .. suffix
    ok, why = host.write_atomic(path, text)
    if not ok then errors.raise("rnnc: " .. why) end
    table.insert(written, path)
  end
  table.sort(written)
  return written
end

local function main(host, args)
  local opts = parse_args(args)
  if opts.version then
    io.write("rnnc " .. host.version .. "\n")
    return 0
  end
  if opts.help or not opts.command then
    io.write(USAGE)
    return opts.help and 0 or 2
  end
  if not opts.spec then errors.usage(opts.command .. " needs a SPEC file") end
  if opts.command == "tune" then
    -- tune generates and compiles many variants: the same passes and files as `rnnc build`.
    return tune.run(host, opts, {
      quote = shell_quote,
      generate = function(spec, isa, dir)
        local result = passes(host, spec, backends.load(host, isa), dir, nil, true)
        write_outputs(host, spec, result)
        return result
      end,
    })
  end
  local spec, dumped, result = run_passes(host, opts)
  if dumped then
    io.write(dumped)
    return 0
  end
  if opts.command == "check" then
    io.write(string.format("%s: ok (model %s)\n", opts.spec, spec.name))
    return 0
  end
  if opts.command == "info" then
    io.write(info.report(result.plan, {
      source_bytes = #result.files.source,
      source_lines = select(2, result.files.source:gsub("\n", "")),
    }))
    return 0
  end
  for _, path in ipairs(write_outputs(host, spec, result)) do io.write("wrote " .. path .. "\n") end
  if opts.command == "build" then
    io.write(result.compile .. "\n")
    io.flush()
    if host.system(result.compile) ~= 0 then
      errors.raise("rnnc: compiling " .. spec.name .. " failed (command above)")
    end
    io.write("built " .. result.dir .. "/" .. spec.name .. "\n")
  end
  return 0
end

return main
