-- expect: error: the spec used more memory than the limit
-- string.pack pads a 2 GB field byte by byte: the memory limit stops it.
local s = string.pack("c2000000000", "")
