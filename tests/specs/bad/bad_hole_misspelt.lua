-- expect: :5: error: hiden is not defined (did you mean 'hidden'?)
-- expect: : 1 error
-- A misspelt variable in a list is an error, not a model without that layer.
local hidden = dense(16, "tanh")
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) }, head = { hiden, dense(2) } }
