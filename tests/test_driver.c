/* test_driver.c — the generic driver (runtime/nnrt_driver.c) against hand-written models.
 *
 * The models here are tiny and linear so every expected value can be worked out by hand:
 *   h_t = W x_t + b + h_{t-1},  y_t = h_t        (input 2, output 2, batch 2, seq_len 3)
 * with W = rnn.weight_ih_l0 [2, 2] and b = rnn.bias_ih_l0 [2]. Variants: f32 with outputs at
 * every step, f32 with the output after the last step, f64, and one whose forward fails on its
 * second call. Each forward logs the T it was called with, so chunking is visible.
 *
 * The driver runs in-process with argv arrays; files live in a mkdtemp directory per test;
 * stdout and stderr are captured to assert on messages.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, dup, dup2 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nnrt.h"

Suite *driver_suite(void);

/* ---- The tiny models ---------------------------------------------------------------------- */

enum { TINY_I = 2, TINY_O = 2, TINY_B = 2, TINY_SEQ = 3 };
enum { TINY_W = 0, TINY_BIAS = 4, TINY_NPARAMS = 6 }; /* offsets in the flat parameter array */

static int fwd_calls[64]; /* T of each forward call since the last reset of the log */
static int fwd_ncalls;

static double ld(const void *p, size_t i, int f64) {
    return f64 ? ((const double *)p)[i] : ((const float *)p)[i];
}

static void st(void *p, size_t i, int f64, double v) {
    if (f64)
        ((double *)p)[i] = v;
    else
        ((float *)p)[i] = (float)v;
}

static void tiny_reset_f32(void *state) { memset(state, 0, sizeof(float) * TINY_B * TINY_O); }
static void tiny_reset_f64(void *state) { memset(state, 0, sizeof(double) * TINY_B * TINY_O); }

/* One step for all B rows: work = W x + b; h += work; y = h. */
static void tiny_step_any(int f64, const void *p, void *s, void *work, const void *x, void *y) {
    for (int b = 0; b < TINY_B; b++)
        for (int o = 0; o < TINY_O; o++) {
            double acc = ld(p, TINY_BIAS + o, f64);
            for (int i = 0; i < TINY_I; i++)
                acc += ld(p, TINY_W + o * TINY_I + i, f64) * ld(x, b * TINY_I + i, f64);
            st(work, b * TINY_O + o, f64, acc);
        }
    for (int k = 0; k < TINY_B * TINY_O; k++) {
        st(s, k, f64, ld(s, k, f64) + ld(work, k, f64));
        if (y) st(y, k, f64, ld(s, k, f64));
    }
}

static int tiny_forward_any(int f64, int last, int seq_len, const void *p, void *s, void *work,
                            int T, const void *x, void *y) {
    if (T < 1 || T > seq_len)
        return nnrt_fail(NNRT_ERR_ARG, "tiny: T = %d outside 1..%d", T, seq_len);
    if (fwd_ncalls < (int)(sizeof fwd_calls / sizeof fwd_calls[0])) fwd_calls[fwd_ncalls++] = T;
    size_t es = f64 ? sizeof(double) : sizeof(float);
    for (int t = 0; t < T; t++) {
        const char *xt = (const char *)x + (size_t)t * TINY_B * TINY_I * es;
        char *yt = (char *)y + (last ? 0 : (size_t)t * TINY_B * TINY_O * es);
        tiny_step_any(f64, p, s, work, xt, last && t < T - 1 ? NULL : yt);
    }
    return NNRT_OK;
}

static void tiny_step_f32(const void *p, void *s, const void *x, void *y) {
    float work[TINY_B * TINY_O];
    tiny_step_any(0, p, s, work, x, y);
}

static void tiny_step_f64(const void *p, void *s, const void *x, void *y) {
    double work[TINY_B * TINY_O];
    tiny_step_any(1, p, s, work, x, y);
}

static int tiny_forward_f32(const void *p, void *s, void *w, int T, const void *x, void *y) {
    return tiny_forward_any(0, 0, TINY_SEQ, p, s, w, T, x, y);
}

static int tiny_forward_f32_last(const void *p, void *s, void *w, int T, const void *x, void *y) {
    return tiny_forward_any(0, 1, TINY_SEQ, p, s, w, T, x, y);
}

static int tiny_forward_f64(const void *p, void *s, void *w, int T, const void *x, void *y) {
    return tiny_forward_any(1, 0, TINY_SEQ, p, s, w, T, x, y);
}

/* Fails like a generated forward that meets a NaN: on its second call. */
static int tiny_forward_fails(const void *p, void *s, void *w, int T, const void *x, void *y) {
    if (fwd_ncalls == 1) return nnrt_fail(NNRT_ERR_NUMERIC, "tiny: non-finite state at step 3");
    return tiny_forward_any(0, 0, TINY_SEQ, p, s, w, T, x, y);
}

/* The same model with seq_len 16: one call where the others need chunks. */
static int tiny_forward_long(const void *p, void *s, void *w, int T, const void *x, void *y) {
    return tiny_forward_any(0, 0, 16, p, s, w, T, x, y);
}

