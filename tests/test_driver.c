/* test_driver.c — the generic driver (runtime/nnrt_driver.c) against hand-written models, and
 * its training commands (grad, train) and bench against real generated models of the test
 * registry.
 *
 * The hand-written models are tiny and linear so every expected value can be worked out by hand:
 *   h_t = W x_t + b + h_{t-1},  y_t = h_t        (input 2, output 2, batch 2, seq_len 3)
 * with W = rnn.weight_ih_l0 [2, 2] and b = rnn.bias_ih_l0 [2]. Variants: f32 with outputs at
 * every step, f32 with the output after the last step, f64, and one whose forward fails on its
 * second call. Each forward logs the T it was called with, so chunking is visible.
 *
 * The driver runs in-process with argv arrays; files live in a mkdtemp directory per test;
 * stdout and stderr are captured to assert on messages. The bench tests never assert on a timing
 * beyond its being positive.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, dup, dup2, posix_openpt */
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

#include <jansson.h>

#include "isa_models.h"
#include "nnrt.h"
#include "test_models.h"

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

/* The tiny models' packed weights are a plain copy of the parameters. */
static void tiny_pack_f32(const void *p, void *w) { memcpy(w, p, TINY_NPARAMS * sizeof(float)); }
static void tiny_pack_f64(const void *p, void *w) { memcpy(w, p, TINY_NPARAMS * sizeof(double)); }

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

#define TINY_MODEL(dt, real, last, seq, reset_fn, pack_fn, step_fn, forward_fn)                    \
    {                                                                                              \
        .abi_version = NNRT_ABI_VERSION, .name = "tiny", .isa = "scalar", .dtype = dt,             \
        .input = TINY_I, .output = TINY_O, .seq_len = seq, .batch = TINY_B, .output_last = last,   \
        .loss_kind = NNRT_LOSS_MSE, .num_layers = 1, .layers = tiny_layers, .num_heads = 0,        \
        .heads = NULL, .num_params = TINY_NPARAMS, .num_tensors = 2, .tensors = tiny_tensors,      \
        .params_bytes = TINY_NPARAMS * sizeof(real), .weights_bytes = TINY_NPARAMS * sizeof(real), \
        .state_bytes = TINY_B * TINY_O * sizeof(real),                                             \
        .work_bytes = TINY_B * TINY_O * sizeof(real), .reset = reset_fn, .pack = pack_fn,          \
        .step = step_fn, .forward = forward_fn                                                     \
    }

static const nnrt_model tiny = TINY_MODEL(NNRT_F32, float, 0, TINY_SEQ, tiny_reset_f32,
                                          tiny_pack_f32, tiny_step_f32, tiny_forward_f32);
static const nnrt_model tiny_last = TINY_MODEL(NNRT_F32, float, 1, TINY_SEQ, tiny_reset_f32,
                                               tiny_pack_f32, tiny_step_f32, tiny_forward_f32_last);
static const nnrt_model tiny64 = TINY_MODEL(NNRT_F64, double, 0, TINY_SEQ, tiny_reset_f64,
                                            tiny_pack_f64, tiny_step_f64, tiny_forward_f64);
static const nnrt_model tiny_fails = TINY_MODEL(NNRT_F32, float, 0, TINY_SEQ, tiny_reset_f32,
                                                tiny_pack_f32, tiny_step_f32, tiny_forward_fails);
static const nnrt_model tiny_long = TINY_MODEL(NNRT_F32, float, 0, 16, tiny_reset_f32,
                                               tiny_pack_f32, tiny_step_f32, tiny_forward_long);

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

/* A path inside the test directory; the last 16 results stay valid. */
static const char *P(const char *name) {
    static char ring[16][512];
    static int next;
    char *p = ring[next++ % 16];
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
static int g_pty = -1; /* when >= 0: a pseudo-terminal master; run() gives stderr its slave */

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
    int fe = g_pty >= 0 ? open(ptsname(g_pty), O_RDWR | O_NOCTTY)
                        : open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
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
    if (g_pty < 0) {
        slurp(err_path, g_err, sizeof g_err);
        return rc;
    }
    size_t n = 0; /* the terminal's output: the master reads what stderr wrote, without blocking */
    ssize_t got;
    while (n < sizeof g_err - 1 && (got = read(g_pty, g_err + n, sizeof g_err - 1 - n)) > 0)
        n += (size_t)got;
    g_err[n] = '\0';
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
    ck_assert_int_eq(run(&tiny, "grad", NULL), 2);
    ASSERT_ERR_STARTS("grad: missing -w W.safetensors");
    ck_assert_int_eq(run(&tiny, "train", "-w", P("w.safetensors"), NULL), 2);
    ASSERT_ERR_STARTS("train: missing -i X.npy");
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

/* ---- grad and train on generated models ---------------------------------------------------
 * Real models from the test registry (tests/specs/grad are f64 with every loss and output_at;
 * tests/specs/forward adds f32). Expected values come from the model's descriptor directly:
 * the driver must do exactly what a program calling the descriptor would do, bit for bit. */

static const nnrt_model *model_named(const char *name) {
    for (int i = 0; i < rnnc_test_model_count; i++)
        if (strcmp(rnnc_test_models[i]->name, name) == 0) return rnnc_test_models[i];
    ck_abort_msg("test model %s is not in the registry", name);
    return NULL;
}

static int is_ce(const nnrt_model *m) { return m->loss_kind == NNRT_LOSS_CROSS_ENTROPY; }

static uint64_t lcg;

static double urand(void) { /* [0, 1) */
    lcg = lcg * 6364136223846793005u + 1442695040888963407u;
    return (double)(lcg >> 11) / 9007199254740992.0;
}

/* X [T][B][I] in the model's dtype, uniform in [-1, 1). */
static void write_model_x(const nnrt_model *m, const char *path, int64_t T, uint64_t seed) {
    size_t n = (size_t)T * (size_t)m->batch * (size_t)m->input;
    double *v = malloc(n * sizeof *v);
    ck_assert_ptr_nonnull(v);
    lcg = seed;
    for (size_t i = 0; i < n; i++) v[i] = urand() * 2 - 1;
    write_npy(path, m->dtype, 3, (int64_t[]){T, m->batch, m->input}, v);
    free(v);
}

/* The shape of the target for T steps: [T][B][O], [T][B], [B][O] or [B]. */
static int target_shape(const nnrt_model *m, int64_t T, int64_t *shape, size_t *count) {
    int nd = 0;
    if (!m->output_last) shape[nd++] = T;
    shape[nd++] = m->batch;
    if (!is_ce(m)) shape[nd++] = m->output;
    *count = 1;
    for (int k = 0; k < nd; k++) *count *= (size_t)shape[k];
    return nd;
}

/* A target for T steps: class indices of dtype cdt for cross_entropy, otherwise the model's
 * dtype, uniform in [-1, 1) for mse and [0, 1) for bce. */
static void write_model_target(const nnrt_model *m, const char *path, int64_t T, nnrt_dtype cdt,
                               uint64_t seed) {
    int64_t shape[3];
    size_t n;
    int nd = target_shape(m, T, shape, &n);
    double *v = malloc(n * sizeof *v);
    ck_assert_ptr_nonnull(v);
    lcg = seed;
    for (size_t i = 0; i < n; i++) {
        double u = urand();
        v[i] = is_ce(m)                        ? (double)(int)(u * m->output)
               : m->loss_kind == NNRT_LOSS_BCE ? u
                                               : u * 2 - 1;
    }
    write_npy(path, is_ce(m) ? cdt : m->dtype, nd, shape, v);
    free(v);
}

static nnrt_array read_npy(const char *path) {
    nnrt_array a;
    ck_assert_msg(nnrt_npy_read(path, &a) == NNRT_OK, "%s", nnrt_last_error());
    return a;
}

/* The target as the loss takes it: int32 class indices (converted from int64), else as read. */
static void *loss_target(const nnrt_model *m, const nnrt_array *t) {
    size_t bytes = t->count * (is_ce(m) ? sizeof(int32_t) : nnrt_dtype_size(m->dtype));
    void *out = nnrt_alloc(bytes);
    ck_assert_ptr_nonnull(out);
    if (t->dtype == NNRT_I64)
        for (size_t i = 0; i < t->count; i++)
            ((int32_t *)out)[i] = (int32_t)((const int64_t *)t->data)[i];
    else
        memcpy(out, t->data, bytes);
    return out;
}

static void *read_params(const nnrt_model *m, const char *path) {
    void *p = nnrt_alloc(m->params_bytes);
    ck_assert_ptr_nonnull(p);
    ck_assert_msg(nnrt_model_load(m, p, path) == NNRT_OK, "%s", nnrt_last_error());
    return p;
}

/* The whole file; *size receives its length. Free with free(). */
static char *read_bytes(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0) break;
        n += got;
    }
    fclose(f);
    *size = n;
    return buf;
}

