-- expect: :5: error: the spec ran past the time limit
-- Few instructions, each copying 16 MiB: the instruction limit would take hours to trip; the
-- deadline ends it.
local s = ("x"):rep(1 << 23)
while true do local t = s .. s end