static const nnrt_layer_desc tiny_layers[] = {{NNRT_CELL_RNN_TANH, TINY_I, TINY_O}};
static const nnrt_param_desc tiny_tensors[] = {
    {"rnn.weight_ih_l0", 2, {TINY_O, TINY_I}, TINY_W, (TINY_O * TINY_I), 0.70710678118654752},
    {"rnn.bias_ih_l0", 1, {TINY_O, 0}, TINY_BIAS, TINY_O, 0.70710678118654752},
};

#define TINY_MODEL(dt, real, last, seq, reset_fn, step_fn, forward_fn)                             \
    {                                                                                              \
        .abi_version = NNRT_ABI_VERSION, .name = "tiny", .isa = "scalar", .dtype = dt,             \
        .input = TINY_I, .output = TINY_O, .seq_len = seq, .batch = TINY_B, .output_last = last,   \
        .loss_kind = NNRT_LOSS_MSE, .num_layers = 1, .layers = tiny_layers, .num_heads = 0,             \
        .heads = NULL, .num_params = TINY_NPARAMS, .num_tensors = 2, .tensors = tiny_tensors,      \
        .params_bytes = TINY_NPARAMS * sizeof(real),                                               \
        .state_bytes = TINY_B * TINY_O * sizeof(real),                                             \
        .work_bytes = TINY_B * TINY_O * sizeof(real), .reset = reset_fn, .step = step_fn,          \
        .forward = forward_fn                                                                      \
    }

static const nnrt_model tiny =
    TINY_MODEL(NNRT_F32, float, 0, TINY_SEQ, tiny_reset_f32, tiny_step_f32, tiny_forward_f32);
static const nnrt_model tiny_last =
    TINY_MODEL(NNRT_F32, float, 1, TINY_SEQ, tiny_reset_f32, tiny_step_f32, tiny_forward_f32_last);
static const nnrt_model tiny64 =
    TINY_MODEL(NNRT_F64, double, 0, TINY_SEQ, tiny_reset_f64, tiny_step_f64, tiny_forward_f64);
static const nnrt_model tiny_fails =
    TINY_MODEL(NNRT_F32, float, 0, TINY_SEQ, tiny_reset_f32, tiny_step_f32, tiny_forward_fails);
static const nnrt_model tiny_long =
    TINY_MODEL(NNRT_F32, float, 0, 16, tiny_reset_f32, tiny_step_f32, tiny_forward_long);

/* The recurrence in double over all T steps at once: y[T][B][O]. */
static void reference(const double *params, int T, const double *x, double *y) {
    double h[TINY_B * TINY_O] = {0};
    for (int t = 0; t < T; t++)
        for (int b = 0; b < TINY_B; b++)
            for (int o = 0; o < TINY_O; o++) {
                double acc = params[TINY_BIAS + o];
                for (int i = 0; i < TINY_I; i++)
                    acc += params[TINY_W + o * TINY_I + i] * x[(t * TINY_B + b) * TINY_I + i];
                h[b * TINY_O + o] += acc;
                y[(t * TINY_B + b) * TINY_O + o] = h[b * TINY_O + o];
            }
}

/* ---- Files and running the driver ------------------------------------------------------------ */

static char tmpdir[64];

static void setup(void) {
    strcpy(tmpdir, "/tmp/rnnc_driver_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    fwd_ncalls = 0;
}

static void teardown(void) {
    DIR *d = opendir(tmpdir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(tmpdir);
}

/* A path inside the test directory; the last 8 results stay valid. */
static const char *P(const char *name) {
    static char ring[8][512];
    static int next;
    char *p = ring[next++ % 8];
    snprintf(p, sizeof ring[0], "%s/%s", tmpdir, name);
    return p;
}

static int compare_names(const void *a, const void *b) { return strcmp(a, b); }

/* Names in the test directory, sorted, joined with spaces: shows stray temporaries. */
static const char *listing(void) {
    static char out[1024];
    char names[32][256];
    int n = 0;
    DIR *d = opendir(tmpdir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 32) {
        if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || strcmp(e->d_name, "..") == 0)) continue;
        snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], compare_names);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i) strcat(out, " ");
        strncat(out, names[i], sizeof out - strlen(out) - 2);
    }
    return out;
}

static int exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static char g_out[8192], g_err[8192]; /* what the last run printed */

static void slurp(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(path);
}

/* Runs `tiny ARGS...` (NULL-terminated) with stdout and stderr captured into g_out and g_err;
 * returns the exit code. */
static int run(const nnrt_model *m, ...) {
    char *argv[32] = {(char *)"tiny"};
    int argc = 1;
    va_list ap;
    va_start(ap, m);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 31) argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;

    /* Capture files sit beside tmpdir, not in it, so listing() sees only the driver's files. */
    char out_path[128], err_path[128];
    snprintf(out_path, sizeof out_path, "%s.out", tmpdir);
    snprintf(err_path, sizeof err_path, "%s.err", tmpdir);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert(saved_out >= 0 && saved_err >= 0 && fo >= 0 && fe >= 0);
    dup2(fo, 1);
    dup2(fe, 2);
    close(fo);
    close(fe);
    int rc = nnrt_driver_main(m, argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    slurp(out_path, g_out, sizeof g_out);
    slurp(err_path, g_err, sizeof g_err);
    return rc;
}

