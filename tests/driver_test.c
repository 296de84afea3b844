/* driver_test.c — what the driver's suites share (test_driver*.c): the tiny hand-written models,
 * a test directory per test, running the driver in-process with its output captured, writing and
 * reading the files it takes, and the descriptor driven by hand that grad and train must match.
 * driver_test.h describes each. */
#define _XOPEN_SOURCE 700 /* mkdtemp, dup, dup2, posix_openpt */
#include "driver_test.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_models.h"

int fwd_calls[64];
int fwd_ncalls;

double ld(const void *p, size_t i, int f64) {
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

const nnrt_model tiny = TINY_MODEL(NNRT_F32, float, 0, TINY_SEQ, tiny_reset_f32,
                                          tiny_pack_f32, tiny_step_f32, tiny_forward_f32);
const nnrt_model tiny_last = TINY_MODEL(NNRT_F32, float, 1, TINY_SEQ, tiny_reset_f32,
                                               tiny_pack_f32, tiny_step_f32, tiny_forward_f32_last);
const nnrt_model tiny64 = TINY_MODEL(NNRT_F64, double, 0, TINY_SEQ, tiny_reset_f64,
                                            tiny_pack_f64, tiny_step_f64, tiny_forward_f64);
const nnrt_model tiny_fails = TINY_MODEL(NNRT_F32, float, 0, TINY_SEQ, tiny_reset_f32,
                                                tiny_pack_f32, tiny_step_f32, tiny_forward_fails);
const nnrt_model tiny_long = TINY_MODEL(NNRT_F32, float, 0, 16, tiny_reset_f32,
                                               tiny_pack_f32, tiny_step_f32, tiny_forward_long);

/* The recurrence in double over all T steps at once: y[T][B][O]. */
void reference(const double *params, int T, const double *x, double *y) {
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

char tmpdir[64];

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
const char *P(const char *name) {
    static char ring[16][512];
    static int next;
    char *p = ring[next++ % 16];
    snprintf(p, sizeof ring[0], "%s/%s", tmpdir, name);
    return p;
}

static int compare_names(const void *a, const void *b) { return strcmp(a, b); }

/* Names in the test directory, sorted, joined with spaces: shows stray temporaries. */
const char *listing(void) {
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

int exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

char g_out[8192], g_err[8192];
int g_pty = -1;

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
int run(const nnrt_model *m, ...) {
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
void write_npy(const char *path, nnrt_dtype dt, int ndim, const int64_t *shape,
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
void write_x(const char *path, nnrt_dtype dt, int T, double *xs) {
    uint64_t s = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < T * TINY_B * TINY_I; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        xs[i] = (double)(s >> 11) / 9007199254740992.0 * 2 - 1;
    }
    int64_t shape[3] = {T, TINY_B, TINY_I};
    write_npy(path, dt, 3, shape, xs);
}

/* Weights W = [[1, 2], [3, 4]], b = [0.5, -0.5] written by hand, in dtype dt. */
const double known_params[TINY_NPARAMS] = {1, 2, 3, 4, 0.5, -0.5};
const double known_x[8] = {1, 0, 0, 1, 1, 1, 0, 0};
const double known_y[8] = {1.5, 2.5, 2.5, 3.5, 5, 9, 3, 3};

void write_known_weights(const char *path, nnrt_dtype dt) {
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
void check_npy(const char *path, nnrt_dtype dt, int ndim, const int64_t *shape,
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

int file_equals(const char *path, const char *content) {
    char buf[256];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n == strlen(content) && memcmp(buf, content, n) == 0;
}

void write_text(const char *path, const char *content) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(content, f);
    fclose(f);
}

const nnrt_model *model_named(const char *name) {
    for (int i = 0; i < rnnc_test_model_count; i++)
        if (strcmp(rnnc_test_models[i]->name, name) == 0) return rnnc_test_models[i];
    ck_abort_msg("test model %s is not in the registry", name);
    return NULL;
}

int is_ce(const nnrt_model *m) { return m->loss_kind == NNRT_LOSS_CROSS_ENTROPY; }

uint64_t lcg;

double urand(void) { /* [0, 1) */
    lcg = lcg * 6364136223846793005u + 1442695040888963407u;
    return (double)(lcg >> 11) / 9007199254740992.0;
}

/* X [T][B][I] in the model's dtype, uniform in [-1, 1). */
void write_model_x(const nnrt_model *m, const char *path, int64_t T, uint64_t seed) {
    size_t n = (size_t)T * (size_t)m->batch * (size_t)m->input;
    double *v = malloc(n * sizeof *v);
    ck_assert_ptr_nonnull(v);
    lcg = seed;
    for (size_t i = 0; i < n; i++) v[i] = urand() * 2 - 1;
    write_npy(path, m->dtype, 3, (int64_t[]){T, m->batch, m->input}, v);
    free(v);
}

/* The shape of the target for T steps: [T][B][O], [T][B], [B][O] or [B]. */
int target_shape(const nnrt_model *m, int64_t T, int64_t *shape, size_t *count) {
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
void write_model_target(const nnrt_model *m, const char *path, int64_t T, nnrt_dtype cdt,
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

nnrt_array read_npy(const char *path) {
    nnrt_array a;
    ck_assert_msg(nnrt_npy_read(path, &a) == NNRT_OK, "%s", nnrt_last_error());
    return a;
}

/* The target as the loss takes it: int32 class indices (converted from int64), else as read. */
void *loss_target(const nnrt_model *m, const nnrt_array *t) {
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

void *read_params(const nnrt_model *m, const char *path) {
    void *p = nnrt_alloc(m->params_bytes);
    ck_assert_ptr_nonnull(p);
    ck_assert_msg(nnrt_model_load(m, p, path) == NNRT_OK, "%s", nnrt_last_error());
    return p;
}

/* The whole file; *size receives its length. Free with free(). */
char *read_bytes(const char *path, size_t *size) {
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

int same_bytes(const char *a, const char *b) {
    size_t na, nb;
    char *da = read_bytes(a, &na), *db = read_bytes(b, &nb);
    int same = na == nb && memcmp(da, db, na) == 0;
    free(da);
    free(db);
    return same;
}

hand hand_open(const nnrt_model *m, int64_t T) {
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

void hand_close(hand *h) {
    nnrt_free(h->weights);
    nnrt_free(h->grads);
    nnrt_free(h->state);
    nnrt_free(h->tape);
    nnrt_free(h->y);
    nnrt_free(h->dy);
}

/* Chunk c from the current state: pack, forward_train, loss, and (with backward) the gradient
 * into the zeroed h->grads. Returns the loss; *steps receives the chunk's length. */
double hand_chunk(hand *h, const void *params, const char *x, const char *target, int64_t c,
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
double hand_eval(hand *h, const void *params, const char *x, const char *target) {
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
double hand_train(const nnrt_model *m, void *params, const char *xpath, const char *tpath,
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
const char *loss_line(const char *prefix, double loss) {
    static char buf[128];
    snprintf(buf, sizeof buf, "%s%.9g\n", prefix, loss);
    return buf;
}

/* `M init --seed S -o W` */
void init_weights(const nnrt_model *m, const char *w, const char *seed) {
    ck_assert_int_eq(run(m, "init", "--seed", seed, "-o", P(w), NULL), 0);
}

TCase *tcase(const char *name) {
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    return tc;
}
