-- pattern.lua — Lua's string patterns (string.find, match, gmatch, gsub) written in Lua, for the
-- spec sandbox (generator/sandbox.lua).
--
-- The C matcher of lstrlib.c backtracks without running a Lua instruction, so a pattern such as
-- ("a*"):rep(40) .. "b" against ("a"):rep(40) runs for ages out of reach of the sandbox's
-- instruction limit and deadline. This is the same algorithm, step for step (function names are
-- those of lstrlib.c), in Lua: every step is a Lua instruction, so the instruction limit bounds
-- it. Semantics and error messages are those of Lua 5.4, in the C locale. Plain searches of
-- short needles still use the C search, whose cost is bounded by the product of the lengths.
local M = {}

local byte, sub, rep, concat = string.byte, string.sub, string.rep, table.concat
local c_find = string.find
local tointeger, mtype = math.tointeger, math.type

local L_ESC = 37 -- '%'
local MAXCAPTURES = 32
local MAXCCALLS = 200
local CAP_UNFINISHED, CAP_POSITION = -1, -2
local PLAIN_C_WORK = 1 << 22 -- plain searches up to this many byte comparisons run in C

local function fail(message) error(message, 0) end

-- ---- Arguments, as lauxlib checks them --------------------------------------------------------

local function arg_error(i, name, message) fail(string.format("bad argument #%d to '%s' (%s)", i, name, message)) end

local function check_string(v, i, name)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return tostring(v) end
  arg_error(i, name, "string expected, got " .. (v == nil and "no value" or t))
end

local function opt_integer(v, i, name, default)
  if v == nil then return default end
  local n = mtype(v) == "float" and tointeger(v) or v
  if mtype(n) == "integer" then return n end
  if type(v) == "string" then
    local s = tonumber(v)
    n = s and (tointeger(s) or nil)
    if n then return n end
  end
  if mtype(v) == "float" then arg_error(i, name, "number has no integer representation") end
  arg_error(i, name, "number expected, got " .. type(v))
end

-- lstrlib's posrelatI: a start position in 1..len+1 (or beyond, meaning "past the end").
local function posrelat(pos, len)
  if pos > 0 then return pos end
  if pos == 0 or pos < -len then return 1 end
  return len + pos + 1
end

-- ---- Character classes (C locale) -------------------------------------------------------------

local function isalpha(c) return (c >= 65 and c <= 90) or (c >= 97 and c <= 122) end
local function isdigit(c) return c >= 48 and c <= 57 end
local function isalnum(c) return isalpha(c) or isdigit(c) end

local function match_class(c, cl)
  local lower = (cl >= 65 and cl <= 90) and cl + 32 or cl
  local res
  if lower == 97 then res = isalpha(c)                                      -- %a
  elseif lower == 99 then res = c < 32 or c == 127                          -- %c
  elseif lower == 100 then res = isdigit(c)                                 -- %d
  elseif lower == 103 then res = c > 32 and c < 127                         -- %g
  elseif lower == 108 then res = c >= 97 and c <= 122                       -- %l
  elseif lower == 112 then res = c > 32 and c < 127 and not isalnum(c)      -- %p
  elseif lower == 115 then res = c == 32 or (c >= 9 and c <= 13)            -- %s
  elseif lower == 117 then res = c >= 65 and c <= 90                        -- %u
  elseif lower == 119 then res = isalnum(c)                                 -- %w
  elseif lower == 120 then res = isdigit(c) or (c >= 97 and c <= 102) or (c >= 65 and c <= 70) -- %x
  elseif lower == 122 then res = c == 0                                     -- %z (deprecated)
  else return cl == c end
  if cl >= 65 and cl <= 90 then return not res end
  return res
end

-- ---- The matcher: ms = { src, src_end, pat, p_end, level, init = {}, len = {}, depth } ---------

local match -- forward

local function class_end(ms, p)
  local pat = ms.pat
  local c = byte(pat, p)
  p = p + 1
  if c == L_ESC then
    if p >= ms.p_end then fail("malformed pattern (ends with '%')") end
    return p + 1
  elseif c == 91 then -- '['
    if byte(pat, p) == 94 then p = p + 1 end
    repeat -- look for a ']'
      if p >= ms.p_end then fail("malformed pattern (missing ']')") end
      local cc = byte(pat, p)
      p = p + 1
      if cc == L_ESC and p < ms.p_end then p = p + 1 end
    until byte(pat, p) == 93
    return p + 1
  end
  return p
