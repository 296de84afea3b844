-- expect: :4: error: rep returned 0 bytes
-- string.rep of an empty string loops n times in C, out of the instruction limit's sight: the
-- sandbox's rep returns at once.
error("rep returned " .. #(string.rep("", math.maxinteger) .. ("")):rep(math.maxinteger, "") .. " bytes", 0)
