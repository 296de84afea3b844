-- expect: :4: error: mid is not defined (did you mean 'mid_'?)
-- A nil in the middle of a list does not cut the list short.
local mid_ = lstm(6)
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(8), mid, lstm(4) } }