/* Writes an array of dtype dt (any of the four) with the given shape from double values. */
static void write_npy(const char *path, nnrt_dtype dt, int ndim, const int64_t *shape,
                      const double *vals) {
    nnrt_array a = {.dtype = dt, .ndim = ndim, .count = 1};
    for (int d = 0; d < ndim; d++) a.shape[d] = shape[d], a.count *= (size_t)shape[d];
    a.data = nnrt_alloc(a.count * nnrt_dtype_size(dt));
    ck_assert_ptr_nonnull(a.data);
    for (size_t i = 0; i < a.count; i++) {
        switch (dt) {
        case NNRT_F32: ((float *)a.data)[i] = (float)vals[i]; break;
        case NNRT_F64: ((double *)a.data)[i] = vals[i]; break;
        case NNRT_I32: ((int32_t *)a.data)[i] = (int32_t)vals[i]; break;
        case NNRT_I64: ((int64_t *)a.data)[i] = (int64_t)vals[i]; break;
        }
    }
    ck_assert_int_eq(nnrt_npy_write(path, &a), NNRT_OK);
    nnrt_array_free(&a);
}

/* x of shape [T][B][I] (dtype dt) with deterministic values in [-1, 1), returned in xs. */
static void write_x(const char *path, nnrt_dtype dt, int T, double *xs) {
    uint64_t s = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < T * TINY_B * TINY_I; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        xs[i] = (double)(s >> 11) / 9007199254740992.0 * 2 - 1;
    }
    int64_t shape[3] = {T, TINY_B, TINY_I};
    write_npy(path, dt, 3, shape, xs);
}

/* Weights W = [[1, 2], [3, 4]], b = [0.5, -0.5] written by hand, in dtype dt. */
static const double known_params[TINY_NPARAMS] = {1, 2, 3, 4, 0.5, -0.5};

static void write_known_weights(const char *path, nnrt_dtype dt) {
    float w32[TINY_NPARAMS];
    double w64[TINY_NPARAMS];
    for (int i = 0; i < TINY_NPARAMS; i++)
        w32[i] = (float)known_params[i], w64[i] = known_params[i];
    char *base = dt == NNRT_F64 ? (char *)w64 : (char *)w32;
    size_t es = nnrt_dtype_size(dt);
    nnrt_tensor t[2] = {
        {"rnn.weight_ih_l0", dt, 2, {TINY_O, TINY_I}, base + TINY_W * es},
        {"rnn.bias_ih_l0", dt, 1, {TINY_O}, base + TINY_BIAS * es},
    };
    ck_assert_int_eq(nnrt_safetensors_write(path, t, 2), NNRT_OK);
}

/* Reads path, which must have the given dtype and shape, and compares it with ref using
 * |got - ref| <= atol + rtol*|ref|; the first mismatches are reported as [t][b][o]. */
static void check_npy(const char *path, nnrt_dtype dt, int ndim, const int64_t *shape,
                      const double *ref, double atol, double rtol) {
    nnrt_array y;
    ck_assert_msg(nnrt_npy_read(path, &y) == NNRT_OK, "%s", nnrt_last_error());
    ck_assert_int_eq(y.dtype, dt);
    ck_assert_int_eq(y.ndim, ndim);
    for (int d = 0; d < ndim; d++) ck_assert_int_eq(y.shape[d], shape[d]);
    char msg[1024] = "";
    int bad = 0;
    for (size_t i = 0; i < y.count; i++) {
        double got = ld(y.data, i, dt == NNRT_F64);
        if (fabs(got - ref[i]) <= atol + rtol * fabs(ref[i])) continue;
        if (bad++ < 5) {
            size_t len = strlen(msg);
            snprintf(msg + len, sizeof msg - len, " [t %zu][b %zu][o %zu] got %.9g want %.9g;",
                     i / (TINY_B * TINY_O), i / TINY_O % TINY_B, i % TINY_O, got, ref[i]);
        }
    }
    nnrt_array_free(&y);
    ck_assert_msg(bad == 0, "%s: %d mismatches:%s", path, bad, msg);
}

static int file_equals(const char *path, const char *content) {
    char buf[256];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n == strlen(content) && memcmp(buf, content, n) == 0;
}

static void write_text(const char *path, const char *content) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(content, f);
    fclose(f);
}

/* `tiny forward -w W -i X -o Y` with the three files in the test directory. */
#define FORWARD(m, w, x, y) run(m, "forward", "-w", P(w), "-i", P(x), "-o", P(y), NULL)

#define ERR_PREFIX "tiny: error: "
#define ASSERT_ERR_STARTS(text)                                                                    \
    ck_assert_msg(strncmp(g_err, ERR_PREFIX text, strlen(ERR_PREFIX text)) == 0, "stderr: %s",     \
                  g_err)
#define ASSERT_ERR_HAS(text) ck_assert_msg(strstr(g_err, text) != NULL, "stderr: %s", g_err)

/* ---- init ---------------------------------------------------------------------------------- */