end

-- p at '[', ec at the closing ']'.
local function match_bracket_class(ms, c, p, ec)
  local pat = ms.pat
  local sig = true
  if byte(pat, p + 1) == 94 then
    sig = false
    p = p + 1
  end
  p = p + 1
  while p < ec do
    local pc = byte(pat, p)
    if pc == L_ESC then
      p = p + 1
      if match_class(c, byte(pat, p)) then return sig end
    elseif byte(pat, p + 1) == 45 and p + 2 < ec then -- a range a-z
      if pc <= c and c <= byte(pat, p + 2) then return sig end
      p = p + 2
    elseif pc == c then
      return sig
    end
    p = p + 1
  end
  return not sig
end

local function single_match(ms, s, p, ep)
  if s >= ms.src_end then return false end
  local c = byte(ms.src, s)
  local pc = byte(ms.pat, p)
  if pc == 46 then return true -- '.'
  elseif pc == L_ESC then return match_class(c, byte(ms.pat, p + 1))
  elseif pc == 91 then return match_bracket_class(ms, c, p, ep - 1)
  end
  return pc == c
end

local function match_balance(ms, s, p)
  if p >= ms.p_end - 1 then fail("malformed pattern (missing arguments to '%b')") end
  local src = ms.src
  if byte(src, s) ~= byte(ms.pat, p) then return nil end
  local b, e, cont = byte(ms.pat, p), byte(ms.pat, p + 1), 1
  s = s + 1
  while s < ms.src_end do
    local c = byte(src, s)
    if c == e then
      cont = cont - 1
      if cont == 0 then return s + 1 end
    elseif c == b then
      cont = cont + 1
    end
    s = s + 1
  end
  return nil
end

local function max_expand(ms, s, p, ep)
  local i = 0
  while single_match(ms, s + i, p, ep) do i = i + 1 end
  while i >= 0 do -- try with the longest repetition first
    local res = match(ms, s + i, ep + 1)
    if res then return res end
    i = i - 1
  end
  return nil
end

local function min_expand(ms, s, p, ep)
  while true do
    local res = match(ms, s, ep + 1)
    if res then return res end
    if not single_match(ms, s, p, ep) then return nil end
    s = s + 1
  end
end

local function start_capture(ms, s, p, what)
  local level = ms.level
  if level >= MAXCAPTURES then fail("too many captures") end
  ms.init[level + 1], ms.len[level + 1] = s, what
  ms.level = level + 1
  local res = match(ms, s, p)
  if not res then ms.level = ms.level - 1 end
  return res
end

local function end_capture(ms, s, p)
  local l
  for level = ms.level, 1, -1 do
    if ms.len[level] == CAP_UNFINISHED then l = level break end
  end
  if not l then fail("invalid pattern capture") end
  ms.len[l] = s - ms.init[l]
  local res = match(ms, s, p)
  if not res then ms.len[l] = CAP_UNFINISHED end
  return res
end

local function match_capture(ms, s, c)
  local l = c - 48 -- '1' is capture 1
  if l < 1 or l > ms.level or ms.len[l] == CAP_UNFINISHED then
    fail(string.format("invalid capture index %%%d", l))
  end
  local len = ms.len[l]
  if len == CAP_POSITION then return nil end -- C compares (size_t)-2 bytes: never a match
  if ms.src_end - s >= len and sub(ms.src, ms.init[l], ms.init[l] + len - 1) == sub(ms.src, s, s + len - 1) then
    return s + len
  end
  return nil
end