static int same_bytes(const char *a, const char *b) {
    size_t na, nb;
    char *da = read_bytes(a, &na), *db = read_bytes(b, &nb);
    int same = na == nb && memcmp(da, db, na) == 0;
    free(da);
    free(db);
    return same;
}

/* What the descriptor does by hand: the buffers of one chunk. */
typedef struct hand {
    const nnrt_model *m;
    void *weights, *grads, *state, *tape, *y, *dy;
    int64_t T, nchunks;
    size_t x_step, t_step;
} hand;

static hand hand_open(const nnrt_model *m, int64_t T) {
    size_t es = nnrt_dtype_size(m->dtype);
    size_t ybytes =
        (m->output_last ? 1 : (size_t)m->seq_len) * (size_t)m->batch * (size_t)m->output * es;
    hand h = {m,
              nnrt_alloc(m->weights_bytes),
              nnrt_alloc(m->params_bytes),
              nnrt_alloc(m->state_bytes),
              nnrt_alloc(m->tape_bytes),
              nnrt_alloc(ybytes),
              nnrt_alloc(ybytes),
              T,
              1 + (T - 1) / m->seq_len,
              (size_t)m->batch * (size_t)m->input * es,
              m->output_last
                  ? 0
                  : (size_t)m->batch * (is_ce(m) ? sizeof(int32_t) : (size_t)m->output * es)};
    ck_assert(h.weights && h.grads && h.state && h.tape && h.y && h.dy);
    return h;
}

static void hand_close(hand *h) {
    nnrt_free(h->weights);
    nnrt_free(h->grads);
    nnrt_free(h->state);
    nnrt_free(h->tape);
    nnrt_free(h->y);
    nnrt_free(h->dy);
}

/* Chunk c from the current state: pack, forward_train, loss, and (with backward) the gradient
 * into the zeroed h->grads. Returns the loss; *steps receives the chunk's length. */
static double hand_chunk(hand *h, const void *params, const char *x, const char *target, int64_t c,
                         int backward, int *steps) {
    const nnrt_model *m = h->m;
    int64_t t0 = c * m->seq_len;
    int n = h->T - t0 < m->seq_len ? (int)(h->T - t0) : m->seq_len;
    double loss;
    x += (size_t)t0 * h->x_step;
    target += (size_t)t0 * h->t_step;
    m->pack(params, h->weights);
    ck_assert_int_eq(m->forward_train(h->weights, h->state, h->tape, n, x, h->y), NNRT_OK);
    ck_assert_int_eq(m->loss(n, h->y, target, &loss, backward ? h->dy : NULL), NNRT_OK);
    if (backward) {
        memset(h->grads, 0, m->params_bytes);
        ck_assert_int_eq(m->backward(params, h->tape, x, h->dy, h->grads, NULL), NNRT_OK);
    }
    if (steps) *steps = n;
    return loss;
}

/* The loss of params over all of X from the zero state, chunk by chunk: the mean over all terms. */
static double hand_eval(hand *h, const void *params, const char *x, const char *target) {
    h->m->reset(h->state);
    if (h->nchunks == 1) return hand_chunk(h, params, x, target, 0, 0, NULL);
    double sum = 0;
    for (int64_t c = 0; c < h->nchunks; c++) {
        int n;
        double l = hand_chunk(h, params, x, target, c, 0, &n);
        sum += l * n;
    }
    return sum / (double)h->T;
}

/* Training by hand as DESIGN.md describes it: one optimizer step per chunk, the state carried
 * from chunk to chunk, the zero state when the stream wraps. Trains params in place and
 * returns the final loss over all of X. */
static double hand_train(const nnrt_model *m, void *params, const char *xpath, const char *tpath,
                         int64_t steps, const nnrt_optim_config *cfg, double clip) {
    nnrt_array x = read_npy(xpath), t = read_npy(tpath);
    void *target = loss_target(m, &t);
    hand h = hand_open(m, x.shape[0]);
    nnrt_optim o;
    ck_assert_msg(nnrt_optim_init(&o, cfg, m->dtype, m->num_params) == NNRT_OK, "%s",
                  nnrt_last_error());
    for (int64_t k = 0; k < steps; k++) {
        int64_t c = k % h.nchunks;
        if (c == 0) m->reset(h.state);
        hand_chunk(&h, params, x.data, target, c, 1, NULL);
        if (clip > 0) nnrt_clip_grad_norm(m->dtype, h.grads, m->num_params, clip);
        nnrt_optim_step(&o, params, h.grads);
    }
    double final = hand_eval(&h, params, x.data, target);
    nnrt_optim_free(&o);
    hand_close(&h);
    nnrt_free(target);
    nnrt_array_free(&t);
    nnrt_array_free(&x);
    return final;
}

/* "<prefix><value>\n" as the driver prints a loss. */
static const char *loss_line(const char *prefix, double loss) {
    static char buf[128];
    snprintf(buf, sizeof buf, "%s%.9g\n", prefix, loss);
    return buf;
}

/* `M init --seed S -o W` */
static void init_weights(const nnrt_model *m, const char *w, const char *seed) {
    ck_assert_int_eq(run(m, "init", "--seed", seed, "-o", P(w), NULL), 0);
}

#define GRAD(m, w, x, t, g) run(m, "grad", "-w", P(w), "-i", P(x), "-t", P(t), "-o", P(g), NULL)

/* grad's gradient file and printed loss against the descriptor, for T steps. */
static void check_grad(const char *name, int64_t T, nnrt_dtype cdt, uint64_t seed) {
    const nnrt_model *m = model_named(name);
    char seedtext[24];
    snprintf(seedtext, sizeof seedtext, "%llu", (unsigned long long)seed);
    init_weights(m, "w.safetensors", seedtext);
    write_model_x(m, P("x.npy"), T, seed * 3 + 1);
    write_model_target(m, P("t.npy"), T, cdt, seed * 5 + 2);
    ck_assert_msg(GRAD(m, "w.safetensors", "x.npy", "t.npy", "g.safetensors") == 0, "%s T=%lld: %s",
                  name, (long long)T, g_err);
    ck_assert_str_eq(g_err, "");

    void *params = read_params(m, P("w.safetensors")), *got = read_params(m, P("g.safetensors"));
    nnrt_array x = read_npy(P("x.npy")), t = read_npy(P("t.npy"));
    void *target = loss_target(m, &t);
    hand h = hand_open(m, T);
    m->reset(h.state);
    double loss = hand_chunk(&h, params, x.data, target, 0, 1, NULL);
    ck_assert_msg(memcmp(got, h.grads, m->params_bytes) == 0, "%s T=%lld: gradients differ", name,
                  (long long)T);
    ck_assert_str_eq(g_out, loss_line("loss ", loss));
    /* and the descriptor's loss is nnrt_loss's over the rows of y */
    double direct;
    size_t rows = (m->output_last ? 1 : (size_t)T) * (size_t)m->batch;
    ck_assert_int_eq(nnrt_loss(m->loss_kind, m->dtype, rows, m->output, h.y, target, &direct, NULL),
                     NNRT_OK);
    ck_assert_str_eq(g_out, loss_line("loss ", direct));
    ck_assert(loss > 0);
    hand_close(&h);
    nnrt_free(target);
    nnrt_array_free(&t);
    nnrt_array_free(&x);
    nnrt_free(got);
    nnrt_free(params);
}

START_TEST(test_grad_matches_descriptor) {
    static const char *const names[] = {
        "grad_lstm_mse_all",      "grad_gru_ce_last", "grad_rnn_tanh_bce_all", "grad_lstm_ce_all",
        "grad_rnn_relu_mse_last", "fwd_lstm_all_f32", "fwd_gru_last_f32"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const nnrt_model *m = model_named(names[k]);
        check_grad(names[k], 1, NNRT_I32, k + 1);
        check_grad(names[k], m->seq_len, NNRT_I64, k + 11);
        check_grad(names[k], (m->seq_len + 1) / 2, NNRT_I32, k + 21);
    }
    ck_assert_str_eq(listing(), "g.safetensors t.npy w.safetensors x.npy");
}
END_TEST