START_TEST(test_init_default_seed_is_zero) {
    ck_assert_int_eq(run(&tiny, "init", "-o", P("w.safetensors"), NULL), 0);
    ck_assert_str_eq(g_err, "");
    ck_assert_str_eq(g_out, "");
    float got[TINY_NPARAMS], want[TINY_NPARAMS];
    ck_assert_msg(nnrt_model_load(&tiny, got, P("w.safetensors")) == NNRT_OK, "%s",
                  nnrt_last_error());
    nnrt_model_init(&tiny, want, 0);
    ck_assert_mem_eq(got, want, sizeof got);
    for (int i = 0; i < TINY_NPARAMS; i++) ck_assert(fabsf(got[i]) <= 0.70710678f);
    ck_assert_str_eq(listing(), "w.safetensors");
}
END_TEST

START_TEST(test_init_seed) {
    float a[TINY_NPARAMS], b[TINY_NPARAMS], want[TINY_NPARAMS];
    ck_assert_int_eq(run(&tiny, "init", "--seed", "7", "-o", P("a.safetensors"), NULL), 0);
    ck_assert_int_eq(
        run(&tiny, "init", "-o", P("b.safetensors"), "--seed", "18446744073709551615", NULL), 0);
    ck_assert_int_eq(nnrt_model_load(&tiny, a, P("a.safetensors")), NNRT_OK);
    ck_assert_int_eq(nnrt_model_load(&tiny, b, P("b.safetensors")), NNRT_OK);
    nnrt_model_init(&tiny, want, 7);
    ck_assert_mem_eq(a, want, sizeof a);
    nnrt_model_init(&tiny, want, UINT64_MAX);
    ck_assert_mem_eq(b, want, sizeof b);
    ck_assert(memcmp(a, b, sizeof a) != 0);
}
END_TEST

START_TEST(test_init_then_forward) {
    double xs[5 * TINY_B * TINY_I], ref[5 * TINY_B * TINY_O], params[TINY_NPARAMS];
    float loaded[TINY_NPARAMS];
    ck_assert_int_eq(run(&tiny, "init", "--seed", "3", "-o", P("w.safetensors"), NULL), 0);
    write_x(P("x.npy"), NNRT_F32, 5, xs);
    ck_assert_int_eq(FORWARD(&tiny, "w.safetensors", "x.npy", "y.npy"), 0);
    ck_assert_str_eq(g_err, "");
    ck_assert_int_eq(nnrt_model_load(&tiny, loaded, P("w.safetensors")), NNRT_OK);
    for (int i = 0; i < TINY_NPARAMS; i++) params[i] = loaded[i];
    for (int i = 0; i < 5 * TINY_B * TINY_I; i++) xs[i] = (float)xs[i]; /* what the file holds */
    reference(params, 5, xs, ref);
    check_npy(P("y.npy"), NNRT_F32, 3, (int64_t[]){5, TINY_B, TINY_O}, ref, 1e-5, 1e-5);
    ck_assert_str_eq(listing(), "w.safetensors x.npy y.npy");
}
END_TEST

/* ---- forward ----------------------------------------------------------------------------- */

/* x for batch rows 0 and 1: t0: (1, 0), (0, 1); t1: (1, 1), (0, 0). By hand:
 * t0: W(1,0)+b = (1.5, 2.5), W(0,1)+b = (2.5, 3.5); t1: (3.5, 6.5)+(1.5, 2.5) = (5, 9),
 * b + (2.5, 3.5) = (3, 3). */
static const double known_x[] = {1, 0, 0, 1, 1, 1, 0, 0};
static const double known_y[] = {1.5, 2.5, 2.5, 3.5, 5, 9, 3, 3};

START_TEST(test_forward_known_values) {
    write_known_weights(P("w.safetensors"), NNRT_F32);
    write_npy(P("x.npy"), NNRT_F32, 3, (int64_t[]){2, TINY_B, TINY_I}, known_x);
    ck_assert_int_eq(FORWARD(&tiny, "w.safetensors", "x.npy", "y.npy"), 0);
    ck_assert_str_eq(g_err, "");
    check_npy(P("y.npy"), NNRT_F32, 3, (int64_t[]){2, TINY_B, TINY_O}, known_y, 0, 0);
    ck_assert_int_eq(fwd_ncalls, 1);
    ck_assert_int_eq(fwd_calls[0], 2);
}
END_TEST

START_TEST(test_forward_f64_model) {
    write_known_weights(P("w.safetensors"), NNRT_F64);
    write_npy(P("x.npy"), NNRT_F64, 3, (int64_t[]){2, TINY_B, TINY_I}, known_x);
    ck_assert_int_eq(FORWARD(&tiny64, "w.safetensors", "x.npy", "y.npy"), 0);
    check_npy(P("y.npy"), NNRT_F64, 3, (int64_t[]){2, TINY_B, TINY_O}, known_y, 0, 0);
    /* and the f64 model refuses float32 data and float32 weights */
    write_npy(P("x32.npy"), NNRT_F32, 3, (int64_t[]){2, TINY_B, TINY_I}, known_x);
    ck_assert_int_eq(FORWARD(&tiny64, "w.safetensors", "x32.npy", "z.npy"), 1);
    ASSERT_ERR_HAS("x32.npy: expected dtype float64, found float32");
    write_known_weights(P("w32.safetensors"), NNRT_F32);
    ck_assert_int_eq(FORWARD(&tiny64, "w32.safetensors", "x.npy", "z.npy"), 1);
    ASSERT_ERR_STARTS("");
    ck_assert(!exists(P("z.npy")));
}
END_TEST

