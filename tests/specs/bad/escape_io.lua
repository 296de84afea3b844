-- expect: :2: error: attempt to index a nil value (global 'io') (specs run in a sandbox
io.open("/tmp/rnnc_sandbox_escape", "w")
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) } }
