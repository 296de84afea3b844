-- expect: :3: error: name must be a C identifier of the form [a-z][a-z0-9_]*, got "My-Model"
return model {
  name = "My-Model", input = 3, seq_len = 8, recurrent = { lstm(4) } }
