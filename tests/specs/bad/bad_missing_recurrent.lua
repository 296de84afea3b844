-- expect: error: recurrent is required
return model { name = "m", input = 3, seq_len = 8 }
