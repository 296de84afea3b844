-- backend/avx2.lua — AVX2 with FMA: 8 floats or 4 doubles per vector, 16 registers, masked tails.
local vector = require("rnnc.backend.vector")

local function lane_mask(p, n)
  local lanes, parts = p == "f64" and 4 or 8, {}
  for i = 1, lanes do parts[i] = i <= n and "-1" or "0" end
  return string.format("_mm256_setr_epi%s(%s)", p == "f64" and "64x" or "32", table.concat(parts, ", "))
end

return vector.define {
  name = "avx2", cflags = "-mavx2 -mfma", libs = "-lsleef", target = "avx2,fma", cpu_feature = "avx2,fma",
  registers = 16, bytes_per_fma = 6,
  guard = "#if !defined(__AVX2__) || !defined(__FMA__)\n#error \"generated for AVX2 and FMA: compile with -mavx2 -mfma (or generate with --isa scalar)\"\n#endif",
  includes = "#include <immintrin.h>\n#include <sleef.h>",
  f32 = {
    lanes = 8, vtype = "__m256", zero = "_mm256_setzero_ps()", set1 = "_mm256_set1_ps(%1)",
    load = "_mm256_loadu_ps(%1)", store = "_mm256_storeu_ps(%1, %2)", fma = "_mm256_fmadd_ps(%1, %2, %3)",
    add = "_mm256_add_ps(%1, %2)", sub = "_mm256_sub_ps(%1, %2)", mul = "_mm256_mul_ps(%1, %2)",
    div = "_mm256_div_ps(%1, %2)", max = "_mm256_max_ps(%1, %2)",
    positive = "_mm256_and_ps(_mm256_cmp_ps(%1, _mm256_setzero_ps(), _CMP_GT_OQ), %2)",
    exp = "Sleef_expf8_u10avx2(%1)", tanh = "Sleef_tanhf8_u10avx2(%1)", tanh_fast = "Sleef_tanhf8_u35avx2(%1)",
  },
  f64 = {
    lanes = 4, vtype = "__m256d", zero = "_mm256_setzero_pd()", set1 = "_mm256_set1_pd(%1)",
    load = "_mm256_loadu_pd(%1)", store = "_mm256_storeu_pd(%1, %2)", fma = "_mm256_fmadd_pd(%1, %2, %3)",
    add = "_mm256_add_pd(%1, %2)", sub = "_mm256_sub_pd(%1, %2)", mul = "_mm256_mul_pd(%1, %2)",
    div = "_mm256_div_pd(%1, %2)", max = "_mm256_max_pd(%1, %2)",
    positive = "_mm256_and_pd(_mm256_cmp_pd(%1, _mm256_setzero_pd(), _CMP_GT_OQ), %2)",
    exp = "Sleef_expd4_u10avx2(%1)", tanh = "Sleef_tanhd4_u10avx2(%1)", tanh_fast = "Sleef_tanhd4_u35avx2(%1)",
  },
  load_tail = function(p, _, addr, n)
    return string.format("_mm256_maskload_%s(%s, %s)", p == "f64" and "pd" or "ps", addr, lane_mask(p, n))
  end,
  store_tail = function(p, _, addr, v, n)
    return string.format("_mm256_maskstore_%s(%s, %s, %s)", p == "f64" and "pd" or "ps", addr, lane_mask(p, n), v)
  end,
}
