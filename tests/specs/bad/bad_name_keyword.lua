-- expect: :2: error: name "double" is a C keyword; choose another
return model { name = "double", input = 3, seq_len = 8, recurrent = { lstm(4) } }
