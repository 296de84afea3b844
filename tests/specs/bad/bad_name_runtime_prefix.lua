-- expect: :2: error: name "nnrt_model" would clash with the runtime's nnrt_ prefix
return model { name = "nnrt_model", input = 3, seq_len = 8, recurrent = { lstm(4) } }