-- The end of the match of pattern position p at subject position s, or nil.
function match(ms, s, p)
  if ms.depth == 0 then fail("pattern too complex") end
  ms.depth = ms.depth - 1
  local pat = ms.pat
  while true do
    if p == ms.p_end then break end
    local pc = byte(pat, p)
    local default = false
    if pc == 40 then -- '('
      if byte(pat, p + 1) == 41 then s = start_capture(ms, s, p + 2, CAP_POSITION)
      else s = start_capture(ms, s, p + 1, CAP_UNFINISHED) end
      break
    elseif pc == 41 then -- ')'
      s = end_capture(ms, s, p + 1)
      break
    elseif pc == 36 and p + 1 == ms.p_end then -- '$' at the end
      if s ~= ms.src_end then s = nil end
      break
    elseif pc == L_ESC then
      local nc = byte(pat, p + 1)
      if nc == 98 then -- %b
        s = match_balance(ms, s, p + 2)
        if not s then break end
        p = p + 4
      elseif nc == 102 then -- %f
        p = p + 2
        if byte(pat, p) ~= 91 then fail("missing '[' after '%f' in pattern") end
        local ep = class_end(ms, p)
        local previous = s == 1 and 0 or byte(ms.src, s - 1)
        local current = byte(ms.src, s) or 0
        if match_bracket_class(ms, previous, p, ep - 1) or not match_bracket_class(ms, current, p, ep - 1) then
          s = nil
          break
        end
        p = ep
      elseif nc and isdigit(nc) then -- a back reference
        s = match_capture(ms, s, nc)
        if not s then break end
        p = p + 2
      else
        default = true
      end
    else
      default = true
    end
    if default then
      local ep = class_end(ms, p)
      local epc = byte(pat, ep)
      if not single_match(ms, s, p, ep) then
        if epc == 42 or epc == 63 or epc == 45 then -- '*', '?', '-' accept zero
          p = ep + 1
        else
          s = nil
          break
        end
      elseif epc == 63 then -- '?'
        local res = match(ms, s + 1, ep + 1)
        if res then
          s = res
          break
        end
        p = ep + 1
      elseif epc == 43 then -- '+'
        s = max_expand(ms, s + 1, p, ep)
        break
      elseif epc == 42 then -- '*'
        s = max_expand(ms, s, p, ep)
        break
      elseif epc == 45 then -- '-'
        s = min_expand(ms, s, p, ep)
        break
      else
        s = s + 1
        p = ep
      end
    end
  end
  ms.depth = ms.depth + 1
  return s
end

local function new_state(src, pat, p_start)
  return { src = src, src_end = #src + 1, pat = pat, p_end = #pat + 1, p_start = p_start, level = 0,
    init = {}, len = {}, depth = MAXCCALLS }
end

local function reprep(ms)
  ms.level = 0
  ms.depth = MAXCCALLS
end

-- Capture i (1-based) of a match s..e-1 (the whole match when there are no captures).
local function get_capture(ms, i, s, e)
  if i > ms.level then
    if i ~= 1 then fail(string.format("invalid capture index %%%d", i)) end
    return sub(ms.src, s, e - 1)
  end
  local len = ms.len[i]
  if len == CAP_UNFINISHED then fail("unfinished capture") end
  if len == CAP_POSITION then return ms.init[i] end
  return sub(ms.src, ms.init[i], ms.init[i] + len - 1)
end

local function captures(ms, s, e, whole)
  local n = (ms.level == 0 and whole) and 1 or ms.level
  local out = {}
  for i = 1, n do out[i] = get_capture(ms, i, s, e) end
  return out, n
end

local function has_specials(p)
  return c_find(p, "[%^%$%*%+%?%.%(%[%%%-]") ~= nil
end

-- A plain search; the C search when its worst case is small, else in Lua (64-byte steps).
local function plain_find(s, p, init)
  local ls, lp = #s, #p
  if lp == 0 then return init, init - 1 end
  if (ls - init + 1) * lp <= PLAIN_C_WORK then return c_find(s, p, init, true) end
  local head = sub(p, 1, 64)
  local pos = init
  while true do
    local i = c_find(s, head, pos, true)
    if not i then return nil end
    local k = 65
    while k <= lp and sub(s, i + k - 1, i + k + 62) == sub(p, k, k + 63) do k = k + 64 end
    if k > lp then return i, i + lp - 1 end
    pos = i + 1
  end
end

