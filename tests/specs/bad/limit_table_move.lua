-- expect: :4: error: the spec ran past the
-- (the instruction limit; on a loaded machine the deadline may come first)
-- table.move loops over its range in C; the sandbox's counts every element.
table.move({}, 1, 1 << 50, 1)
return model { name = "m", input = 3, seq_len = 8, recurrent = { lstm(4) } }
