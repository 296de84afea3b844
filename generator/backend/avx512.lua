-- backend/avx512.lua — AVX-512F: 16 floats or 8 doubles per vector, 32 registers, masked tails.
local vector = require("rnnc.backend.vector")

local function mask(n) return string.format("0x%x", (1 << n) - 1) end

return vector.define {
  name = "avx512", cflags = "-mavx512f -mfma", libs = "-lsleef", target = "avx512f,fma", cpu_feature = "avx512f",
  registers = 32, bytes_per_fma = 7,
  guard = "#if !defined(__AVX512F__) || !defined(__FMA__)\n#error \"generated for AVX-512F: compile with -mavx512f -mfma (or generate with --isa scalar)\"\n#endif",
  includes = "#include <immintrin.h>\n#include <sleef.h>",
  f32 = {
    lanes = 16, vtype = "__m512", zero = "_mm512_setzero_ps()", set1 = "_mm512_set1_ps(%1)",
    load = "_mm512_loadu_ps(%1)", store = "_mm512_storeu_ps(%1, %2)", fma = "_mm512_fmadd_ps(%1, %2, %3)",
    add = "_mm512_add_ps(%1, %2)", sub = "_mm512_sub_ps(%1, %2)", mul = "_mm512_mul_ps(%1, %2)",
    div = "_mm512_div_ps(%1, %2)", max = "_mm512_max_ps(%1, %2)",
    positive = "_mm512_maskz_mov_ps(_mm512_cmp_ps_mask(%1, _mm512_setzero_ps(), _CMP_GT_OQ), %2)",
    exp = "Sleef_expf16_u10avx512f(%1)", tanh = "Sleef_tanhf16_u10avx512f(%1)", tanh_fast = "Sleef_tanhf16_u35avx512f(%1)",
  },
  f64 = {
    lanes = 8, vtype = "__m512d", zero = "_mm512_setzero_pd()", set1 = "_mm512_set1_pd(%1)",
    load = "_mm512_loadu_pd(%1)", store = "_mm512_storeu_pd(%1, %2)", fma = "_mm512_fmadd_pd(%1, %2, %3)",
    add = "_mm512_add_pd(%1, %2)", sub = "_mm512_sub_pd(%1, %2)", mul = "_mm512_mul_pd(%1, %2)",
    div = "_mm512_div_pd(%1, %2)", max = "_mm512_max_pd(%1, %2)",
    positive = "_mm512_maskz_mov_pd(_mm512_cmp_pd_mask(%1, _mm512_setzero_pd(), _CMP_GT_OQ), %2)",
    exp = "Sleef_expd8_u10avx512f(%1)", tanh = "Sleef_tanhd8_u10avx512f(%1)", tanh_fast = "Sleef_tanhd8_u35avx512f(%1)",
  },
  load_tail = function(p, _, addr, n)
    return string.format("_mm512_maskz_loadu_%s((__mmask%d)%s, %s)", p == "f64" and "pd" or "ps", p == "f64" and 8 or 16, mask(n), addr)
  end,
  store_tail = function(p, _, addr, v, n)
    return string.format("_mm512_mask_storeu_%s(%s, (__mmask%d)%s, %s)", p == "f64" and "pd" or "ps", addr, p == "f64" and 8 or 16, mask(n), v)
  end,
}