START_TEST(test_forward_in_place) {
    /* -o may name the input: it is read completely before the output replaces it. */
    write_known_weights(P("w.safetensors"), NNRT_F32);
    write_npy(P("x.npy"), NNRT_F32, 3, (int64_t[]){2, TINY_B, TINY_I}, known_x);
    ck_assert_int_eq(FORWARD(&tiny, "w.safetensors", "x.npy", "x.npy"), 0);
    check_npy(P("x.npy"), NNRT_F32, 3, (int64_t[]){2, TINY_B, TINY_O}, known_y, 0, 0);
}
END_TEST

/* ---- chunks: T > seq_len ----------------------------------------------------------------- */

/* Runs forward over T random steps and checks the forward calls against the expected chunk
 * sizes, y against the reference, and y against one call of the seq_len 16 model, bit for bit. */
static void check_chunks(int T, const int *chunks, int nchunks) {
    double xs[16 * TINY_B * TINY_I], ref[16 * TINY_B * TINY_O];
    write_known_weights(P("w.safetensors"), NNRT_F32);
    write_x(P("x.npy"), NNRT_F32, T, xs);
    for (int i = 0; i < T * TINY_B * TINY_I; i++) xs[i] = (float)xs[i];
    fwd_ncalls = 0;
    ck_assert_int_eq(FORWARD(&tiny, "w.safetensors", "x.npy", "y.npy"), 0);
    ck_assert_int_eq(fwd_ncalls, nchunks);
    for (int k = 0; k < nchunks; k++) ck_assert_int_eq(fwd_calls[k], chunks[k]);
    reference(known_params, T, xs, ref);
    check_npy(P("y.npy"), NNRT_F32, 3, (int64_t[]){T, TINY_B, TINY_O}, ref, 1e-5, 1e-6);

    nnrt_array chunked, one_pass;
    fwd_ncalls = 0;
    ck_assert_int_eq(FORWARD(&tiny_long, "w.safetensors", "x.npy", "y1.npy"), 0);
    ck_assert_int_eq(fwd_ncalls, 1);
    ck_assert_int_eq(nnrt_npy_read(P("y.npy"), &chunked), NNRT_OK);
    ck_assert_int_eq(nnrt_npy_read(P("y1.npy"), &one_pass), NNRT_OK);
    ck_assert_uint_eq(chunked.count, one_pass.count);
    ck_assert_mem_eq(chunked.data, one_pass.data, chunked.count * sizeof(float));
    nnrt_array_free(&chunked);
    nnrt_array_free(&one_pass);
}

START_TEST(test_chunks_equal_one_pass) {
    check_chunks(1, (int[]){1}, 1);
    check_chunks(3, (int[]){3}, 1);
    check_chunks(6, (int[]){3, 3}, 2);
    check_chunks(7, (int[]){3, 3, 1}, 3);
    check_chunks(16, (int[]){3, 3, 3, 3, 3, 1}, 6);
}
END_TEST

START_TEST(test_output_last) {
    double xs[7 * TINY_B * TINY_I], ref[7 * TINY_B * TINY_O];
    write_known_weights(P("w.safetensors"), NNRT_F32);
    write_x(P("x.npy"), NNRT_F32, 7, xs);
    for (int i = 0; i < 7 * TINY_B * TINY_I; i++) xs[i] = (float)xs[i];
    ck_assert_int_eq(FORWARD(&tiny_last, "w.safetensors", "x.npy", "y.npy"), 0);
    ck_assert_int_eq(fwd_ncalls, 3);
    reference(known_params, 7, xs, ref);
    check_npy(P("y.npy"), NNRT_F32, 2, (int64_t[]){TINY_B, TINY_O}, ref + 6 * TINY_B * TINY_O, 1e-5,
              1e-6);
    /* T <= seq_len: one call, the output after the last step */
    write_npy(P("x2.npy"), NNRT_F32, 3, (int64_t[]){2, TINY_B, TINY_I}, known_x);
    ck_assert_int_eq(FORWARD(&tiny_last, "w.safetensors", "x2.npy", "y2.npy"), 0);
    check_npy(P("y2.npy"), NNRT_F32, 2, (int64_t[]){TINY_B, TINY_O}, known_y + TINY_B * TINY_O, 0,
              0);
}
END_TEST

/* ---- usage errors: exit 2 ---------------------------------------------------------------- */

START_TEST(test_usage_commands) {
    ck_assert_int_eq(run(&tiny, NULL), 2);
    ASSERT_ERR_STARTS("missing command");
    ck_assert_int_eq(run(&tiny, "frobnicate", NULL), 2);
    ASSERT_ERR_STARTS("unknown command 'frobnicate'");
    ck_assert_int_eq(run(&tiny, "Init", "-o", P("w.safetensors"), NULL), 2);
    ck_assert_int_eq(run(&tiny, "grad", NULL), 2); /* not yet: comes with the backward pass */
    ck_assert_str_eq(listing(), "");
}
END_TEST