local function find_aux(find, name, s, p, init, plain)
  s = check_string(s, 1, name)
  p = check_string(p, 2, name)
  local ls = #s
  init = posrelat(opt_integer(init, 3, name, 1), ls)
  if init > ls + 1 then return nil end
  if find and (plain or not has_specials(p)) then return plain_find(s, p, init) end
  local anchor = byte(p, 1) == 94
  local ms = new_state(s, p, anchor and 2 or 1)
  local s1 = init
  repeat
    reprep(ms)
    local e = match(ms, s1, ms.p_start)
    if e then
      if find then
        local caps, n = captures(ms, nil, nil, false)
        return s1, e - 1, table.unpack(caps, 1, n)
      end
      local caps, n = captures(ms, s1, e, true)
      return table.unpack(caps, 1, n)
    end
    s1 = s1 + 1
  until s1 > ms.src_end or anchor
  return nil
end

function M.find(s, p, init, plain) return find_aux(true, "find", s, p, init, plain) end
function M.match(s, p, init) return find_aux(false, "match", s, p, init) end

function M.gmatch(s, p, init)
  s = check_string(s, 1, "gmatch")
  p = check_string(p, 2, "gmatch")
  local ls = #s
  local src = posrelat(opt_integer(init, 3, "gmatch", 1), ls)
  if src > ls + 1 then src = ls + 2 end
  local ms = new_state(s, p, 1)
  local lastmatch
  return function()
    while src <= ms.src_end do
      reprep(ms)
      local e = match(ms, src, 1)
      if e and e ~= lastmatch then
        local caps, n = captures(ms, src, e, true)
        src, lastmatch = e, e
        return table.unpack(caps, 1, n)
      end
      src = src + 1
    end
    return nil
  end
end

-- The replacement of one match s..e-1 by the string repl (with %0..%9 and %%).
local function add_s(ms, out, s, e, repl)
  local i, l = 1, #repl
  while i <= l do
    local j = c_find(repl, "%", i, true)
    if not j then
      out[#out + 1] = sub(repl, i)
      break
    end
    out[#out + 1] = sub(repl, i, j - 1)
    local c = byte(repl, j + 1)
    if c == L_ESC then
      out[#out + 1] = "%"
    elseif c == 48 then -- %0
      out[#out + 1] = sub(ms.src, s, e - 1)
    elseif c and isdigit(c) then
      out[#out + 1] = tostring(get_capture(ms, c - 48, s, e))
    else
      fail("invalid use of '%' in replacement string")
    end
    i = j + 2
  end
end

-- Appends the replacement of a match to out; whether the text changed.
local function add_value(ms, out, s, e, repl, kind)
  local value
  if kind == "function" then
    local caps, n = captures(ms, s, e, true)
    value = repl(table.unpack(caps, 1, n))
  elseif kind == "table" then
    value = repl[get_capture(ms, 1, s, e)]
  else
    add_s(ms, out, s, e, repl)
    return true
  end
  if not value then
    out[#out + 1] = sub(ms.src, s, e - 1)
    return false
  end
  local t = type(value)
  if t ~= "string" and t ~= "number" then fail("invalid replacement value (a " .. t .. ")") end
  out[#out + 1] = tostring(value)
  return true
end

function M.gsub(s, p, repl, max_n)
  s = check_string(s, 1, "gsub")
  p = check_string(p, 2, "gsub")
  local kind = type(repl)
  if kind == "number" then
    repl, kind = tostring(repl), "string"
  elseif kind ~= "string" and kind ~= "function" and kind ~= "table" then
    arg_error(3, "gsub", "string/function/table expected, got " .. (repl == nil and "no value" or kind))
  end
  max_n = opt_integer(max_n, 4, "gsub", #s + 1)
  local anchor = byte(p, 1) == 94
  local ms = new_state(s, p, anchor and 2 or 1)
  local out, n, changed = {}, 0, false
  local src, copied, lastmatch = 1, 1, nil -- copied: s[copied .. src-1] is still to be copied
  while n < max_n do
    reprep(ms)
    local e = match(ms, src, ms.p_start)
    if e and e ~= lastmatch then
      n = n + 1
      out[#out + 1] = sub(s, copied, src - 1)
      changed = add_value(ms, out, src, e, repl, kind) or changed
      src, lastmatch, copied = e, e, e
    elseif src < ms.src_end then
      src = src + 1
    else
      break
    end
    if anchor then break end
  end
  if not changed then return s, n end
  out[#out + 1] = sub(s, copied)
  return concat(out), n
end

-- The argument checks, for the other bounded library functions of the sandbox.
M.arg_error, M.check_string, M.opt_integer = arg_error, check_string, opt_integer

return M
