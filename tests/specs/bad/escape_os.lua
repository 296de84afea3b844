-- expect: :2: error: attempt to index a nil value (global 'os') (specs run in a sandbox
os.execute("touch /tmp/rnnc_sandbox_escape")
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) } }
