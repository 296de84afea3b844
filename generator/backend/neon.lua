-- backend/neon.lua — AArch64 Advanced SIMD: 4 floats or 2 doubles per vector, 32 registers,
-- fused multiply-add, tails through a small buffer.
local vector = require("rnnc.backend.vector")

return vector.define {
  name = "neon", cflags = "", libs = "-lsleef", registers = 32, bytes_per_fma = 8,
  guard = "#if !defined(__aarch64__) || !defined(__ARM_NEON)\n#error \"generated for AArch64 Advanced SIMD (NEON): compile for aarch64 (or generate with --isa scalar)\"\n#endif",
  includes = "#include <arm_neon.h>\n#include <sleef.h>",
  f32 = {
    lanes = 4, vtype = "float32x4_t", zero = "vdupq_n_f32(0.0f)", set1 = "vdupq_n_f32(%1)",
    load = "vld1q_f32(%1)", store = "vst1q_f32(%1, %2)", fma = "vfmaq_f32(%3, %1, %2)",
    add = "vaddq_f32(%1, %2)", sub = "vsubq_f32(%1, %2)", mul = "vmulq_f32(%1, %2)",
    div = "vdivq_f32(%1, %2)", max = "vmaxq_f32(%1, %2)",
    positive = "vreinterpretq_f32_u32(vandq_u32(vcgtq_f32(%1, vdupq_n_f32(0.0f)), vreinterpretq_u32_f32(%2)))",
    exp = "Sleef_expf4_u10(%1)", tanh = "Sleef_tanhf4_u10(%1)", tanh_fast = "Sleef_tanhf4_u35(%1)",
  },
  f64 = {
    lanes = 2, vtype = "float64x2_t", zero = "vdupq_n_f64(0.0)", set1 = "vdupq_n_f64(%1)",
    load = "vld1q_f64(%1)", store = "vst1q_f64(%1, %2)", fma = "vfmaq_f64(%3, %1, %2)",
    add = "vaddq_f64(%1, %2)", sub = "vsubq_f64(%1, %2)", mul = "vmulq_f64(%1, %2)",
    div = "vdivq_f64(%1, %2)", max = "vmaxq_f64(%1, %2)",
    positive = "vreinterpretq_f64_u64(vandq_u64(vcgtq_f64(%1, vdupq_n_f64(0.0)), vreinterpretq_u64_f64(%2)))",
    exp = "Sleef_expd2_u10(%1)", tanh = "Sleef_tanhd2_u10(%1)", tanh_fast = "Sleef_tanhd2_u35(%1)",
  },
  load_tail = vector.buffered_load_tail,
  store_tail = vector.buffered_store_tail,
  tail_helpers = vector.buffered_tails,
}
