-- expect: error: the spec ran past the instruction limit
while true do end