START_TEST(test_usage_options) {
    ck_assert_int_eq(run(&tiny, "init", NULL), 2);
    ASSERT_ERR_STARTS("init: missing -o W.safetensors");
    ASSERT_ERR_HAS("usage: tiny init [--seed N] -o W.safetensors");
    ck_assert_int_eq(run(&tiny, "init", "-o", NULL), 2);
    ASSERT_ERR_STARTS("init: option -o needs a value");
    ck_assert_int_eq(run(&tiny, "init", "-o", P("w.safetensors"), "--seed", NULL), 2);
    ck_assert_int_eq(run(&tiny, "init", "-o", P("w.safetensors"), "--verbose", NULL), 2);
    ASSERT_ERR_STARTS("init: unknown option '--verbose'");
    ck_assert_int_eq(run(&tiny, "init", "-o", P("w.safetensors"), "extra", NULL), 2);
    ASSERT_ERR_STARTS("init: unexpected argument 'extra'");
    ck_assert_int_eq(run(&tiny, "init", "-o", P("w.safetensors"), "-o", P("v.safetensors"), NULL),
                     2);
    ASSERT_ERR_STARTS("init: option -o given twice");
    ck_assert_int_eq(run(&tiny, "init", "-w", P("w.safetensors"), NULL), 2); /* -w is forward's */
    ck_assert_int_eq(run(&tiny, "forward", "-i", P("x.npy"), "-o", P("y.npy"), NULL), 2);
    ASSERT_ERR_STARTS("forward: missing -w W.safetensors");
    ck_assert_int_eq(run(&tiny, "forward", "-w", P("w.safetensors"), "-o", P("y.npy"), NULL), 2);
    ASSERT_ERR_STARTS("forward: missing -i X.npy");
    ck_assert_int_eq(run(&tiny, "forward", "-w", P("w.safetensors"), "-i", P("x.npy"), NULL), 2);
    ASSERT_ERR_STARTS("forward: missing -o Y.npy");
    ck_assert_int_eq(run(&tiny, "forward", "-w", P("w.safetensors"), "-i", P("x.npy"), "-o",
                         P("y.npy"), "--seed", "1", NULL),
                     2);
    ck_assert_str_eq(listing(), "");
}
END_TEST

START_TEST(test_usage_bad_seed) {
    static const char *const bad[] = {"",
                                      "abc",
                                      "-1",
                                      "+1",
                                      " 1",
                                      "1 ",
                                      "1x",
                                      "0x10",
                                      "1e3",
                                      "1.0",
                                      "18446744073709551616",
                                      "99999999999999999999999"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ck_assert_msg(run(&tiny, "init", "--seed", bad[k], "-o", P("w.safetensors"), NULL) == 2,
                      "seed '%s'", bad[k]);
        ASSERT_ERR_STARTS("option --seed: expected an unsigned 64-bit integer, found '");
    }
    ck_assert_str_eq(listing(), "");
}
END_TEST

START_TEST(test_help) {
    ck_assert_int_eq(run(&tiny, "--help", NULL), 0);
    ck_assert_str_eq(g_err, "");
    ck_assert_ptr_nonnull(strstr(g_out, "tiny init [--seed N] -o W.safetensors"));
    ck_assert_ptr_nonnull(strstr(g_out, "tiny forward -w W.safetensors -i X.npy -o Y.npy"));
    ck_assert_ptr_nonnull(strstr(g_out, "model tiny: isa scalar, precision f32"));
    ck_assert_ptr_nonnull(
        strstr(g_out, "input 2, output 2, seq_len 3, batch 2, output at all, loss mse"));
    ck_assert_ptr_nonnull(strstr(g_out, "0: rnn(tanh) 2 -> 2"));
    ck_assert_ptr_nonnull(strstr(g_out, "head: none"));
    ck_assert_int_eq(run(&tiny64, "-h", NULL), 0);
    ck_assert_ptr_nonnull(strstr(g_out, "precision f64"));
    ck_assert_int_eq(run(&tiny, "forward", "--help", NULL), 0);
    ck_assert_ptr_nonnull(strstr(g_out, "usage: tiny forward -w W.safetensors -i X.npy -o Y.npy"));
    ck_assert_ptr_nonnull(strstr(g_out, "X is float32 [T, 2, 2]"));
    ck_assert_int_eq(run(&tiny_last, "forward", "-h", NULL), 0);
    ck_assert_ptr_nonnull(strstr(g_out, "Y is float32 [2, 2]"));
    ck_assert_int_eq(run(&tiny, "init", "-h", NULL), 0);
    ck_assert_ptr_nonnull(strstr(g_out, "usage: tiny init [--seed N] -o W.safetensors"));
    ck_assert_str_eq(listing(), "");
}
END_TEST

/* ---- bad input: exit 1 --------------------------------------------------------------------- */

