-- expect: error: input is required (features per timestep)
return model { name = "m", seq_len = 8, recurrent = { lstm(4) } }
