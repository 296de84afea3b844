-- backend/sse4.lua — SSE4.1: 4 floats or 2 doubles per vector, 16 registers, no FMA (a
-- multiply and an add), tails through a small buffer.
local vector = require("rnnc.backend.vector")

return vector.define {
  name = "sse4", cflags = "-msse4.1", libs = "-lsleef", target = "sse4.1", cpu_feature = "sse4.1",
  registers = 16, bytes_per_fma = 8,
  guard = "#if !defined(__SSE4_1__)\n#error \"generated for SSE4.1: compile with -msse4.1 (or generate with --isa scalar)\"\n#endif",
  includes = "#include <smmintrin.h>\n#include <sleef.h>",
  f32 = {
    lanes = 4, vtype = "__m128", zero = "_mm_setzero_ps()", set1 = "_mm_set1_ps(%1)",
    load = "_mm_loadu_ps(%1)", store = "_mm_storeu_ps(%1, %2)", fma = "_mm_add_ps(_mm_mul_ps(%1, %2), %3)",
    add = "_mm_add_ps(%1, %2)", sub = "_mm_sub_ps(%1, %2)", mul = "_mm_mul_ps(%1, %2)",
    div = "_mm_div_ps(%1, %2)", max = "_mm_max_ps(%1, %2)",
    positive = "_mm_and_ps(_mm_cmpgt_ps(%1, _mm_setzero_ps()), %2)",
    exp = "Sleef_expf4_u10sse4(%1)", tanh = "Sleef_tanhf4_u10sse4(%1)", tanh_fast = "Sleef_tanhf4_u35sse4(%1)",
  },
  f64 = {
    lanes = 2, vtype = "__m128d", zero = "_mm_setzero_pd()", set1 = "_mm_set1_pd(%1)",
    load = "_mm_loadu_pd(%1)", store = "_mm_storeu_pd(%1, %2)", fma = "_mm_add_pd(_mm_mul_pd(%1, %2), %3)",
    add = "_mm_add_pd(%1, %2)", sub = "_mm_sub_pd(%1, %2)", mul = "_mm_mul_pd(%1, %2)",
    div = "_mm_div_pd(%1, %2)", max = "_mm_max_pd(%1, %2)",
    positive = "_mm_and_pd(_mm_cmpgt_pd(%1, _mm_setzero_pd()), %2)",
    exp = "Sleef_expd2_u10sse4(%1)", tanh = "Sleef_tanhd2_u10sse4(%1)", tanh_fast = "Sleef_tanhd2_u35sse4(%1)",
  },
  load_tail = vector.buffered_load_tail,
  store_tail = vector.buffered_store_tail,
  tail_helpers = vector.buffered_tails,
}
