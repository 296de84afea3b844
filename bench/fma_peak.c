/* fma_peak.c — the machine's single-core FMA peak: independent chains of vector FMAs on values
 * held in registers, as many as hide the FMA latency, for each ISA this CPU runs.
 * Prints GFLOP/s (a multiply-add counts 2) as one JSON object. Built by bench/Makefile.
 * sse4 and scalar have no FMA instruction (rnnc's sse4 and scalar backends are compiled without
 * -mfma): their peak is that of a multiply followed by an add, two instructions per pair. */
#define _POSIX_C_SOURCE 199309L
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define ROUNDS 20000000L
#define REPEATS 5 /* the best of several runs: another process may share the core */

/* One function per ISA: CHAINS accumulators, each a*x + b on its own, so the loop is bound by
 * FMA throughput, not latency. The result is printed so the work cannot be dropped. */
#define PEAK(NAME, TARGET, VEC, SET1, FMA, LANES, REDUCE, CHAINS)                                       \
    __attribute__((target(TARGET), optimize("no-tree-vectorize"))) static double NAME(float *sink)   \
    {                                                                                                \
        VEC acc[CHAINS];                                                                             \
        for (int i = 0; i < CHAINS; i++) acc[i] = SET1(1.0f + i * 1e-3f);                            \
        const VEC a = SET1(0.999999f), b = SET1(1e-7f);                                              \
        double t0 = seconds();                                                                       \
        for (long r = 0; r < ROUNDS; r++)                                                            \
            _Pragma("GCC unroll 32")                                                                 \
            for (int i = 0; i < CHAINS; i++) acc[i] = FMA(acc[i], a, b);                             \
        double t = seconds() - t0;                                                                   \
        float s = 0;                                                                                 \
        for (int i = 0; i < CHAINS; i++) s += REDUCE(acc[i]);                                        \
        *sink += s;                                                                                  \
        return 2.0 * LANES * CHAINS * ROUNDS / t / 1e9;                                              \
    }

/* The same without FMA: a multiply and a dependent add per pair, as the sse4 and scalar backends
 * compute. Floating-point contraction is off (-ffp-contract=off in bench/Makefile, and the
 * pragma), so the compiler cannot fuse them. */
#pragma GCC optimize("fp-contract=off")
#define MULADD_PS(x, a, b) _mm_add_ps(_mm_mul_ps((x), (a)), (b))
#define MULADD_SS(x, a, b) ((x) * (a) + (b))
#define SET1_SS(v) (v)
#define REDUCE_SS(v) (v)

__attribute__((target("avx512f"))) static float reduce512(__m512 v) { return _mm512_reduce_add_ps(v); }
__attribute__((target("avx2,fma"))) static float reduce256(__m256 v)
{
    float t[8];
    _mm256_storeu_ps(t, v);
    return t[0] + t[7];
}

__attribute__((target("sse4.1"))) static float reduce128(__m128 v)
{
    float t[4];
    _mm_storeu_ps(t, v);
    return t[0] + t[3];
}

/* 16 chains of 32 vector registers for AVX-512, 12 of 16 for AVX2 (two hold the constants);
 * without FMA each chain is a multiply then an add (latency 3 + 2 or so): 12 chains, 16 registers.
 * Auto-vectorization is off so that the scalar chains stay scalar. */
PEAK(peak_avx512, "avx512f,fma", __m512, _mm512_set1_ps, _mm512_fmadd_ps, 16, reduce512, 16)
PEAK(peak_avx2, "avx2,fma", __m256, _mm256_set1_ps, _mm256_fmadd_ps, 8, reduce256, 12)
PEAK(peak_sse4, "sse4.1", __m128, _mm_set1_ps, MULADD_PS, 4, reduce128, 12)
PEAK(peak_scalar, "default", float, SET1_SS, MULADD_SS, 1, REDUCE_SS, 12)

static double best(double (*peak)(float *), float *sink)
{
    double top = 0;
    for (int i = 0; i < REPEATS; i++) {
        double g = peak(sink);
        if (g > top) top = g;
    }
    return top;
}

int main(void)
{
    float sink = 0;
    __builtin_cpu_init();
    printf("{");
    const char *sep = "";
    if (__builtin_cpu_supports("avx512f")) {
        printf("%s\"avx512_f32_gflops\": %.1f", sep, best(peak_avx512, &sink));
        sep = ", ";
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        printf("%s\"avx2_f32_gflops\": %.1f", sep, best(peak_avx2, &sink));
        sep = ", ";
    }
    if (__builtin_cpu_supports("sse4.1")) {
        printf("%s\"sse4_f32_gflops\": %.1f", sep, best(peak_sse4, &sink));
        sep = ", ";
    }
    printf("%s\"scalar_f32_gflops\": %.1f", sep, best(peak_scalar, &sink));
    sep = ", ";
    printf("%s\"sink\": %g}\n", sep, (double)(sink != 0));
    return 0;
}
