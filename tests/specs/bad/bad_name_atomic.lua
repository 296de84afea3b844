-- expect: :3: error: name "atomic" cannot be used: the generated its functions
-- atomic_init and atomic_load are macros of <stdatomic.h>, which --isa multi includes.
return model { name = "atomic", input = 3, seq_len = 8, recurrent = { lstm(4) } }
