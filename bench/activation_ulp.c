/* activation_ulp.c — the worst error, in ulp, of the vector activations rnnc generates (f32), over
 * every float: SLEEF's 1.0-ulp and 3.5-ulp tanh and sigmoid(x) = 1/(1 + exp(-x)) with its 1.0-ulp
 * exp, against tanh and exp in double. Outputs that are not normal floats (a sigmoid below 2^-126)
 * are left out: there a ulp is no longer relative to the value. README.md (math) quotes the
 * results; `make -C bench activation-ulp` runs it (about a minute per function on one core). */
#include <immintrin.h>
#include <math.h>
#include <sleef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if defined(__AVX512F__)
enum { LANES = 16 };
typedef __m512 vec;
#define LOAD _mm512_loadu_ps
#define STORE _mm512_storeu_ps
#define TANH_U10 Sleef_tanhf16_u10avx512f
#define TANH_U35 Sleef_tanhf16_u35avx512f
#define EXP_U10 Sleef_expf16_u10avx512f
#define SIGMOID(v) _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), \
    EXP_U10(_mm512_sub_ps(_mm512_setzero_ps(), (v)))))
#elif defined(__AVX2__)
enum { LANES = 8 };
typedef __m256 vec;
#define LOAD _mm256_loadu_ps
#define STORE _mm256_storeu_ps
#define TANH_U10 Sleef_tanhf8_u10avx2
#define TANH_U35 Sleef_tanhf8_u35avx2
#define EXP_U10 Sleef_expf8_u10avx2
#define SIGMOID(v) _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), \
    EXP_U10(_mm256_sub_ps(_mm256_setzero_ps(), (v)))))
#else
#error "compile with -mavx512f -mfma or -mavx2 -mfma"
#endif

/* |got - exact| in units of the float spacing at exact; negative: the output is not normal. */
static double ulp_error(float got, double exact) {
  if (fabs(exact) < 0x1p-126) return -1.0;
  int e;
  frexp(exact, &e);
  return fabs((double)got - exact) / ldexp(1.0, e - 24);
}

static double exact_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

int main(void) {
  const char *names[] = { "tanh (SLEEF u10, math = \"accurate\")", "tanh (SLEEF u35, math = \"fast\")",
                          "sigmoid 1/(1 + exp(-x)) (SLEEF exp u10, both)" };
  for (int f = 0; f < 3; f++) {
    double worst = 0.0;
    float worst_x = 0.0f;
    for (uint64_t bits = 0; bits < (UINT64_C(1) << 32); bits += LANES) {
      float x[LANES], y[LANES];
      for (int j = 0; j < LANES; j++) {
        uint32_t b = (uint32_t)(bits + (uint64_t)j);
        memcpy(&x[j], &b, sizeof b);
      }
      vec v = LOAD(x);
      STORE(y, f == 0 ? TANH_U10(v) : f == 1 ? TANH_U35(v) : SIGMOID(v));
      for (int j = 0; j < LANES; j++) {
        if (isnan(x[j])) {
          if (!isnan(y[j])) { printf("%s: NaN in, %a out\n", names[f], (double)y[j]); return 1; }
          continue;
        }
        double exact = f == 2 ? exact_sigmoid((double)x[j]) : tanh((double)x[j]);
        double err = ulp_error(y[j], exact);
        if (err > worst) { worst = err; worst_x = x[j]; }
      }
    }
    printf("%-48s worst %.3f ulp (at x = %a)\n", names[f], worst, (double)worst_x);
  }
  return 0;
}
