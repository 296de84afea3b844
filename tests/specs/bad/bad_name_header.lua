-- expect: :3: error: name "string" cannot be used: the generated string.h would shadow the system header <string.h>
-- The build compiles with -I DIR: DIR/string.h would replace <string.h> (tests/test_hostile.c checks every header).
return model { name = "string", input = 3, seq_len = 8, recurrent = { lstm(4) } }
