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

local USAGE = [[
usage: rnnc COMMAND SPEC [options]

Compiles a recurrent network spec (a Lua file) into specialised C.

commands:
  generate SPEC [-o DIR] [--isa ISA]   write DIR/<name>.h, <name>.c, <name>_main.c (the driver)
                                       and <name>.py (the PyTorch module); default DIR: out/<name>
  build    SPEC [-o DIR] [--isa ISA]   generate, then compile the driver program DIR/<name>
  info     SPEC [--isa ISA]            sizes, parameters, FLOPs, critical path, cache residency
  check    SPEC                        validate only

options:
  -o DIR          output directory
  --isa ISA       scalar, sse4, avx2, avx512, neon or native (default: native, the best
                  backend this machine supports)
  --name NAME     generate under another C prefix than the spec's name (e.g. two builds of one
                  spec in one program)
  --dump=PASS     print the result of a pass (spec, plan, schedule, emit) and stop
  -h, --help      this help;  --version  rnnc's version

exit status: 0 success, 1 error in the spec or files, 2 usage or internal error.
]]

local COMMANDS = { generate = true, build = true, info = true, check = true }
local PASSES = { spec = true, plan = true, schedule = true, emit = true }

local function parse_args(args)
  local opts = { isa = "native" }
  local i = 1
  local function value(flag)
    i = i + 1
    if args[i] == nil then errors.usage(flag .. " needs a value") end
    return args[i]
  end
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then
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
      if not COMMANDS[a] then errors.usage("unknown command '" .. a .. "'; expected generate, build, info or check") end
      opts.command = a
    elseif not opts.spec then
      opts.spec = a
    else
      errors.usage("unexpected argument '" .. a .. "'")
    end
    i = i + 1
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

local function run_passes(host, opts)
  local source, why = host.read_file(opts.spec)
  if not source then errors.raise("rnnc: cannot read spec: " .. why) end
  local spec = spec_pass.parse(host, opts.spec, source)
  if opts.name then
    local problem = spec_pass.name_problem(opts.name)
    if problem then errors.usage("--name: " .. problem) end
    spec.name = opts.name
  end
  if opts.dump == "spec" then return nil, dump.text(spec) end
  if opts.command == "check" then return spec end
  local backend = backends.load(host, opts.isa)
  local plan = plan_pass.build(spec, host.cache_sizes(), backend)
  if opts.dump == "plan" then return nil, dump.text(plan) end
  local sched = schedule_pass.build(plan)
  if opts.dump == "schedule" then return nil, dump.text(sched) end
  local dir = opts.dir or ("out/" .. spec.name)
  local runtime = (opts.command == "build" or opts.command == "generate") and find_runtime(host)
  local compile = runtime and compile_command(runtime, backend, dir, spec.name)
    or "see `rnnc build` (it prints the exact command)"
  local files = emit.model(plan, sched, backend, load_templates(host), { version = host.version, compile = compile })
  if opts.dump == "emit" then return nil, files.header .. files.source .. files.main .. files.python end
  return spec, nil, { plan = plan, files = files, dir = dir, compile = compile }
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
