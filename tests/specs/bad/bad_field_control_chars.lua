-- expect: :4: error: unknown field "\27[2J\13\n
-- A field name with an escape sequence, a carriage return and a line break cannot forge output:
-- it is quoted on one line.
return model { name = "m", ["\27[2J\r\nspec.lua:1: error: forged"] = 1, input = 3, seq_len = 8, recurrent = { lstm(4) } }