START_TEST(test_grad_int64_equals_int32) {
    static const char *const names[] = {"grad_gru_ce_last", "grad_lstm_ce_all", "fwd_gru_last_f32"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const nnrt_model *m = model_named(names[k]);
        init_weights(m, "w.safetensors", "4");
        write_model_x(m, P("x.npy"), m->seq_len, 99);
        write_model_target(m, P("t32.npy"), m->seq_len, NNRT_I32, 7);
        write_model_target(m, P("t64.npy"), m->seq_len, NNRT_I64, 7);
        ck_assert_int_eq(GRAD(m, "w.safetensors", "x.npy", "t32.npy", "g32.safetensors"), 0);
        char out32[256];
        snprintf(out32, sizeof out32, "%.200s", g_out);
        ck_assert_int_eq(GRAD(m, "w.safetensors", "x.npy", "t64.npy", "g64.safetensors"), 0);
        ck_assert_str_eq(g_out, out32);
        ck_assert(same_bytes(P("g32.safetensors"), P("g64.safetensors")));
    }
}
END_TEST

/* Expects exit code want and an error line containing text, and no output file. */
#define ASSERT_FAILS(want, text, call)                                                             \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        ck_assert_msg(rc_ == (want), "exit %d, stderr: %s", rc_, g_err);                           \
        ASSERT_ERR_HAS(": error: ");                                                               \
        ASSERT_ERR_HAS(text);                                                                      \
        ck_assert_str_eq(g_out, "");                                                               \
    } while (0)

