-- expect: :3: error: unknown function lstn (did you mean 'lstm'?)
-- A misspelt constructor.
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstn(4) } }
