-- hint.lua — "did you mean" hints and short, safe quotations of values, for error messages.
--
-- Both see text from the spec, which may be hostile: a 3 MB field name, 200,000 of them, control
-- characters. Each call costs at most MAX_WORD^2 steps per candidate, and a quotation is at most
-- a few dozen characters on one line.
local M = {}

M.MAX_WORD = 64   -- longer words get no hint
M.MAX_QUOTE = 40  -- characters of a string quoted in a message

-- Levenshtein distance of a and b, or limit when it is at least limit (stops early).
local function distance(a, b, limit)
  local previous = {}
  for j = 0, #b do previous[j] = j end
  for i = 1, #a do
    local current = { [0] = i }
    local row_min = i
    local ai = a:byte(i)
    for j = 1, #b do
      local cost = ai == b:byte(j) and 0 or 1
      local d = math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
      current[j] = d
      if d < row_min then row_min = d end
    end
    if row_min >= limit then return limit end
    previous = current
  end
  return math.min(previous[#b], limit)
end

-- The candidate within edit distance max_distance (default 2) of word (the first of the
-- closest), or nil.
function M.closest(word, candidates, max_distance)
  if type(word) ~= "string" or #word > M.MAX_WORD then return nil end
  local best, best_distance = nil, (max_distance or 2) + 1
  for _, candidate in ipairs(candidates) do
    if type(candidate) == "string" and candidate ~= word and math.abs(#candidate - #word) < best_distance then
      local d = distance(word, candidate, best_distance)
      if d < best_distance then best, best_distance = candidate, d end
    end
  end
  return best
end

-- " (did you mean 'x'?)" for the closest candidate, or "".
function M.did_you_mean(word, candidates, quote, max_distance)
  local hint = M.closest(word, candidates, max_distance)
  if not hint then return "" end
  return string.format(quote == '"' and " (did you mean %q?)" or " (did you mean '%s'?)", hint)
end

-- A string as a Lua literal on one line, cut to MAX_QUOTE characters: "abc", "a\27[2J...".
function M.quote(text)
  local cut = #text > M.MAX_QUOTE
  local q = string.format("%q", cut and text:sub(1, M.MAX_QUOTE) or text):gsub("\\\n", "\\n")
  return cut and q:sub(1, -2) .. '..."' or q
end

-- A name for a message: itself when it is an identifier of reasonable length, else quoted.
function M.name(text)
  if type(text) == "string" and #text <= M.MAX_WORD and text:match("^[%a_][%w_]*$") then return text end
  return M.quote(tostring(text))
end

-- text with its control characters replaced by '?', for a path pasted into a one-line message
-- (rnnc.c's printer cleans the rest).
function M.inline(text)
  return (tostring(text):gsub("%c", "?"))
end

return M