START_TEST(test_grad_bad_input) {
    const nnrt_model *mse = model_named("grad_lstm_mse_all");    /* f64, [T][B][O] = [T][2][2] */
    const nnrt_model *ce_last = model_named("grad_gru_ce_last"); /* [B] = [2], 3 classes */
    const nnrt_model *ce_all = model_named("grad_lstm_ce_all");
    init_weights(mse, "mse.safetensors", "1");
    init_weights(ce_last, "cel.safetensors", "1");
    init_weights(ce_all, "cea.safetensors", "1");
    write_model_x(mse, P("x3.npy"), 3, 1);
    write_model_x(mse, P("x6.npy"), 6, 1);
    write_model_target(mse, P("t6.npy"), 6, NNRT_I32, 1);
    static const double vals[64];

    /* wrong dtype */
    write_npy(P("t.npy"), NNRT_F32, 3, (int64_t[]){3, 2, 2}, vals);
    ASSERT_FAILS(1, "t.npy: expected dtype float64, the model's (loss mse), found float32",
                 GRAD(mse, "mse.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    write_npy(P("t.npy"), NNRT_I64, 3, (int64_t[]){3, 2, 2}, vals);
    ASSERT_FAILS(1, "found int64",
                 GRAD(mse, "mse.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    write_npy(P("t.npy"), NNRT_F64, 1, (int64_t[]){2}, vals);
    ASSERT_FAILS(
        1, "t.npy: expected class indices, int32 or int64 (loss cross_entropy), found float64",
        GRAD(ce_last, "cel.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    /* wrong shape */
    write_npy(P("t.npy"), NNRT_F64, 3, (int64_t[]){4, 2, 2}, vals);
    ASSERT_FAILS(1, "t.npy: expected shape [3, 2, 2] ([T, batch, output] with T = 3 as in ",
                 GRAD(mse, "mse.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    ASSERT_ERR_HAS("x3.npy), found [4, 2, 2]");
    write_npy(P("t.npy"), NNRT_F64, 3, (int64_t[]){3, 2, 3}, vals);
    ASSERT_FAILS(1, "found [3, 2, 3]",
                 GRAD(mse, "mse.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    write_npy(P("t.npy"), NNRT_F64, 2, (int64_t[]){6, 2}, vals);
    ASSERT_FAILS(1, "found [6, 2]",
                 GRAD(mse, "mse.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    write_npy(P("t.npy"), NNRT_I32, 2, (int64_t[]){3, 2}, vals);
    ASSERT_FAILS(1,
                 "t.npy: expected shape [2] ([batch] class indices: output at the last step only), "
                 "found [3, 2]",
                 GRAD(ce_last, "cel.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    write_npy(P("t.npy"), NNRT_I32, 1, (int64_t[]){2}, vals);
    ASSERT_FAILS(1, "expected shape [3, 2] ([T, batch] class indices with T = 3 as in",
                 GRAD(ce_all, "cea.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    /* class index out of range, named */
    write_npy(P("t.npy"), NNRT_I32, 1, (int64_t[]){2}, (double[]){0, -1});
    ASSERT_FAILS(1, "t.npy: target[1] = -1 is not a class index in 0..2",
                 GRAD(ce_last, "cel.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    write_npy(P("t.npy"), NNRT_I64, 1, (int64_t[]){2}, (double[]){3, 0});
    ASSERT_FAILS(1, "t.npy: target[0] = 3 is not a class index in 0..2",
                 GRAD(ce_last, "cel.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    /* int64 beyond int32 must not wrap around into a valid class */
    write_npy(P("t.npy"), NNRT_I64, 2, (int64_t[]){3, 2}, (double[]){0, 1, 2, 0, 1, 4294967297.0});
    ASSERT_FAILS(1, "t.npy: target[2][1] = 4294967297 is not a class index in 0..",
                 GRAD(ce_all, "cea.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    /* T larger than seq_len: suggests train */
    ASSERT_FAILS(1, "x6.npy: T = 6 steps is more than seq_len 5: grad takes one sequence",
                 GRAD(mse, "mse.safetensors", "x6.npy", "t6.npy", "g.safetensors"));
    ASSERT_ERR_HAS("use 'train' for truncated BPTT");
    /* X of the wrong dtype, weights of another model */
    write_npy(P("x32.npy"), NNRT_F32, 3, (int64_t[]){3, 2, 3}, vals);
    ASSERT_FAILS(1, "x32.npy: expected dtype float64, found float32",
                 GRAD(mse, "mse.safetensors", "x32.npy", "t6.npy", "g.safetensors"));
    write_model_target(mse, P("t3.npy"), 3, NNRT_I32, 1);
    ASSERT_FAILS(1, "cel.safetensors",
                 GRAD(mse, "cel.safetensors", "x3.npy", "t3.npy", "g.safetensors"));
    /* NaN in the data: in the target, the loss is nan */
    double tnan[3 * 2 * 2] = {0};
    tnan[5] = NAN;
    write_npy(P("tnan.npy"), NNRT_F64, 3, (int64_t[]){3, 2, 2}, tnan);
    ASSERT_FAILS(1, "error: loss is nan",
                 GRAD(mse, "mse.safetensors", "x3.npy", "tnan.npy", "g.safetensors"));
    /* in X, the relu of the first head layer hides it from the loss, not from the gradient,
     * which names the first bad element */
    double xnan[3 * 2 * 3] = {0};
    xnan[4] = NAN; /* x[0][1][1] */
    write_npy(P("xnan.npy"), NNRT_F64, 3, (int64_t[]){3, 2, 3}, xnan);
    ASSERT_FAILS(1, "error: the gradient of rnn.weight_ih_l0 is nan at [0, 0] (loss ",
                 GRAD(mse, "mse.safetensors", "xnan.npy", "t3.npy", "g.safetensors"));
    /* usage */
    ck_assert_int_eq(run(mse, "grad", "-w", P("mse.safetensors"), "-i", P("x3.npy"), "-o",
                         P("g.safetensors"), NULL),
                     2);
    ASSERT_ERR_HAS("grad: missing -t TARGET.npy");
    /* a model without training entry points (the hand-written tiny one) */
    write_known_weights(P("tiny.safetensors"), NNRT_F32);
    write_npy(P("tx.npy"), NNRT_F32, 3, (int64_t[]){2, TINY_B, TINY_I}, known_x);
    write_npy(P("ty.npy"), NNRT_F32, 3, (int64_t[]){2, TINY_B, TINY_O}, known_y);
    ASSERT_FAILS(2, "model tiny has no training entry points",
                 GRAD(&tiny, "tiny.safetensors", "tx.npy", "ty.npy", "g.safetensors"));
    ck_assert(!exists(P("g.safetensors")));
}
END_TEST

/* ---- train ---------------------------------------------------------------------------------- */

/* `M train -w W -i X -t T -o OUT [more options...]`: up to 12 more arguments, NULL-terminated. */
#define TRAIN(m, w, x, t, out, ...)                                                                \
    run(m, "train", "-w", P(w), "-i", P(x), "-t", P(t), "-o", P(out), __VA_ARGS__)

START_TEST(test_train_reduces_loss) {
    /* Learnable: the target at each step is half the first two input features. */
    const nnrt_model *m =
        model_named("fwd_gru_all_f32"); /* input 5, output 2, seq_len 9, batch 2 */
    enum { T = 9 };
    double x[T * 2 * 5], t[T * 2 * 2];
    lcg = 12345;
    for (int i = 0; i < T * 2 * 5; i++) x[i] = urand() * 2 - 1;
    for (int r = 0; r < T * 2; r++)
        for (int o = 0; o < 2; o++) t[r * 2 + o] = (float)(0.5 * (float)x[r * 5 + o]);
    write_npy(P("x.npy"), NNRT_F32, 3, (int64_t[]){T, 2, 5}, x);
    write_npy(P("t.npy"), NNRT_F32, 3, (int64_t[]){T, 2, 2}, t);
    init_weights(m, "w.safetensors", "5");
    ck_assert_int_eq(GRAD(m, "w.safetensors", "x.npy", "t.npy", "g.safetensors"), 0);
    double before = strtod(g_out + strlen("loss "), NULL);
    ck_assert_int_eq(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "w2.safetensors", "--steps", "300",
                           "--lr", "0.01", NULL),
                     0);
    ck_assert_msg(strncmp(g_out, "final loss ", 11) == 0, "stdout: %s", g_out);
    double after = strtod(g_out + strlen("final loss "), NULL);
    ck_assert_msg(after < 0.1 * before, "loss %g -> %g", before, after);
    /* the final loss is the trained weights' loss over X: what grad reports for them */
    char final[128];
    snprintf(final, sizeof final, "%.100s", g_out + strlen("final "));
    ck_assert_int_eq(GRAD(m, "w2.safetensors", "x.npy", "t.npy", "g2.safetensors"), 0);
    ck_assert_str_eq(g_out, final);
    /* and the run equals training by hand through the descriptor */
    void *params = read_params(m, P("w.safetensors")), *got = read_params(m, P("w2.safetensors"));
    nnrt_optim_config cfg = nnrt_optim_defaults(NNRT_OPT_ADAM);
    cfg.lr = 0.01;
    double hand_loss = hand_train(m, params, P("x.npy"), P("t.npy"), 300, &cfg, 0);
    ck_assert_str_eq(final, loss_line("loss ", hand_loss));
    ck_assert(memcmp(params, got, m->params_bytes) == 0);
    nnrt_free(got);
    nnrt_free(params);
}
END_TEST

/* train with the given options (NULL-terminated) against hand_train with cfg and clip. */
static void check_train_by_hand(const char *name, int64_t T, nnrt_dtype cdt, int64_t steps,
                                const nnrt_optim_config *cfg, double clip, ...) {
    const nnrt_model *m = model_named(name);
    init_weights(m, "w.safetensors", "9");
    write_model_x(m, P("x.npy"), T, 77);
    write_model_target(m, P("t.npy"), T, cdt, 78);
    char *argv_extra[16] = {0};
    int n = 0;
    va_list ap;
    va_start(ap, clip);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 15) argv_extra[n++] = (char *)a;
    va_end(ap);
    argv_extra[n] = NULL;
    char steps_text[24];
    snprintf(steps_text, sizeof steps_text, "%lld", (long long)steps);
    ck_assert_int_le(n, 12);
    int rc = run(m, "train", "-w", P("w.safetensors"), "-i", P("x.npy"), "-t", P("t.npy"), "-o",
                 P("w2.safetensors"), "--steps", steps_text, argv_extra[0], argv_extra[1],
                 argv_extra[2], argv_extra[3], argv_extra[4], argv_extra[5], argv_extra[6],
                 argv_extra[7], argv_extra[8], argv_extra[9], argv_extra[10], argv_extra[11], NULL);
    ck_assert_msg(rc == 0, "%s: %s", name, g_err);
    void *params = read_params(m, P("w.safetensors")), *got = read_params(m, P("w2.safetensors"));
    double final = hand_train(m, params, P("x.npy"), P("t.npy"), steps, cfg, clip);
    ck_assert_str_eq(g_out, loss_line("final loss ", final));
    ck_assert_msg(memcmp(params, got, m->params_bytes) == 0, "%s: parameters differ", name);
    nnrt_free(got);
    nnrt_free(params);
}

START_TEST(test_train_tbptt_by_hand) {
    nnrt_optim_config adam = nnrt_optim_defaults(NNRT_OPT_ADAM);
    adam.lr = 0.01;
    /* seq_len 5, T 13: chunks of 5, 5 and 3; 8 steps wrap the stream twice */
    check_train_by_hand("grad_rnn_tanh_bce_all", 13, NNRT_I32, 8, &adam, 0, "--lr", "0.01", NULL);
    check_train_by_hand("grad_lstm_ce_all", 11, NNRT_I64, 7, &adam, 0, "--lr", "0.01", NULL);
    /* f32, seq_len 9, T 20: chunks of 9, 9 and 2; SGD with Nesterov, weight decay and clipping */
    nnrt_optim_config sgd = nnrt_optim_defaults(NNRT_OPT_SGD);
    sgd.lr = 0.05, sgd.momentum = 0.9, sgd.nesterov = 1, sgd.weight_decay = 0.01;
    check_train_by_hand("fwd_lstm_all_f32", 20, NNRT_I32, 7, &sgd, 0.5, "--optim", "sgd", "--lr",
                        "0.05", "--momentum", "0.9", "--nesterov", "--weight-decay", "0.01",
                        "--clip", "0.5", NULL);
    /* T a multiple of seq_len: chunks of 5 and 5 */
    nnrt_optim_config adamw = nnrt_optim_defaults(NNRT_OPT_ADAMW);
    check_train_by_hand("grad_gru_mse_all", 10, NNRT_I32, 5, &adamw, 0, "--optim", "adamw", NULL);
    /* T <= seq_len: every step on the whole sequence from the zero state, output_last too */
    check_train_by_hand("grad_gru_ce_last", 4, NNRT_I64, 6, &adam, 0, "--lr", "0.01", NULL);
    check_train_by_hand("fwd_gru_last_f32", 9, NNRT_I32, 3, &adam, 1e-3, "--clip", "1e-3", "--lr",
                        "0.01", NULL);
}
END_TEST

/* Runs `train --steps N` straight and split at `split` with --resume, for the given extra
 * options (at most 6), and checks both end bit for bit the same. */
static void check_resume(const char *name, int64_t T, int64_t split, int64_t steps,
                         const char *const *opts) {
    const nnrt_model *m = model_named(name);
    init_weights(m, "w.safetensors", "3");
    write_model_x(m, P("x.npy"), T, 5);
    write_model_target(m, P("t.npy"), T, NNRT_I64, 6);
    char s_split[24], s_steps[24];
    snprintf(s_split, sizeof s_split, "%lld", (long long)split);
    snprintf(s_steps, sizeof s_steps, "%lld", (long long)steps);
    const char *o[6] = {0};
    for (int k = 0; k < 6 && opts[k]; k++) o[k] = opts[k];

    unlink(P("c.safetensors"));
    unlink(P("c.safetensors.stream"));
    ck_assert_msg(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "full.safetensors", "--steps",
                        s_steps, "--checkpoint", P("full_ckpt.safetensors"), o[0], o[1], o[2], o[3],
                        o[4], o[5], NULL) == 0,
                  "%s", g_err);
    char full_out[128];
    snprintf(full_out, sizeof full_out, "%.100s", g_out);
    ck_assert_msg(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "a.safetensors", "--steps", s_split,
                        "--checkpoint", P("c.safetensors"), o[0], o[1], o[2], o[3], o[4], o[5],
                        NULL) == 0,
                  "%s", g_err);
    ck_assert_msg(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "b.safetensors", "--steps", s_steps,
                        "--checkpoint", P("c.safetensors"), "--resume", o[0], o[1], o[2], o[3],
                        o[4], o[5], NULL) == 0,
                  "%s", g_err);
    ck_assert_str_eq(g_out, full_out);
    ck_assert_msg(same_bytes(P("full.safetensors"), P("b.safetensors")), "%s: weights differ",
                  name);
    ck_assert_msg(same_bytes(P("full_ckpt.safetensors"), P("c.safetensors")),
                  "%s: checkpoints differ", name);
    /* the resumed run started from the checkpoint, not from -w: a's weights differ from b's */
    ck_assert(!same_bytes(P("a.safetensors"), P("b.safetensors")));
}

START_TEST(test_train_resume_bitwise) {
    /* whole sequences */
    check_resume("grad_lstm_mse_all", 4, 6, 10, (const char *const[]){NULL});
    check_resume("fwd_lstm_all_f32", 9, 3, 7,
                 (const char *const[]){"--optim", "sgd", "--momentum", "0.9", "--clip", "0.1"});
    check_resume("grad_gru_ce_last", 5, 2, 5, (const char *const[]){"--optim", "adamw", NULL});
    /* a stream of 12 steps in chunks of 5, 5, 2: stopped inside the stream, at a wrap, and
     * with checkpoints along the way */
    check_resume("grad_gru_mse_all", 12, 4, 7, (const char *const[]){"--lr", "0.01", NULL});
    check_resume("grad_gru_mse_all", 12, 3, 7, (const char *const[]){"--lr", "0.01", NULL});
    check_resume("grad_rnn_tanh_ce_all", 12, 5, 11,
                 (const char *const[]){"--every", "2", "--optim", "sgd", "--momentum", "0.5"});
    ck_assert(exists(P("c.safetensors.stream")));
}
END_TEST

START_TEST(test_train_resume_at_end) {
    /* resuming a finished run trains no further: same weights, same final loss */
    const nnrt_model *m = model_named("grad_rnn_relu_mse_all");
    init_weights(m, "w.safetensors", "1");
    write_model_x(m, P("x.npy"), 4, 1);
    write_model_target(m, P("t.npy"), 4, NNRT_I32, 2);
    ck_assert_int_eq(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "a.safetensors", "--steps", "3",
                           "--checkpoint", P("c.safetensors"), NULL),
                     0);
    char out[128];
    snprintf(out, sizeof out, "%.100s", g_out);
    size_t n;
    char *before = read_bytes(P("c.safetensors"), &n);
    ck_assert_int_eq(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "b.safetensors", "--steps", "3",
                           "--checkpoint", P("c.safetensors"), "--resume", NULL),
                     0);
    ck_assert_str_eq(g_out, out);
    ck_assert_str_eq(g_err, "");
    ck_assert(same_bytes(P("a.safetensors"), P("b.safetensors")));
    size_t n2;
    char *after = read_bytes(P("c.safetensors"), &n2);
    ck_assert(n == n2 && memcmp(before, after, n) == 0);
    free(before);
    free(after);
    /* past the end: an error naming the step */
    ASSERT_FAILS(1, "c.safetensors: the checkpoint is at step 3, past --steps 2",
                 TRAIN(m, "w.safetensors", "x.npy", "t.npy", "d.safetensors", "--steps", "2",
                       "--checkpoint", P("c.safetensors"), "--resume", NULL));
    ASSERT_ERR_HAS("--steps counts all the steps");
    ck_assert(!exists(P("d.safetensors")));
}
END_TEST

/* train --threads N trains bit for bit as one thread: a model generated with parallel = "split"
 * (every layer-step shared), one with "wavefront", and one left to auto. */
START_TEST(test_train_threads_bitwise) {
    const char *names[] = {"isa_threads_lstm_gru_f32", "isa_lstm_ce_all_f64", "grad_gru_mse_all"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const nnrt_model *m = NULL;
        for (int k = 0; k < rnnc_isa_pair_count; k++)
            if (strcmp(rnnc_isa_pairs[k].scalar->name, names[i]) == 0) m = rnnc_isa_pairs[k].scalar;
        if (!m) m = model_named(names[i]);
        ck_assert_ptr_nonnull(m);
        init_weights(m, "w.safetensors", "3");
        write_model_x(m, P("x.npy"), m->seq_len, 5);
        write_model_target(m, P("t.npy"), m->seq_len, NNRT_I32, 6);
        ck_assert_int_eq(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "one.safetensors", "--steps", "3", NULL), 0);
        ck_assert_int_eq(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "two.safetensors", "--steps", "3", "--threads", "2",
                               NULL),
                         0);
        ck_assert_int_eq(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "three.safetensors", "--steps", "3", "--threads",
                               "3", NULL),
                         0);
        ck_assert_msg(same_bytes(P("one.safetensors"), P("two.safetensors")), "%s: 2 threads", m->name);
        ck_assert_msg(same_bytes(P("one.safetensors"), P("three.safetensors")), "%s: 3 threads", m->name);
    }
    ASSERT_FAILS(2, "option --threads: 65 threads requested, at most 64",
                 TRAIN(model_named("grad_gru_mse_all"), "w.safetensors", "x.npy", "t.npy", "z.safetensors", "--threads",
                       "65", NULL));
}
END_TEST

/* A stream of 12 steps in chunks of 5 (grad_gru_mse_all) whose second chunk holds a NaN. */
START_TEST(test_train_nan_stops) {
    const nnrt_model *m = model_named("grad_gru_mse_all");
    init_weights(m, "w.safetensors", "2");
    write_model_target(m, P("t.npy"), 12, NNRT_I32, 3);
    nnrt_array t;
    write_model_x(m, P("x.npy"), 12, 4);
    t = read_npy(P("t.npy"));
    ((double *)t.data)[7 * 2 * 2 + 3] = NAN; /* t 7, b 1, o 1: chunk 2 */
    ck_assert_int_eq(nnrt_npy_write(P("tnan.npy"), &t), NNRT_OK);
    nnrt_array_free(&t);

    int rc = TRAIN(m, "w.safetensors", "x.npy", "tnan.npy", "w2.safetensors", "--steps", "5",
                   "--checkpoint", P("c.safetensors"), "--every", "1", NULL);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(g_err, "step 1/5 loss ") == g_err, "stderr: %s", g_err);
    ck_assert_msg(strstr(g_err, "\ngrad_gru_mse_all: error: step 2: loss is nan\n") != NULL,
                  "stderr: %s", g_err);
    ck_assert_str_eq(g_out, "");
    ck_assert(!exists(P("w2.safetensors")));
    /* the checkpoint is step 1's, as training by hand gives it */
    nnrt_optim o;
    nnrt_optim_config cfg = nnrt_optim_defaults(NNRT_OPT_ADAM);
    ck_assert_int_eq(nnrt_optim_init(&o, &cfg, m->dtype, m->num_params), NNRT_OK);
    void *ckpt = nnrt_alloc(m->params_bytes), *params = read_params(m, P("w.safetensors"));
    ck_assert_msg(nnrt_checkpoint_load(P("c.safetensors"), m, ckpt, &o) == NNRT_OK, "%s",
                  nnrt_last_error());
    ck_assert_int_eq(o.step, 1);
    hand_train(m, params, P("x.npy"), P("tnan.npy"), 1, &cfg, 0);
    ck_assert(memcmp(params, ckpt, m->params_bytes) == 0);
    nnrt_optim_free(&o);
    nnrt_free(ckpt);
    nnrt_free(params);

    /* resuming on the bad data fails at once and leaves the last good checkpoint as it was */
    size_t n, n2;
    char *before = read_bytes(P("c.safetensors"), &n);
    ASSERT_FAILS(1, "error: step 2: loss is nan",
                 TRAIN(m, "w.safetensors", "x.npy", "tnan.npy", "w2.safetensors", "--steps", "5",
                       "--checkpoint", P("c.safetensors"), "--resume", NULL));
    char *after = read_bytes(P("c.safetensors"), &n2);
    ck_assert(n == n2 && memcmp(before, after, n) == 0);
    free(after);
    ck_assert(!exists(P("w2.safetensors")));

    /* NaN in X, hidden from the loss by a relu in the head, not from the gradient */
    nnrt_array x = read_npy(P("x.npy"));
    ((double *)x.data)[7 * 2 * 3 + 4] = NAN; /* t 7, b 1, i 1: chunk 2 */
    ck_assert_int_eq(nnrt_npy_write(P("xnan.npy"), &x), NNRT_OK);
    nnrt_array_free(&x);
    ASSERT_FAILS(1, "error: step 2: the gradient of rnn.weight_ih_l0 is nan at [0, 0] (loss ",
                 TRAIN(m, "w.safetensors", "xnan.npy", "t.npy", "w2.safetensors", "--steps", "5",
                       "--checkpoint", P("c.safetensors"), "--resume", NULL));
    after = read_bytes(P("c.safetensors"), &n2);
    ck_assert(n == n2 && memcmp(before, after, n) == 0);
    free(after);
    free(before);

    /* an infinite target on a whole sequence: step 1 */
    write_model_x(m, P("x5.npy"), 5, 4);
    write_model_target(m, P("t5.npy"), 5, NNRT_I32, 3);
    double tv[5 * 2 * 2] = {0};
    tv[3] = INFINITY;
    write_npy(P("tinf.npy"), NNRT_F64, 3, (int64_t[]){5, 2, 2}, tv);
    ASSERT_FAILS(
        1, "error: step 1: loss is inf",
        TRAIN(m, "w.safetensors", "x5.npy", "tinf.npy", "w2.safetensors", "--steps", "5", NULL));
    /* a learning rate that blows the parameters up */
    ASSERT_FAILS(
        1, "error: step 1: the update made the parameters non-finite (lower --lr",
        TRAIN(m, "w.safetensors", "x5.npy", "t5.npy", "w2.safetensors", "--lr", "1e308", NULL));
    ck_assert(!exists(P("w2.safetensors")));
    ck_assert_str_eq(listing(), "c.safetensors c.safetensors.stream t.npy t5.npy tinf.npy "
                                "tnan.npy w.safetensors x.npy x5.npy xnan.npy");
}
END_TEST

START_TEST(test_train_bad_options) {
    const nnrt_model *m = model_named("grad_lstm_mse_all");
    init_weights(m, "w.safetensors", "1");
    write_model_x(m, P("x.npy"), 3, 1);
    write_model_target(m, P("t.npy"), 3, NNRT_I32, 1);
#define BAD(text, ...)                                                                             \
    ASSERT_FAILS(2, text,                                                                          \
                 TRAIN(m, "w.safetensors", "x.npy", "t.npy", "w2.safetensors", __VA_ARGS__, NULL))
    BAD("option --optim: expected adam, adamw or sgd, found 'rmsprop'", "--optim", "rmsprop");
    BAD("option --optim: expected adam, adamw or sgd, found 'Adam'", "--optim", "Adam");
    static const char *const bad_counts[] = {"0",   "-1", "+1",  "1.5",  "",
                                             "abc", " 1", "1e3", "0x10", "9223372036854775808"};
    for (size_t k = 0; k < sizeof bad_counts / sizeof bad_counts[0]; k++) {
        BAD("option --steps: expected a positive integer, found '", "--steps", bad_counts[k]);
        BAD("option --log-every: expected a positive integer", "--log-every", bad_counts[k]);
        BAD("option --every: expected a positive integer", "--every", bad_counts[k], "--checkpoint",
            P("c.safetensors"));
    }
    static const char *const bad_reals[] = {"-1",    "-0.1", "+1", "",      "nan",  "inf", "1e",
                                            "0x1p3", " 1",   "1 ", "1e999", "1..2", "e5",  "1,5"};
    for (size_t k = 0; k < sizeof bad_reals / sizeof bad_reals[0]; k++) {
        BAD("option --lr: expected a finite number >= 0, found '", "--lr", bad_reals[k]);
        BAD("option --weight-decay: expected a finite number >= 0", "--weight-decay", bad_reals[k]);
        BAD("option --clip: expected a finite number > 0", "--clip", bad_reals[k]);
        BAD("option --momentum: expected a finite number >= 0", "--optim", "sgd", "--momentum",
            bad_reals[k]);
    }
    BAD("option --clip: expected a finite number > 0, found '0'", "--clip", "0");
    BAD("option --momentum applies to --optim sgd only", "--momentum", "0.9");
    BAD("option --nesterov applies to --optim sgd only", "--optim", "adamw", "--nesterov");
    BAD("option --nesterov needs --momentum > 0", "--optim", "sgd", "--nesterov");
    BAD("option --nesterov needs --momentum > 0", "--optim", "sgd", "--nesterov", "--momentum",
        "0");
    BAD("option --every needs --checkpoint", "--every", "2");
    BAD("option --resume needs --checkpoint", "--resume");
    BAD("-o and --checkpoint name the same file", "--checkpoint", P("w2.safetensors"));
    BAD("train: unexpected argument '1'", "--nesterov", "1");
    BAD("train: option --steps given twice", "--steps", "1", "--steps", "2");
    BAD("train: unknown option '--epochs'", "--epochs", "3");
    BAD("train: option --lr needs a value", "--lr");
#undef BAD
    ck_assert_int_eq(run(m, "train", "-w", P("w.safetensors"), "-i", P("x.npy"), "-o",
                         P("w2.safetensors"), NULL),
                     2);
    ASSERT_ERR_HAS("train: missing -t TARGET.npy");
    ASSERT_ERR_HAS(
        "usage: grad_lstm_mse_all train -w W.safetensors -i X.npy -t TARGET.npy [--steps N]");
    ck_assert_str_eq(listing(), "t.npy w.safetensors x.npy");
}
END_TEST

START_TEST(test_train_bad_input) {
    const nnrt_model *last = model_named("grad_lstm_mse_last"); /* seq_len 5 */
    init_weights(last, "wl.safetensors", "1");
    write_model_x(last, P("xl.npy"), 6, 1);
    write_model_target(last, P("tl.npy"), 6, NNRT_I32, 1);
    ASSERT_FAILS(1,
                 "xl.npy: T = 6 steps is more than seq_len 5, and this model's output is at the "
                 "last step only",
                 TRAIN(last, "wl.safetensors", "xl.npy", "tl.npy", "w2.safetensors", NULL));
    ASSERT_ERR_HAS("needs output_at = \"all\"");

    const nnrt_model *m = model_named("grad_gru_mse_all"); /* seq_len 5 */
    init_weights(m, "w.safetensors", "1");
    write_model_x(m, P("x.npy"), 12, 1);
    write_model_target(m, P("t.npy"), 12, NNRT_I32, 1);
    write_model_target(m, P("t11.npy"), 11, NNRT_I32, 1);
    ASSERT_FAILS(1, "t11.npy: expected shape [12, 2, 2]",
                 TRAIN(m, "w.safetensors", "x.npy", "t11.npy", "w2.safetensors", NULL));
    ASSERT_FAILS(1, "nope.safetensors",
                 TRAIN(m, "w.safetensors", "x.npy", "t.npy", "w2.safetensors", "--checkpoint",
                       P("nope.safetensors"), "--resume", NULL));
    /* an Adam checkpoint resumed with SGD */
    ck_assert_int_eq(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "w2.safetensors", "--steps", "2",
                           "--checkpoint", P("c.safetensors"), NULL),
                     0);
    ASSERT_FAILS(1, "c.safetensors: the checkpoint holds the state of Adam",
                 TRAIN(m, "w.safetensors", "x.npy", "t.npy", "w3.safetensors", "--steps", "4",
                       "--checkpoint", P("c.safetensors"), "--resume", "--optim", "sgd", NULL));
    /* step 2 is inside the stream: resuming needs the carried state, for this stream */
    ck_assert_int_eq(rename(P("c.safetensors.stream"), P("saved.stream")), 0);
    ASSERT_FAILS(1, "resuming at step 2, inside the stream, needs the carried state",
                 TRAIN(m, "w.safetensors", "x.npy", "t.npy", "w3.safetensors", "--steps", "4",
                       "--checkpoint", P("c.safetensors"), "--resume", NULL));
    ASSERT_ERR_HAS("c.safetensors.stream");
    ck_assert_int_eq(rename(P("saved.stream"), P("c.safetensors.stream")), 0);
    write_model_x(m, P("x13.npy"), 13, 1);
    write_model_target(m, P("t13.npy"), 13, NNRT_I32, 1);
    ASSERT_FAILS(1, "c.safetensors.stream: saved for a stream of 12 steps, but ",
                 TRAIN(m, "w.safetensors", "x13.npy", "t13.npy", "w3.safetensors", "--steps", "4",
                       "--checkpoint", P("c.safetensors"), "--resume", NULL));
    ASSERT_ERR_HAS("x13.npy has 13");
    ck_assert(!exists(P("w3.safetensors")));
    /* a checkpoint of another model */
    write_model_x(last, P("xl5.npy"), 5, 1);
    write_model_target(last, P("tl5.npy"), 5, NNRT_I32, 1);
    ASSERT_FAILS(1, "c.safetensors",
                 TRAIN(last, "wl.safetensors", "xl5.npy", "tl5.npy", "w3.safetensors",
                       "--checkpoint", P("c.safetensors"), "--resume", NULL));
    ck_assert(!exists(P("w3.safetensors")));
}
END_TEST

/* The progress lines on a non-terminal stderr, and stdout holding the final loss only. */
START_TEST(test_train_progress) {
    const nnrt_model *m = model_named("grad_rnn_tanh_mse_all");
    init_weights(m, "w.safetensors", "1");
    write_model_x(m, P("x.npy"), 5, 1);
    write_model_target(m, P("t.npy"), 5, NNRT_I32, 1);
    ck_assert_int_eq(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "w2.safetensors", "--steps", "7",
                           "--log-every", "3", NULL),
                     0);
    const char *want[] = {"step 3/7 loss ", "step 6/7 loss ", "step 7/7 loss "};
    const char *line = g_err;
    for (int k = 0; k < 3; k++) {
        ck_assert_msg(strncmp(line, want[k], strlen(want[k])) == 0, "stderr: %s", g_err);
        const char *end = strchr(line, '\n');
        ck_assert_ptr_nonnull(end);
        ck_assert_msg(end - line > 9 && strncmp(end - 8, " steps/s", 8) == 0, "stderr: %s", g_err);
        line = end + 1;
    }
    ck_assert_str_eq(line, "");
    ck_assert_msg(strncmp(g_out, "final loss ", 11) == 0 &&
                      strchr(g_out, '\n') == g_out + strlen(g_out) - 1,
                  "stdout: %s", g_out);
    /* default: about 20 lines */
    ck_assert_int_eq(
        TRAIN(m, "w.safetensors", "x.npy", "t.npy", "w2.safetensors", "--steps", "50", NULL), 0);
    int lines = 0;
    for (const char *p = g_err; *p; p++) lines += *p == '\n';
    ck_assert_int_eq(lines, 17); /* every 3 steps, and at step 50 */
    ck_assert_ptr_nonnull(strstr(g_err, "step 3/50 loss "));
    ck_assert_ptr_nonnull(strstr(g_err, "step 48/50 loss "));
    ck_assert_ptr_nonnull(strstr(g_err, "step 50/50 loss "));
}
END_TEST

/* On a terminal: one line redrawn in place, finished by a newline; an error starts on a line of
 * its own. The terminal turns each "\n" into "\r\n". */
START_TEST(test_train_progress_terminal) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        if (master >= 0) close(master);
        return; /* no pseudo-terminals here: nothing to test */
    }
    int hold = open(ptsname(master), O_RDWR | O_NOCTTY); /* keeps the terminal open between runs */
    ck_assert_int_ge(hold, 0);
    ck_assert_int_eq(fcntl(master, F_SETFL, O_NONBLOCK), 0);
    g_pty = master;

    const nnrt_model *m = model_named("grad_gru_mse_all"); /* seq_len 5 */
    init_weights(m, "w.safetensors", "1");
    write_model_x(m, P("x.npy"), 5, 1);
    write_model_target(m, P("t.npy"), 5, NNRT_I32, 1);
    ck_assert_int_eq(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "w2.safetensors", "--steps", "3",
                           "--log-every", "1", NULL),
                     0);
    ck_assert_msg(strncmp(g_err, "\rstep 1/3 [", 11) == 0, "terminal: %s", g_err);
    const char *last = strstr(g_err, "\rstep 3/3 [####################] loss ");
    ck_assert_msg(last != NULL, "terminal: %s", g_err);
    ck_assert_ptr_nonnull(strstr(last, " steps/s  ETA "));
    ck_assert_msg(strstr(last, "\033[K\r\n") == last + strlen(last) - 5, "terminal: %s", g_err);
    ck_assert_ptr_eq(strchr(g_err, '\n'), g_err + strlen(g_err) - 1); /* one line */
    ck_assert_ptr_null(strstr(g_err, "step 1/3 loss"));               /* no plain lines */
    ck_assert_msg(strncmp(g_out, "final loss ", 11) == 0, "stdout: %s", g_out);

    /* a NaN at step 2 of a stream: the error follows the progress line on a new line */
    write_model_x(m, P("x12.npy"), 12, 1);
    nnrt_array t;
    write_model_target(m, P("t12.npy"), 12, NNRT_I32, 1);
    t = read_npy(P("t12.npy"));
    ((double *)t.data)[6 * 2 * 2] = NAN;
    ck_assert_int_eq(nnrt_npy_write(P("t12.npy"), &t), NNRT_OK);
    nnrt_array_free(&t);
    ck_assert_int_eq(
        TRAIN(m, "w.safetensors", "x12.npy", "t12.npy", "w2.safetensors", "--steps", "3", NULL), 1);
    ck_assert_msg(strncmp(g_err, "\rstep 1/3 [", 11) == 0, "terminal: %s", g_err);
    ck_assert_msg(strstr(g_err, "\033[K\r\ngrad_gru_mse_all: error: step 2: loss is nan\r\n") !=
                      NULL,
                  "terminal: %s", g_err);

    g_pty = -1;
    close(hold);
    close(master);
}
END_TEST

START_TEST(test_train_help) {
    const nnrt_model *m = model_named("grad_lstm_mse_all");
    ck_assert_int_eq(run(m, "--help", NULL), 0);
    ck_assert_ptr_nonnull(strstr(g_out, "grad_lstm_mse_all grad -w W.safetensors -i X.npy -t "
                                        "TARGET.npy -o G.safetensors"));
    ck_assert_ptr_nonnull(strstr(
        g_out,
        "grad_lstm_mse_all train -w W.safetensors -i X.npy -t TARGET.npy [--steps N] [--lr R] "
        "[--optim adam|adamw|sgd] [--momentum M] [--nesterov] [--weight-decay D] [--clip NORM] "
        "[--checkpoint C.safetensors] [--every K] [--resume] [--log-every K] [--threads N] -o W2.safetensors"));
    ck_assert_int_eq(run(m, "train", "--help", NULL), 0);
    ck_assert_ptr_nonnull(strstr(g_out, "TARGET is float64 [T, 2, 2], loss mse."));
    ck_assert_ptr_nonnull(strstr(g_out, "--steps is the total"));
    ck_assert_ptr_nonnull(
        strstr(g_out, "T > 5: X is one long stream, trained with truncated BPTT"));
    ck_assert_int_eq(run(model_named("grad_gru_ce_last"), "grad", "-h", NULL), 0);
    ck_assert_ptr_nonnull(strstr(g_out, "X is float64 [T, 2, 3] with 1 <= T <= 5"));
    ck_assert_ptr_nonnull(strstr(
        g_out, "TARGET is int32 or int64 class indices [2] in 0..2 (output at the last step)."));
    ck_assert_int_eq(run(model_named("grad_gru_ce_last"), "train", "-h", NULL), 0);
    ck_assert_ptr_nonnull(
        strstr(g_out, "T > 5 is an error: this model's output is at the last step only."));
    ck_assert_str_eq(listing(), "");
}
END_TEST

/* ---- bench -----------------------------------------------------------------------------------
 * Timings vary from machine to machine and run to run: the tests check the shape of the output,
 * that every time is positive, and the FLOP counts, worked out by hand below, never a timing. */

/* FLOPs per call of two registry models, by hand (a multiply-add counts 2): per timestep and
 * sequence a recurrent layer costs 2*G*H*(in + H), a dense layer 2*in*out. */
typedef struct bench_expect {
    const char *model;
    int64_t step, forward, train;
} bench_expect;

static const bench_expect bench_expects[] = {
    /* lstm(4) on 3 inputs 2*4*4*7 = 224, lstm(3) 2*4*3*7 = 168; heads 3->5->4->2: 30 + 40 + 16;
     * B 2, T 5, output at all: step 2*(392 + 86), forward 5*2*(392 + 86), train 3 x forward. */
    {"grad_lstm_mse_all", 956, 4780, 14340},
    /* gru(3) on 5 inputs 2*3*3*8 = 144, gru(7) 2*3*7*10 = 420; heads 7->6->4->3->2: 84 + 48 + 24
     * + 12 = 168; B 2, T 9, output at the last step: step 2*(564 + 168), forward 9*2*564 + 2*168,
     * train 3 x forward. */
    {"fwd_gru_last_f32", 1464, 10488, 31464},
};

static const char *const bench_names[] = {"step", "forward", "train"};

/* stderr of a bench that succeeded: empty, or the warning about a busy machine. */
static void assert_bench_stderr_clean(const nnrt_model *m) {
    char warning[128];
    snprintf(warning, sizeof warning, "%s: warning: the machine is busy", m->name);
    ck_assert_msg(g_err[0] == '\0' || strncmp(g_err, warning, strlen(warning)) == 0, "stderr: %s",
                  g_err);
}

/* The integer member key of o, which must be there. */
static json_int_t json_int_member(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    ck_assert_msg(json_is_integer(v), "%s: missing or not an integer in %s", key, g_out);
    return json_integer_value(v);
}

START_TEST(test_bench_json) {
    for (size_t i = 0; i < sizeof bench_expects / sizeof bench_expects[0]; i++) {
        const bench_expect *e = &bench_expects[i];
        const nnrt_model *m = model_named(e->model);
        ck_assert_int_eq(run(m, "bench", "--steps", "3", "--json", NULL), 0);
        assert_bench_stderr_clean(m);
        /* one object on one line, nothing else */
        ck_assert_msg(strchr(g_out, '\n') == g_out + strlen(g_out) - 1, "stdout: %s", g_out);
        json_error_t error;
        json_t *o = json_loads(g_out, 0, &error);
        ck_assert_msg(o != NULL, "not JSON (%s): %s", error.text, g_out);
        ck_assert(json_is_object(o));

        size_t keys = 0;
        ck_assert_str_eq(json_string_value(json_object_get(o, "model")), m->name);
        ck_assert_str_eq(json_string_value(json_object_get(o, "isa")), m->isa);
        ck_assert_str_eq(json_string_value(json_object_get(o, "precision")),
                         m->dtype == NNRT_F64 ? "f64" : "f32");
        ck_assert_ptr_nonnull(
            strstr(json_string_value(json_object_get(o, "flops_train_convention")),
                   "train = 3 x forward"));
        keys += 4;
        ck_assert_int_eq(json_int_member(o, "threads"), 1);
        ck_assert_int_eq(json_int_member(o, "T"), m->seq_len);
        ck_assert_int_eq(json_int_member(o, "B"), m->batch);
        ck_assert_int_eq(json_int_member(o, "runs"), 3);
        ck_assert_int_eq(json_int_member(o, "flops_step"), e->step);
        ck_assert_int_eq(json_int_member(o, "flops_forward"), e->forward);
        ck_assert_int_eq(json_int_member(o, "flops_train"), e->train);
        keys += 7;
        for (int k = 0; k < 3; k++) {
            static const char *const reals[] = {"us", "min_us", "max_us", "gflops"};
            char key[64];
            for (int r = 0; r < 4; r++) {
                snprintf(key, sizeof key, "%s_%s", bench_names[k], reals[r]);
                json_t *v = json_object_get(o, key);
                ck_assert_msg(json_is_number(v) && json_number_value(v) > 0,
                              "%s: %s: missing or not a positive number in %s", m->name, key,
                              g_out);
            }
            snprintf(key, sizeof key, "%s_calls_per_run", bench_names[k]);
            ck_assert_int_ge(json_int_member(o, key), 1);
            snprintf(key, sizeof key, "%s_preempted_runs", bench_names[k]);
            json_int_t preempted = json_int_member(o, key);
            ck_assert(preempted >= 0 && preempted <= 3);
            keys += 6;
        }
        ck_assert_msg(json_object_size(o) == keys, "%s: %zu keys, expected %zu: %s", m->name,
                      json_object_size(o), keys, g_out);
        json_decref(o);
    }
    ck_assert_str_eq(listing(), ""); /* no file I/O */
}
END_TEST

START_TEST(test_bench_table) {
    const bench_expect *e = &bench_expects[0];
    const nnrt_model *m = model_named(e->model);
    ck_assert_int_eq(run(m, "bench", "--threads", "1", "--steps", "3", NULL), 0);
    assert_bench_stderr_clean(m);
    char head[256];
    snprintf(head, sizeof head, "%s bench: isa %s, f64, 1 thread, T 5, B 2; median of 3 runs",
             m->name, m->isa);
    ck_assert_msg(strncmp(g_out, head, strlen(head)) == 0, "stdout: %s", g_out);
    ck_assert_ptr_nonnull(strstr(g_out, "us/call"));
    ck_assert_ptr_nonnull(strstr(g_out, "GFLOP/s"));
    ck_assert_ptr_nonnull(strstr(g_out, "train = 3 x forward"));
    const int64_t flops[3] = {e->step, e->forward, e->train};
    for (int k = 0; k < 3; k++) {
        char start[32], name[16];
        snprintf(start, sizeof start, "\n  %s ", bench_names[k]);
        const char *row = strstr(g_out, start);
        ck_assert_msg(row != NULL, "no %s row: %s", bench_names[k], g_out);
        double us, lo, hi, gf;
        long long f, calls, preempted;
        ck_assert_int_eq(sscanf(row, " %15s %lf %lf %lf %lf %lld %lld %lld", name, &us, &lo, &hi,
                                &gf, &f, &calls, &preempted),
                         8);
        ck_assert_str_eq(name, bench_names[k]);
        ck_assert_msg(us > 0 && lo > 0 && hi > 0 && gf > 0, "%s row: %s", name, g_out);
        ck_assert_int_eq(f, flops[k]);
        ck_assert_int_ge(calls, 1);
        ck_assert(preempted >= 0 && preempted <= 3);
    }
    ck_assert_str_eq(listing(), "");
}
END_TEST

START_TEST(test_bench_bad_options) {
    const nnrt_model *m = model_named("grad_lstm_mse_all");
    static const struct {
        const char *args[3];
        const char *error;
    } cases[] = {
        {{"--steps", "0"}, "option --steps: expected a positive integer, found '0'"},
        {{"--steps", "-3"}, "option --steps: expected a positive integer, found '-3'"},
        {{"--steps", "2.5"}, "option --steps: expected a positive integer, found '2.5'"},
        {{"--steps", "1000001"}, "option --steps: at most 1000000 runs, found 1000001"},
        {{"--steps"}, "bench: option --steps needs a value (N)"},
        {{"--threads", "0"}, "option --threads: expected a positive integer, found '0'"},
        {{"--threads", "four"}, "option --threads: expected a positive integer, found 'four'"},
        {{"--json", "--json"}, "bench: option --json given twice"},
        {{"--iterations", "3"}, "bench: unknown option '--iterations'"},
        {{"sine"}, "bench: unexpected argument 'sine'"},
    };
    char prefix[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const *a = cases[i].args;
        ck_assert_msg(run(m, "bench", a[0], a[1], a[2], NULL) == 2, "bench %s %s", a[0],
                      a[1] ? a[1] : "");
        snprintf(prefix, sizeof prefix, "%s: error: %s", m->name, cases[i].error);
        ck_assert_msg(strncmp(g_err, prefix, strlen(prefix)) == 0, "stderr: %s", g_err);
        ck_assert_str_eq(g_out, ""); /* nothing was measured */
    }
    /* More threads than a team can have is a clear usage error. */
    ck_assert_int_eq(run(m, "bench", "--threads", "65", "--json", NULL), 2);
    snprintf(prefix, sizeof prefix, "%s: error: option --threads: 65 threads requested, at most 64\n", m->name);
    ck_assert_str_eq(g_err, prefix);
    ck_assert_str_eq(g_out, "");
    /* A descriptor without the entry points bench times cannot be benchmarked. */
    ck_assert_int_eq(run(&tiny, "bench", "--steps", "1", NULL), 2);
    ASSERT_ERR_STARTS("model tiny lacks entry points bench times (step_mt, forward_mt, forward_train_mt, "
                      "backward_mt) for this runtime: regenerate it");
    ck_assert_str_eq(g_out, "");
    ck_assert_str_eq(listing(), "");
}
END_TEST

START_TEST(test_bench_help) {
    const nnrt_model *m = model_named("grad_lstm_mse_all");
    ck_assert_int_eq(run(m, "--help", NULL), 0);
    ck_assert_ptr_nonnull(
        strstr(g_out, "grad_lstm_mse_all bench [--steps N] [--threads N] [--json]"));
    ck_assert_int_eq(run(m, "bench", "--help", NULL), 0);
    ck_assert_str_eq(g_err, "");
    ck_assert_ptr_nonnull(
        strstr(g_out, "usage: grad_lstm_mse_all bench [--steps N] [--threads N] [--json]"));
    ck_assert_ptr_nonnull(strstr(g_out, "one timestep of all B = 2 sequences"));
    ck_assert_ptr_nonnull(strstr(g_out, "2*G*H*(in + H) (G = 1 rnn, 3 gru, 4 lstm)"));
    ck_assert_ptr_nonnull(strstr(g_out, "train = 3 x forward: the backward does two products"));
    ck_assert_ptr_nonnull(strstr(g_out, "This model: step 956, forward 4780, train 14340 FLOP."));
    ck_assert_int_eq(run(model_named("fwd_gru_last_f32"), "bench", "-h", NULL), 0);
    ck_assert_ptr_nonnull(strstr(g_out, "the last step's B rows"));
    ck_assert_ptr_nonnull(strstr(g_out, "This model: step 1464, forward 10488, train 31464 FLOP."));
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

    tc = tcase("grad");
    tcase_add_test(tc, test_grad_matches_descriptor);
    tcase_add_test(tc, test_grad_int64_equals_int32);
    tcase_add_test(tc, test_grad_bad_input);
    suite_add_tcase(s, tc);

    tc = tcase("train");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_train_reduces_loss);
    tcase_add_test(tc, test_train_tbptt_by_hand);
    tcase_add_test(tc, test_train_resume_bitwise);
    tcase_add_test(tc, test_train_resume_at_end);
    tcase_add_test(tc, test_train_threads_bitwise);
    tcase_add_test(tc, test_train_nan_stops);
    tcase_add_test(tc, test_train_progress);
    tcase_add_test(tc, test_train_progress_terminal);
    suite_add_tcase(s, tc);

    tc = tcase("train_errors");
    tcase_add_test(tc, test_train_bad_options);
    tcase_add_test(tc, test_train_bad_input);
    tcase_add_test(tc, test_train_help);
    suite_add_tcase(s, tc);

    tc = tcase("bench");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_bench_json);
    tcase_add_test(tc, test_bench_table);
    tcase_add_test(tc, test_bench_bad_options);
    tcase_add_test(tc, test_bench_help);
    suite_add_tcase(s, tc);

    return s;
}
