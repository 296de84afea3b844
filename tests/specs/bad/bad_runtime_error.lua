-- expect: :3: error: boom
local size = 4
error("boom")