START_TEST(test_missing_files) {
    write_known_weights(P("w.safetensors"), NNRT_F32);
    write_npy(P("x.npy"), NNRT_F32, 3, (int64_t[]){2, TINY_B, TINY_I}, known_x);
    ck_assert_int_eq(FORWARD(&tiny, "nope.safetensors", "x.npy", "y.npy"), 1);
    ASSERT_ERR_STARTS("");
    ASSERT_ERR_HAS("nope.safetensors");
    ck_assert_int_eq(FORWARD(&tiny, "w.safetensors", "nope.npy", "y.npy"), 1);
    ASSERT_ERR_HAS("nope.npy");
    ck_assert_int_eq(run(&tiny, "init", "-o", P("no/such/dir/w.safetensors"), NULL), 1);
    ASSERT_ERR_HAS("no/such/dir/w.safetensors");
    ck_assert_str_eq(listing(), "w.safetensors x.npy");
}
END_TEST

START_TEST(test_wrong_dtype) {
    write_known_weights(P("w.safetensors"), NNRT_F32);
    write_npy(P("x.npy"), NNRT_F64, 3, (int64_t[]){2, TINY_B, TINY_I}, known_x);
    ck_assert_int_eq(FORWARD(&tiny, "w.safetensors", "x.npy", "y.npy"), 1);
    char want[600];
    snprintf(want, sizeof want, ERR_PREFIX "%s: expected dtype float32, found float64\n",
             P("x.npy"));
    ck_assert_str_eq(g_err, want);
    write_npy(P("i.npy"), NNRT_I32, 3, (int64_t[]){2, TINY_B, TINY_I}, known_x);
    ck_assert_int_eq(FORWARD(&tiny, "w.safetensors", "i.npy", "y.npy"), 1);
    ASSERT_ERR_HAS("i.npy: expected dtype float32, found int32");
    ck_assert_str_eq(listing(), "i.npy w.safetensors x.npy");
}
END_TEST

START_TEST(test_wrong_shape) {
    static const struct {
        int ndim;
        int64_t shape[4];
        const char *found;
    } cases[] = {
        {3, {64, 2, 3}, "[64, 2, 3]"},     {3, {4, 1, 2}, "[4, 1, 2]"},
        {3, {0, 2, 2}, "[0, 2, 2]"},       {2, {2, 2}, "[2, 2]"},
        {4, {1, 1, 2, 2}, "[1, 1, 2, 2]"}, {0, {0}, "[]"},
    };
    static const double zeros[64 * 2 * 3];
    write_known_weights(P("w.safetensors"), NNRT_F32);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        write_npy(P("x.npy"), NNRT_F32, cases[k].ndim, cases[k].shape, zeros);
        ck_assert_int_eq(FORWARD(&tiny, "w.safetensors", "x.npy", "y.npy"), 1);
        char want[600];
        snprintf(want, sizeof want,
                 ERR_PREFIX "%s: expected shape [T, 2, 2] with 1 <= T, found %s\n", P("x.npy"),
                 cases[k].found);
        ck_assert_str_eq(g_err, want);
    }
    ck_assert_int_eq(fwd_ncalls, 0);
    ck_assert_str_eq(listing(), "w.safetensors x.npy");
}
END_TEST

START_TEST(test_wrong_weights) {
    float w[TINY_NPARAMS] = {0};
    write_npy(P("x.npy"), NNRT_F32, 3, (int64_t[]){2, TINY_B, TINY_I}, known_x);
    /* wrong name */
    nnrt_tensor named[2] = {{"rnn.weight_ih_l0", NNRT_F32, 2, {2, 2}, w},
                            {"rnn.bias_hh_l0", NNRT_F32, 1, {2}, w + 4}};
    ck_assert_int_eq(nnrt_safetensors_write(P("name.safetensors"), named, 2), NNRT_OK);
    ck_assert_int_eq(FORWARD(&tiny, "name.safetensors", "x.npy", "y.npy"), 1);
    ASSERT_ERR_STARTS("");
    ASSERT_ERR_HAS("name.safetensors");
    /* wrong shape */
    nnrt_tensor shaped[2] = {{"rnn.weight_ih_l0", NNRT_F32, 2, {1, 4}, w},
                             {"rnn.bias_ih_l0", NNRT_F32, 1, {2}, w + 4}};
    ck_assert_int_eq(nnrt_safetensors_write(P("shape.safetensors"), shaped, 2), NNRT_OK);
    ck_assert_int_eq(FORWARD(&tiny, "shape.safetensors", "x.npy", "y.npy"), 1);
    ASSERT_ERR_HAS("rnn.weight_ih_l0");
    /* missing tensor */
    ck_assert_int_eq(nnrt_safetensors_write(P("one.safetensors"), shaped + 1, 1), NNRT_OK);
    ck_assert_int_eq(FORWARD(&tiny, "one.safetensors", "x.npy", "y.npy"), 1);
    ASSERT_ERR_HAS("rnn.weight_ih_l0");
    /* wrong dtype */
    write_known_weights(P("w64.safetensors"), NNRT_F64);
    ck_assert_int_eq(FORWARD(&tiny, "w64.safetensors", "x.npy", "y.npy"), 1);
    ASSERT_ERR_HAS("w64.safetensors");
    /* not a safetensors file at all */
    write_text(P("junk.safetensors"), "this is not a safetensors file");
    ck_assert_int_eq(FORWARD(&tiny, "junk.safetensors", "x.npy", "y.npy"), 1);
    ASSERT_ERR_HAS("junk.safetensors");
    ck_assert_int_eq(fwd_ncalls, 0);
    ck_assert(!exists(P("y.npy")));
}
END_TEST

