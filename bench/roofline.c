/* roofline.c — how fast one core multiplies a matrix by a vector when the matrix streams from
 * L1, L2 or L3: the ceiling of a batch-1 recurrent step, whose W_hh h_{t-1} is exactly that.
 *
 * y[M] = W[M][K] x[K] with W packed in panels of LANES rows, the way rnnc packs W_hh: ACC
 * accumulators (ACC panels of rows) per pass, in S streams of ACC/S panels that are contiguous
 * per k ([M/(LANES*ACC)][S][K][ACC/S][LANES]); per k one broadcast of x[k], ACC vector loads and
 * ACC FMAs. Several (ACC, S) variants run, since which one the hardware streams best differs by
 * level and machine, and the fastest counts: the roofline is an upper bound. The working set of
 * each level is a fraction of that cache's size read from sysfs (half of L1D and L2, a quarter of
 * L3, at most 16 MiB), so the weights stay in that level and no nearer one. Calls are
 * independent (y does not feed x), so this is a throughput ceiling, not a latency.
 *
 * Prints one JSON object: for each level its bytes and GFLOP/s (a multiply-add counts 2) of the
 * best AVX-512 and AVX2 variants and of the best overall; each the best of REPEATS timed runs of
 * >= 20 ms. Built by bench/Makefile. */
#define _POSIX_C_SOURCE 199309L
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPEATS 3
#define MIN_RUN_S 0.02

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Size in bytes of the data or unified cache of the given level for cpu0 (0 when unknown). */
static long cache_bytes(int level)
{
    for (int index = 0; index < 8; index++) {
        char path[128], buf[64];
        long got = 0;
        int lvl = 0;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", index);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fscanf(f, "%d", &lvl) != 1) lvl = 0;
        fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", index);
        if (!(f = fopen(path, "r"))) continue;
        if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
        fclose(f);
        if (lvl != level || strncmp(buf, "Instruction", 11) == 0) continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", index);
        if (!(f = fopen(path, "r"))) continue;
        char unit = 0;
        if (fscanf(f, "%ld%c", &got, &unit) >= 1) {
            if (unit == 'K') got <<= 10;
            else if (unit == 'M') got <<= 20;
        }
        fclose(f);
        return got;
    }
    return 0;
}

#define MATVEC(NAME, TARGET, VEC, LANES, ZERO, LOAD, SET1, FMA, STORE, ACC, S)                       \
    __attribute__((target(TARGET))) static void NAME(const float *w, const float *x, float *y, int M, \
                                                     int K)                                          \
    {                                                                                                \
        enum { PER = (ACC) / (S) };                                                                  \
        for (int p = 0; p < M / LANES; p += ACC) {                                                   \
            const float *block = w + (size_t)p * K * LANES;                                          \
            VEC acc[ACC];                                                                            \
            for (int j = 0; j < ACC; j++) acc[j] = ZERO();                                           \
            for (int k = 0; k < K; k++) {                                                            \
                VEC xk = SET1(x[k]);                                                                 \
                _Pragma("GCC unroll 16") for (int j = 0; j < ACC; j++) acc[j] =                      \
                    FMA(LOAD(block + (size_t)(j / PER) * K * PER * LANES +                           \
                             ((size_t)k * PER + j % PER) * LANES),                                   \
                        xk, acc[j]);                                                                 \
            }                                                                                        \
            for (int j = 0; j < ACC; j++) STORE(y + (size_t)(p + j) * LANES, acc[j]);                \
        }                                                                                            \
    }

#define MATVEC512(NAME, ACC, S)                                                                      \
    MATVEC(NAME, "avx512f,fma", __m512, 16, _mm512_setzero_ps, _mm512_load_ps, _mm512_set1_ps,       \
           _mm512_fmadd_ps, _mm512_store_ps, ACC, S)
#define MATVEC256(NAME, ACC, S)                                                                      \
    MATVEC(NAME, "avx2,fma", __m256, 8, _mm256_setzero_ps, _mm256_load_ps, _mm256_set1_ps,           \
           _mm256_fmadd_ps, _mm256_store_ps, ACC, S)