START_TEST(test_forward_call_fails) {
    double xs[5 * TINY_B * TINY_I];
    write_known_weights(P("w.safetensors"), NNRT_F32);
    write_x(P("x.npy"), NNRT_F32, 5, xs);
    ck_assert_int_eq(FORWARD(&tiny_fails, "w.safetensors", "x.npy", "y.npy"), 1);
    ck_assert_str_eq(g_err, ERR_PREFIX "tiny: non-finite state at step 3\n");
    ck_assert_str_eq(listing(), "w.safetensors x.npy");
}
END_TEST

/* ---- no half-written or clobbered outputs ------------------------------------------------- */

START_TEST(test_failure_keeps_existing_output) {
    write_known_weights(P("w.safetensors"), NNRT_F32);
    write_npy(P("x.npy"), NNRT_F32, 3, (int64_t[]){2, TINY_B, TINY_I}, known_x);
    write_npy(P("bad.npy"), NNRT_F32, 3, (int64_t[]){2, 1, 2}, known_x);
    write_text(P("y.npy"), "previous output");
    write_text(P("w2.safetensors"), "previous weights");

    ck_assert_int_eq(FORWARD(&tiny, "w.safetensors", "bad.npy", "y.npy"), 1);     /* shape */
    ck_assert_int_eq(FORWARD(&tiny, "w.safetensors", "missing.npy", "y.npy"), 1); /* file */
    ck_assert_int_eq(FORWARD(&tiny, "missing.safetensors", "x.npy", "y.npy"), 1); /* weights */
    double xs[5 * TINY_B * TINY_I];
    write_x(P("x5.npy"), NNRT_F32, 5, xs);
    ck_assert_int_eq(FORWARD(&tiny_fails, "w.safetensors", "x5.npy", "y.npy"), 1); /* model */
    ck_assert_int_eq(run(&tiny, "forward", "-w", P("w.safetensors"), "-i", P("x.npy"), "-o",
                         P("y.npy"), "-z", NULL),
                     2);
    ck_assert(file_equals(P("y.npy"), "previous output"));
    ck_assert_int_eq(run(&tiny, "init", "--seed", "x", "-o", P("w2.safetensors"), NULL), 2);
    ck_assert(file_equals(P("w2.safetensors"), "previous weights"));
    ck_assert_str_eq(listing(), "bad.npy w.safetensors w2.safetensors x.npy x5.npy y.npy");

    /* and a successful run replaces it */
    ck_assert_int_eq(FORWARD(&tiny, "w.safetensors", "x.npy", "y.npy"), 0);
    check_npy(P("y.npy"), NNRT_F32, 3, (int64_t[]){2, TINY_B, TINY_O}, known_y, 0, 0);
    ck_assert_int_eq(run(&tiny, "init", "-o", P("w2.safetensors"), NULL), 0);
    ck_assert(!file_equals(P("w2.safetensors"), "previous weights"));
    ck_assert_str_eq(listing(), "bad.npy w.safetensors w2.safetensors x.npy x5.npy y.npy");
}
END_TEST

/* ---- suite ----------------------------------------------------------------------------------- */

static TCase *tcase(const char *name) {
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    return tc;
}

Suite *driver_suite(void) {
    Suite *s = suite_create("driver");
    TCase *tc;

    tc = tcase("init");
    tcase_add_test(tc, test_init_default_seed_is_zero);
    tcase_add_test(tc, test_init_seed);
    tcase_add_test(tc, test_init_then_forward);
    suite_add_tcase(s, tc);

    tc = tcase("forward");
    tcase_add_test(tc, test_forward_known_values);
    tcase_add_test(tc, test_forward_f64_model);
    tcase_add_test(tc, test_forward_in_place);
    suite_add_tcase(s, tc);

    tc = tcase("chunks");
    tcase_add_test(tc, test_chunks_equal_one_pass);
    tcase_add_test(tc, test_output_last);
    suite_add_tcase(s, tc);

    tc = tcase("usage");
    tcase_add_test(tc, test_usage_commands);
    tcase_add_test(tc, test_usage_options);
    tcase_add_test(tc, test_usage_bad_seed);
    tcase_add_test(tc, test_help);
    suite_add_tcase(s, tc);

    tc = tcase("bad_input");
    tcase_add_test(tc, test_missing_files);
    tcase_add_test(tc, test_wrong_dtype);
    tcase_add_test(tc, test_wrong_shape);
    tcase_add_test(tc, test_wrong_weights);
    tcase_add_test(tc, test_forward_call_fails);
    suite_add_tcase(s, tc);

    tc = tcase("atomic");
    tcase_add_test(tc, test_failure_keeps_existing_output);
    suite_add_tcase(s, tc);

    return s;
}