MATVEC512(mv512_a4s1, 4, 1)
MATVEC512(mv512_a8s2, 8, 2)
MATVEC512(mv512_a16s1, 16, 1)
MATVEC512(mv512_a16s2, 16, 2)
MATVEC256(mv256_a4s1, 4, 1)
MATVEC256(mv256_a8s1, 8, 1)
MATVEC256(mv256_a8s2, 8, 2)
MATVEC256(mv256_a16s2, 16, 2)

typedef void (*matvec_fn)(const float *, const float *, float *, int, int);

/* GFLOP/s of fn on an M x K matrix: calls back to back for >= MIN_RUN_S, best of REPEATS runs
 * after one untimed run that brings the matrix into the cache. */
static double measure(matvec_fn fn, const float *w, const float *x, float *y, int M, int K, float *sink)
{
    double best = 0;
    long calls = 1;
    fn(w, x, y, M, K);
    for (int r = 0; r < REPEATS;) {
        double t0 = seconds();
        for (long c = 0; c < calls; c++) fn(w, x, y, M, K);
        double t = seconds() - t0;
        *sink += y[0];
        if (t < MIN_RUN_S) {
            calls = (long)(calls * (t > 0 ? 1.5 * MIN_RUN_S / t : 100)) + 1;
            continue;
        }
        double g = 2.0 * M * K * calls / t / 1e9;
        if (g > best) best = g;
        r++;
    }
    return best;
}

typedef struct variant {
    const char *isa;
    matvec_fn fn;
} variant;

static const variant variants[] = {
    {"avx512", mv512_a4s1}, {"avx512", mv512_a8s2}, {"avx512", mv512_a16s1}, {"avx512", mv512_a16s2},
    {"avx2", mv256_a4s1},   {"avx2", mv256_a8s1},   {"avx2", mv256_a8s2},    {"avx2", mv256_a16s2},
};

int main(void)
{
    /* rows: a multiple of 16 lanes x 16 accumulators */
    static const struct {
        const char *name;
        int level, rows;
        long fallback;
        double fraction;
    } levels[] = {{"l1", 1, 256, 32L << 10, 0.5}, {"l2", 2, 512, 512L << 10, 0.5}, {"l3", 3, 2048, 8L << 20, 0.25}};
    __builtin_cpu_init();
    const int has512 = __builtin_cpu_supports("avx512f"),
              has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    float sink = 0;
    printf("{");
    for (int i = 0; i < 3; i++) {
        long cache = cache_bytes(levels[i].level);
        long bytes = cache > 0 ? (long)(cache * levels[i].fraction) : levels[i].fallback;
        if (bytes > (16L << 20)) bytes = 16L << 20;
        const int M = levels[i].rows;
        int K = (int)(bytes / 4 / M);
        bytes = 4L * M * K;
        float *w = aligned_alloc(64, (size_t)bytes), *x = aligned_alloc(64, (size_t)K * 4),
              *y = aligned_alloc(64, (size_t)M * 4);
        if (!w || !x || !y) {
            fprintf(stderr, "roofline: out of memory\n");
            return 2;
        }
        for (long j = 0; j < (long)M * K; j++) w[j] = (float)((j % 7) - 3) * 1e-3f;
        for (int k = 0; k < K; k++) x[k] = 1.0f / (float)(k + 1);
        double g512 = 0, g2 = 0;
        for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
            int is512 = variants[v].isa[3] == '5';
            if (is512 ? !has512 : !has2) continue;
            double g = measure(variants[v].fn, w, x, y, M, K, &sink);
            if (is512 && g > g512) g512 = g;
            if (!is512 && g > g2) g2 = g;
        }
        printf("%s\"%s_bytes\": %ld, \"%s_cache_bytes\": %ld, \"%s_avx512_gflops\": %.1f, "
               "\"%s_avx2_gflops\": %.1f, \"%s_gflops\": %.1f",
               i ? ", " : "", levels[i].name, bytes, levels[i].name, cache, levels[i].name, g512,
               levels[i].name, g2, levels[i].name, g512 > g2 ? g512 : g2);
        free(w);
        free(x);
        free(y);
    }
    printf(", \"sink\": %d}\n", sink != 0);
    return 0;
}
