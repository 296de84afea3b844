/* test_torch_grad.c — the "torch_grad" suite: training against PyTorch autograd, for every test
 * model named torch_* (tests/specs/torch).
 *
 * Test cases (one tcase; the loop tests run once per torch_ model):
 *  available     PyTorch is there (or the suite is visibly SKIPPED)
 *  gradients     loss, every parameter gradient (by tensor name) and dloss/dx of the generated
 *                forward_train + loss + backward against torch autograd, over seq_len steps from
 *                the zero state and over fewer steps from a random non-zero state (torch's h0/c0)
 *  tbptt         truncated BPTT: chunk 1 from the zero state, chunk 2 from chunk 1's final state
 *                (carried in the state struct; torch .detach()es it), backward twice into the
 *                same gradient without zeroing, against torch's accumulated .grad
 *  torch_to_c    the generated <name>.py trained with a few Adam steps in torch and saved with its
 *                save(): nnrt_model_load reads it and the C forward equals torch's
 *  c_to_torch    the C model trained with a few nnrt_optim Adam steps through the descriptor and
 *                saved with nnrt_model_save: the generated <name>.py's load() reads it, its forward
 *                equals C's, and one more torch Adam step runs on it (the loss must stay finite)
 *
 * How. Once per run (an unchecked fixture, in the runner's own process) the suite writes each
 * torch_ model's architecture, read from its descriptor, as arch.json into a fresh temporary
 * directory and runs tests/torch_grad.py once for all of them ("ref" mode) with Debian's python
 * (/usr/bin/python3, or $RNNC_PYTHON; never whatever python3 comes first on PATH). The script
 * builds the network of tests/torch_forward.py (torch.nn.LSTM / GRU / RNN per layer, nn.Linear
 * heads, torch's default init under a fixed seed), writes the weights as safetensors under
 * DESIGN.md's names, the inputs, targets and start states, and torch's loss, .grad of every
 * parameter (safetensors, same names: the C side reads them with nnrt_model_load, so every tensor
 * is matched by name) and x.grad; then it trains the generated module and saves it. The
 * c_to_torch test runs the script a second time ("c2t" mode), once for all models, after it has
 * trained and saved them in C. The generated modules are imported from the directory the test
 * models were generated into: $RNNC_TEST_GEN, else -DRNNC_TEST_GEN_DIR if the Makefile passes it,
 * else the first of out/tests/models and out/tests/sanitize that holds them all.
 *
 * Tolerances, |got - torch| <= atol + rtol*|torch| per element. Measured maxima below are over
 * nine seeds (GRAD_SEED and 1..8) of all twelve torch_ models, torch 1.13 on x86-64, scalar ISA.
 *  - loss: rtol f32 1e-5, f64 1e-13. The C loss is a mean accumulated in double over outputs
 *    computed in the model's dtype; torch accumulates in the dtype. The outputs differ by a few
 *    ulp (different summation orders and tanh/exp on both sides) and the mean adds a few more.
 *    Measured: f32 4.3e-7, f64 1.6e-15 relative; the margins are 20x and 60x.
 *  - gradients (each tensor on its own, matched by name) and dx: rtol f32 1e-4, f64 1e-11, and
 *    atol = rtol * (the largest |torch| of the same tensor, or of dx). An element of a gradient is
 *    a sum over T*B rows of products carried back through up to T steps and every layer; where the
 *    sum cancels to nearly zero its rounding error is relative to its terms, not to the result, so
 *    relative error alone is meaningless for small elements (measured elementwise maxima, over
 *    elements >= 1e-3 of their tensor's largest: f32 2.3e-4, f64 1.1e-12); the tensor's own scale
 *    is the natural absolute floor. Measured max |got - torch| / (the tensor's largest |torch|):
 *    f32 5.6e-6 (gradients) and 1.7e-6 (dx), f64 6.6e-15 and 5.0e-15: every quantity on both
 *    sides carries a few ulp (f32 6e-8, f64 1.1e-16) and BPTT chains a few dozen of them per path.
 *    The margins are >= 18x (f32) and >= 1500x (f64), and the same rtol as the forward suites
 *    (tests/test_forward.c, tests/test_torch.c); a missing or wrong term is O(1) relative, and
 *    an error of 0.1% in the largest element of any one tensor already fails.
 *  - forward outputs and final states in the workflow tests: as the forward suites, f32 atol 1e-5
 *    + rtol 1e-4, f64 atol 1e-12 + rtol 1e-11 (measured max abs: f32 4.8e-7, f64 6.7e-16); the
 *    losses of those outputs, computed by C and by the generated module, as the loss above.
 *  - the torch Adam step on the C-trained weights must leave a finite loss; the line reports
 *    whether it went down (it did for every model and seed measured).
 *
 * One line per model and test reports the largest errors per category: absolute (max_abs),
 * relative (max_rel, counted where |torch| >= 1e-3 times the tensor's largest value, naming the
 * tensor) and, for gradients and dx, relative to the tensor's largest value (scaled: what the
 * tolerance bounds).
 *
 * RNNC_TORCH_KEEP=1 keeps the temporary directory (torch's files and arch.json; its path is
 * printed) for debugging a mismatch by hand.
 *
 * When python cannot import torch and numpy the suite prints "SKIPPED: PyTorch gradient
 * conformance: <reason>" and passes, unless RNNC_REQUIRE_TORCH=1 (set by CI), where it fails.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw, popen */

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nnrt.h"
#include "reference.h"
#include "test_models.h"
#include "torch_common.h"

#ifndef RNNC_SOURCE_DIR
#error "compile with -DRNNC_SOURCE_DIR=\"/path/to/the/repo\" (the Makefile passes $(CURDIR))"
#endif

Suite *torch_grad_suite(void);

#ifndef GRAD_SEED
#define GRAD_SEED 20240611
#endif
#define SKIP_STATUS 77 /* torch_grad.py: torch or numpy cannot be imported */
#define TRAIN_STEPS 5  /* Adam steps of the workflow tests, on either side */
#define TRAIN_LR 1e-2
#define STEP_LR 1e-3 /* the one torch step on the C-trained weights */
#define MAX_REPORTS 8 /* mismatch messages printed per test */

/* Tolerances; see the header comment. */
#define LOSS_RTOL(m) ((m)->dtype == NNRT_F32 ? 1e-5 : 1e-13)
#define GRAD_RTOL(m) ((m)->dtype == NNRT_F32 ? 1e-4 : 1e-11)
#define FWD_ATOL(m) ((m)->dtype == NNRT_F32 ? 1e-5 : 1e-12)
#define FWD_RTOL(m) ((m)->dtype == NNRT_F32 ? 1e-4 : 1e-11)
#define REL_FLOOR 1e-3 /* max_rel counts elements with |torch| >= REL_FLOOR * scale */

/* ======================================= Helpers ============================================ */

enum { TORCH_READY, TORCH_SKIPPED, TORCH_BROKEN };
static int g_status;          /* TORCH_* */
static char g_reason[16384];  /* why skipped or broken */
static char g_dir[1024];      /* the temporary directory, "" when none */
static char g_models[1200];   /* where the generated <name>.py modules are */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static const char *loss_name(int kind)
{
    switch (kind) {
    case NNRT_LOSS_MSE: return "mse";
    case NNRT_LOSS_CROSS_ENTROPY: return "cross_entropy";
    case NNRT_LOSS_BCE: return "bce";
    default: return "?";
    }
}

/* The runs: seq_len steps from the zero state; fewer from a non-zero state; the two TBPTT chunks. */
static int warm_T(const nnrt_model *m)
{
    int T = m->seq_len - m->seq_len / 3;
    return T > 0 ? T : 1;
}

static int tbptt_T(const nnrt_model *m, int chunk) { return chunk == 1 ? m->seq_len : (m->seq_len + 1) / 2; }

static int is_ce(const nnrt_model *m) { return m->loss_kind == NNRT_LOSS_CROSS_ENTROPY; }

/* Shapes of the arrays of a T-step run; each returns ndim. */
static int x_shape(const nnrt_model *m, int T, int64_t *shape)
{
    shape[0] = T;
    shape[1] = m->batch;
    shape[2] = m->input;
    return 3;
}

static int y_shape(const nnrt_model *m, int T, int64_t *shape)
{
    int n = 0;
    if (!m->output_last) shape[n++] = T;
    shape[n++] = m->batch;
    shape[n++] = m->output;
    return n;
}

static int target_shape(const nnrt_model *m, int T, int64_t *shape)
{
    int n = y_shape(m, T, shape);
    return is_ce(m) ? n - 1 : n; /* class indices: no O */
}

static size_t shape_count(int ndim, const int64_t *shape)
{
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    return n;
}

/* Writes DIR/<name>/arch.json for model m (tests/torch_grad.py documents the fields). */
static int write_arch(const nnrt_model *m, const char *dir, char *err, size_t err_size)
{
    static const char *const dtypes[] = {"float32", "float64"};
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, m->name);
    if (mkdir(path, 0700) != 0) {
        snprintf(err, err_size, "mkdir %s: %s", path, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s/arch.json", dir, m->name);
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f, "{\"name\": \"%s\", \"dtype\": \"%s\", \"input\": %d, \"batch\": %d, "
               "\"seq_len\": %d, \"output\": %d, \"output_last\": %d, \"seed\": %d, "
               "\"loss\": \"%s\",\n",
            m->name, dtypes[m->dtype == NNRT_F64], m->input, m->batch, m->seq_len, m->output,
            m->output_last, GRAD_SEED, loss_name(m->loss_kind));
    write_architecture(f, m);
    fprintf(f, "],\n \"runs\": [{\"tag\": \"zero\", \"T\": %d, \"warm\": 0}, "
               "{\"tag\": \"warm\", \"T\": %d, \"warm\": 1}],\n",
            m->seq_len, warm_T(m));
    fprintf(f, " \"tbptt\": [%d, %d], \"train\": {\"steps\": %d, \"lr\": %.17g}, "
               "\"step_lr\": %.17g}\n",
            tbptt_T(m, 1), tbptt_T(m, 2), TRAIN_STEPS, TRAIN_LR, STEP_LR);
    if (fclose(f) != 0) {
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Runs tests/torch_grad.py MODE over every torch_ model's directory. Returns 0 when it
 * succeeded, SKIP_STATUS when torch is missing (reason in out), else -1 (output in out). */
static int run_script(const char *mode, char *out, size_t out_size)
{
    static char cmd[32768];
    cmd[0] = '\0';
    append_quoted(cmd, sizeof cmd, python_path());
    append(cmd, sizeof cmd, " ");
    append_quoted(cmd, sizeof cmd, RNNC_SOURCE_DIR "/tests/torch_grad.py");
    append(cmd, sizeof cmd, " ");
    append(cmd, sizeof cmd, mode);
    append(cmd, sizeof cmd, " ");
    append_quoted(cmd, sizeof cmd, g_models);
    for (int n = 0; torch_model_index(n) >= 0; n++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", g_dir, rnnc_test_models[torch_model_index(n)]->name);
        append(cmd, sizeof cmd, " ");
        append_quoted(cmd, sizeof cmd, path);
    }
    append(cmd, sizeof cmd, " 2>&1");
    int rc = run_command(cmd, out, out_size);
    if (rc == 0 || rc == SKIP_STATUS) return rc;
    if (rc == 126 || rc == 127) { /* sh: python is not there or not executable */
        char line[1024];
        last_line(out, line, sizeof line);
        snprintf(out, out_size, "cannot run %s: %s", python_path(), line);
        return SKIP_STATUS;
    }
    char tail[12288];
    snprintf(tail, sizeof tail, "%s", out);
    snprintf(out, out_size, "tests/torch_grad.py %s failed (status %d):\n%s", mode, rc, tail);
    return -1;
}

/* Whether dir holds the generated module of every torch_ model. */
static int has_modules(const char *dir)
{
    for (int n = 0; torch_model_index(n) >= 0; n++) {
        char path[1400];
        snprintf(path, sizeof path, "%s/%s.py", dir, rnnc_test_models[torch_model_index(n)]->name);
        if (access(path, R_OK) != 0) return 0;
    }
    return 1;
}

/* Finds the directory of the generated <name>.py modules: $RNNC_TEST_GEN when set, else
 * RNNC_TEST_GEN_DIR when the Makefile defines it (the directory this runner's models were
 * generated into), else the first of the Makefile's two generation directories that holds them. */
static int find_models_dir(void)
{
    const char *env = getenv("RNNC_TEST_GEN");
    const char *fallbacks[] = {RNNC_SOURCE_DIR "/out/tests/models", RNNC_SOURCE_DIR "/out/tests/sanitize"};
    const char *only = env && *env ? env : NULL;
#ifdef RNNC_TEST_GEN_DIR
    if (!only) only = RNNC_TEST_GEN_DIR;
#endif
    for (size_t i = 0; i < 2; i++) {
        const char *dir = only ? only : fallbacks[i];
        if (has_modules(dir)) {
            snprintf(g_models, sizeof g_models, "%s", dir);
            return 0;
        }
        if (only) break;
    }
    snprintf(g_reason, sizeof g_reason,
             "no generated PyTorch module <name>.py for every torch_ model in %s (`rnnc generate` "
             "writes them beside the C sources)",
             only ? only : RNNC_SOURCE_DIR "/out/tests/models or " RNNC_SOURCE_DIR "/out/tests/sanitize");
    return -1;
}

/* ==================================== The fixture =========================================== */

static void grad_setup(void)
{
    static char out[16384];
    g_status = TORCH_BROKEN;
    g_reason[0] = g_dir[0] = g_models[0] = '\0';
    if (torch_model_count() == 0) {
        g_status = TORCH_SKIPPED;
        snprintf(g_reason, sizeof g_reason, "no torch_* test models are registered");
        return;
    }
    if (find_models_dir() != 0) return;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/rnnc-torch-grad-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        snprintf(g_reason, sizeof g_reason, "mkdtemp %s: %s", g_dir, strerror(errno));
        g_dir[0] = '\0';
        return;
    }
    for (int n = 0; torch_model_index(n) >= 0; n++) {
        const nnrt_model *m = rnnc_test_models[torch_model_index(n)];
        char msg[2048];
        if (ref_check_model(m, msg, sizeof msg) != 0 || write_arch(m, g_dir, msg, sizeof msg) != 0) {
            snprintf(g_reason, sizeof g_reason, "%s", msg);
            return;
        }
        if (!ref_state_layout_ok(m)) {
            snprintf(g_reason, sizeof g_reason,
                     "%s: state_bytes %zu does not match the layout h_k[B][H_k] (then c_k for "
                     "lstm) per layer", m->name, m->state_bytes);
            return;
        }
    }

    /* PyTorch's side, once for all models. */
    int rc = run_script("ref", out, sizeof out);
    if (rc == SKIP_STATUS) {
        last_line(out, g_reason, sizeof g_reason);
        g_status = TORCH_SKIPPED;
        if (torch_required()) {
            g_status = TORCH_BROKEN;
            fprintf(stderr, "FAILED: PyTorch gradient conformance: %s (RNNC_REQUIRE_TORCH=1)\n",
                    g_reason);
        } else {
            fprintf(stderr, "SKIPPED: PyTorch gradient conformance: %s\n", g_reason);
        }
        return;
    }
    if (rc != 0) {
        snprintf(g_reason, sizeof g_reason, "%s", out);
        return;
    }
    g_status = TORCH_READY;
}

static void grad_teardown(void)
{
    const char *keep = getenv("RNNC_TORCH_KEEP");
    if (g_dir[0] && keep && strcmp(keep, "1") == 0)
        fprintf(stderr, "torch_grad: kept %s (RNNC_TORCH_KEEP=1)\n", g_dir);
    else if (g_dir[0])
        nftw(g_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    g_dir[0] = '\0';
}

/* Whether a test should go on; passes quietly when skipped, fails when broken. */
static int ready(void)
{
    if (g_status == TORCH_READY) return 1;
    ck_assert_msg(g_status == TORCH_SKIPPED && !torch_required(),
                  "PyTorch gradient conformance: %s", g_reason);
    return 0;
}

/* ================================ Reporting and comparing =================================== */

static char g_msg[2048];
static int g_failures;

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static void failure(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_failures == 0) snprintf(g_msg, sizeof g_msg, "%s", msg);
    if (g_failures < MAX_REPORTS) fprintf(stderr, "torch_grad: %s\n", msg);
    g_failures++;
}

/* The largest errors of one category. */
typedef struct err_stat {
    double max_abs;    /* max |got - torch| (infinity when got holds a NaN) */
    double max_rel;    /* max |got - torch| / |torch| over elements with |torch| >= REL_FLOOR * scale */
    const char *where; /* what max_rel belongs to (a tensor name), or NULL */
    double max_scaled; /* max |got - torch| / max |torch| of the same tensor (what atol bounds) */
} err_stat;

static void stat_add(err_stat *s, double abs_err, double rel_err, const char *where)
{
    if (abs_err > s->max_abs) s->max_abs = abs_err;
    if (rel_err > s->max_rel) {
        s->max_rel = rel_err;
        s->where = where;
    }
}

/* What element i of an array of a given kind is. */
enum { KIND_X, KIND_Y, KIND_STATE, KIND_TENSOR };

static void describe(const nnrt_model *m, int kind, const nnrt_param_desc *d, size_t i, char *buf,
                     size_t size)
{
    size_t B = (size_t)m->batch, I = (size_t)m->input;
    switch (kind) {
    case KIND_X: snprintf(buf, size, "[t %zu][b %zu][i %zu]", i / (B * I), i / I % B, i % I); break;
    case KIND_Y: ref_describe_y(m, 0, i, buf, size); break;
    case KIND_STATE: ref_describe_state(m, i, buf, size); break;
    default:
        if (d->ndim == 2)
            snprintf(buf, size, "[%zu][%zu]", i / (size_t)d->shape[1], i % (size_t)d->shape[1]);
        else
            snprintf(buf, size, "[%zu]", i);
        break;
    }
}

/* Compares got with torch's ref (n values) elementwise: |got - ref| <= atol + rtol*|ref|, with
 * atol = atol_abs + atol_scale * max|ref|. Folds the errors into s; reports the first mismatch. */
static void compare(const nnrt_model *m, const char *what, int kind, const nnrt_param_desc *d,
                    const double *got, const double *ref, size_t n, double atol_abs, double atol_scale,
                    double rtol, err_stat *s)
{
    double scale = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(ref[i]) > scale) scale = fabs(ref[i]);
    double atol = atol_abs + atol_scale * scale;
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs(got[i] - ref[i]);
        if (isnan(err)) err = INFINITY;
        if (!(err <= atol + rtol * fabs(ref[i]))) {
            if (bad++ == 0) first = i;
        }
        double rel = fabs(ref[i]) > 0 && fabs(ref[i]) >= REL_FLOOR * scale ? err / fabs(ref[i]) : 0.0;
        stat_add(s, err, rel, d ? d->name : what);
        if (scale > 0 && err / scale > s->max_scaled) s->max_scaled = err / scale;
    }
    if (bad) {
        char where[128];
        describe(m, kind, d, first, where, sizeof where);
        failure("%s: %s: %zu of %zu values differ from torch; first %s%s (index %zu): got %.10g, "
                "torch %.10g (allowed error %.3g)",
                m->name, what, bad, n, d ? d->name : "", where, first, got[first], ref[first],
                atol + rtol * fabs(ref[first]));
    }
}

static void compare_loss(const nnrt_model *m, const char *what, double got, double ref, double rtol,
                         err_stat *s)
{
    double err = fabs(got - ref);
    if (isnan(err)) err = INFINITY;
    stat_add(s, err, ref != 0 ? err / fabs(ref) : err, NULL);
    if (!(err <= rtol * fabs(ref)))
        failure("%s: %s: got %.17g, torch %.17g (relative error %.3g, allowed %.3g)", m->name, what,
                got, ref, err / fabs(ref), rtol);
}

/* ================================== Files from torch ========================================= */

/* Reads DIR/<model>/<file>: an array of dtype with the given shape, copied raw into dst. */
static int read_npy(const nnrt_model *m, const char *file, nnrt_dtype dtype, int ndim,
                    const int64_t *shape, void *dst)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s/%s", g_dir, m->name, file);
    nnrt_array a;
    int rc = nnrt_npy_read(path, &a);
    if (rc != NNRT_OK) {
        failure("%s: %s", m->name, nnrt_last_error());
        return -1;
    }
    int ok = a.dtype == dtype && a.ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = a.shape[d] == shape[d];
    if (!ok)
        failure("%s: %s: dtype %s ndim %d, expected %s ndim %d", m->name, file,
                nnrt_dtype_name(a.dtype), a.ndim, nnrt_dtype_name(dtype), ndim);
    else
        memcpy(dst, a.data, a.count * nnrt_dtype_size(dtype));
    nnrt_array_free(&a);
    return ok ? 0 : -1;
}

/* Reads a float64 [n] array (torch's losses). */
static int read_losses(const nnrt_model *m, const char *file, int n, double *dst)
{
    int64_t shape[1] = {n};
    return read_npy(m, file, NNRT_F64, 1, shape, dst);
}

/* Reads torch's per-layer state files <prefix>_l{k}.npy, h (or c when is_c) into s (double). */
static int read_state(const nnrt_model *m, const char *prefix, int is_c, double *s, void *scratch)
{
    memset(s, 0, ref_state_count(m) * sizeof *s);
    for (int k = 0; k < m->num_layers; k++) {
        if (is_c && m->layers[k].cell != NNRT_CELL_LSTM) continue;
        char file[160];
        int64_t shape[2] = {m->batch, m->layers[k].hidden};
        snprintf(file, sizeof file, "%s_l%d.npy", prefix, k);
        if (read_npy(m, file, m->dtype, 2, shape, scratch) != 0) return -1;
        ref_to_double(m, scratch, s + ref_state_offset(m, k), (size_t)m->batch * (size_t)m->layers[k].hidden);
    }
    return 0;
}

static int load_weights(const nnrt_model *m, const char *file, void *params)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s/%s", g_dir, m->name, file);
    int rc = nnrt_model_load(m, params, path);
    if (rc != NNRT_OK) {
        failure("%s: nnrt_model_load(%s) returned %d (%s): %s", m->name, file, rc, nnrt_strerror(rc),
                nnrt_last_error());
        return -1;
    }
    return 0;
}

/* ============================= Buffers of one model's test ================================== */

typedef struct bufs {
    const nnrt_model *m;
    void *params, *grads, *tgrads; /* model dtype, flat; tgrads: torch's gradients */
    void *weights;                 /* params packed for the forward, repacked before each one */
    void *state, *tape, *work;
    void *x, *y, *dy, *dx, *target, *scratch; /* model dtype (target: target_dtype), seq_len steps */
    double *a, *b;                            /* double scratch, max(num_params, x, y, state) */
    double *h, *c, *ht, *ct;                  /* reference-layout states */
} bufs;

static int bufs_init(bufs *b, const nnrt_model *m)
{
    memset(b, 0, sizeof *b);
    b->m = m;
    size_t es = nnrt_dtype_size(m->dtype), ns = ref_state_count(m);
    size_t nx = ref_x_count(m, m->seq_len), ny = ref_y_count(m, m->seq_len);
    size_t nd = m->num_params;
    if (nx > nd) nd = nx;
    if (ny > nd) nd = ny;
    if (ns > nd) nd = ns;
    b->params = nnrt_alloc(m->params_bytes);
    b->weights = nnrt_alloc(m->weights_bytes);
    b->grads = nnrt_alloc(m->params_bytes);
    b->tgrads = nnrt_alloc(m->params_bytes);
    b->state = nnrt_alloc(m->state_bytes);
    b->tape = nnrt_alloc(m->tape_bytes);
    b->work = nnrt_alloc(m->work_bytes);
    b->x = nnrt_alloc(nx * es);
    b->dx = nnrt_alloc(nx * es);
    b->y = nnrt_alloc(ny * es);
    b->dy = nnrt_alloc(ny * es);
    b->target = nnrt_alloc(ny * 8);
    b->scratch = nnrt_alloc(nd * 8);
    b->a = malloc(nd * sizeof(double));
    b->b = malloc(nd * sizeof(double));
    b->h = malloc(ns * sizeof(double));
    b->c = malloc(ns * sizeof(double));
    b->ht = malloc(ns * sizeof(double));
    b->ct = malloc(ns * sizeof(double));
    return b->params && b->weights && b->grads && b->tgrads && b->state && b->tape && b->work && b->x && b->dx &&
                   b->y && b->dy && b->target && b->scratch && b->a && b->b && b->h && b->c &&
                   b->ht && b->ct
               ? 0
               : -1;
}

static void bufs_free(bufs *b)
{
    void *aligned[] = {b->params, b->weights, b->grads, b->tgrads, b->state, b->tape, b->work,
                       b->x,      b->dx,    b->y,      b->dy,    b->target, b->scratch};
    for (size_t i = 0; i < sizeof aligned / sizeof aligned[0]; i++) nnrt_free(aligned[i]);
    double *plain[] = {b->a, b->b, b->h, b->c, b->ht, b->ct};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) free(plain[i]);
    memset(b, 0, sizeof *b);
}

/* Reads torch's x_<tag>.npy and target_<tag>.npy of a T-step run into b->x and b->target. */
static int read_data(bufs *b, const char *tag, int T)
{
    const nnrt_model *m = b->m;
    int64_t shape[3];
    char file[128];
    int nd = x_shape(m, T, shape);
    snprintf(file, sizeof file, "x_%s.npy", tag);
    if (read_npy(m, file, m->dtype, nd, shape, b->x) != 0) return -1;
    nd = target_shape(m, T, shape);
    snprintf(file, sizeof file, "target_%s.npy", tag);
    return read_npy(m, file, m->target_dtype, nd, shape, b->target);
}

/* forward_train over T steps from b->state, the loss against b->target, and the backward pass
 * adding into b->grads and writing b->dx. */
static int train_step(bufs *b, int T, double *loss)
{
    const nnrt_model *m = b->m;
    m->pack(b->params, b->weights);
    int rc = m->forward_train(b->weights, b->state, b->tape, T, b->x, b->y);
    if (rc != NNRT_OK) {
        failure("%s: forward_train(T=%d) returned %d (%s): %s", m->name, T, rc, nnrt_strerror(rc),
                nnrt_last_error());
        return -1;
    }
    rc = m->loss(T, b->y, b->target, loss, b->dy);
    if (rc != NNRT_OK) {
        failure("%s: loss(T=%d) returned %d (%s): %s", m->name, T, rc, nnrt_strerror(rc),
                nnrt_last_error());
        return -1;
    }
    rc = m->backward(b->params, b->tape, b->x, b->dy, b->grads, b->dx);
    if (rc != NNRT_OK) {
        failure("%s: backward(T=%d) returned %d (%s): %s", m->name, T, rc, nnrt_strerror(rc),
                nnrt_last_error());
        return -1;
    }
    return 0;
}

/* Compares b->grads with torch's gradients in DIR/<model>/<file>, tensor by tensor. */
static int compare_grads(bufs *b, const char *file, const char *what, err_stat *s)
{
    const nnrt_model *m = b->m;
    if (load_weights(m, file, b->tgrads) != 0) return -1;
    ref_to_double(m, b->grads, b->a, m->num_params);
    ref_to_double(m, b->tgrads, b->b, m->num_params);
    for (int t = 0; t < m->num_tensors; t++) {
        const nnrt_param_desc *d = &m->tensors[t];
        char label[256];
        snprintf(label, sizeof label, "%s: gradient of %s", what, d->name);
        compare(m, label, KIND_TENSOR, d, b->a + d->offset, b->b + d->offset, d->count, 0.0,
                GRAD_RTOL(m), GRAD_RTOL(m), s);
    }
    return 0;
}

/* Compares b->dx (T steps) with torch's x.grad in DIR/<model>/<file>. */
static int compare_dx(bufs *b, const char *file, const char *what, int T, err_stat *s)
{
    const nnrt_model *m = b->m;
    int64_t shape[3];
    int nd = x_shape(m, T, shape);
    if (read_npy(m, file, m->dtype, nd, shape, b->scratch) != 0) return -1;
    size_t n = shape_count(nd, shape);
    ref_to_double(m, b->dx, b->a, n);
    ref_to_double(m, b->scratch, b->b, n);
    compare(m, what, KIND_X, NULL, b->a, b->b, n, 0.0, GRAD_RTOL(m), GRAD_RTOL(m), s);
    return 0;
}

static const char *prec(const nnrt_model *m) { return m->dtype == NNRT_F32 ? "f32" : "f64"; }

/* ====================================== The tests =========================================== */

START_TEST(test_available)
{
    if (g_status == TORCH_SKIPPED) {
        ck_assert_msg(!torch_required(), "PyTorch gradient conformance: %s (RNNC_REQUIRE_TORCH=1)",
                      g_reason);
        return;
    }
    ck_assert_msg(g_status == TORCH_READY, "PyTorch gradient conformance: %s", g_reason);
}
END_TEST

/* Loss, every gradient and dx, from the zero state (seq_len steps) and from torch's random h0/c0
 * (warm_T steps). */
START_TEST(test_gradients)
{
    if (!ready()) return;
    g_msg[0] = '\0';
    g_failures = 0;
    const nnrt_model *m = rnnc_test_models[torch_model_index(_i)];
    bufs b;
    ck_assert_msg(bufs_init(&b, m) == 0, "out of memory");
    err_stat loss_err = {0, 0, NULL, 0}, grad_err = loss_err, dx_err = loss_err;
    if (load_weights(m, "weights.safetensors", b.params) != 0) goto done;

    static const char *const tags[2] = {"zero", "warm"};
    for (int run = 0; run < 2; run++) {
        const char *tag = tags[run];
        int T = run == 0 ? m->seq_len : warm_T(m);
        char file[128], what[128];
        double loss, tloss;
        if (read_data(&b, tag, T) != 0) goto done;
        m->reset(b.state);
        if (run == 1) {
            snprintf(file, sizeof file, "h0_%s", tag);
            if (read_state(m, file, 0, b.h, b.scratch) != 0) goto done;
            snprintf(file, sizeof file, "c0_%s", tag);
            if (read_state(m, file, 1, b.c, b.scratch) != 0) goto done;
            ref_state_pack(m, b.h, b.c, b.state);
        }
        memset(b.grads, 0, m->params_bytes);
        if (train_step(&b, T, &loss) != 0) goto done;

        snprintf(file, sizeof file, "loss_%s.npy", tag);
        if (read_losses(m, file, 1, &tloss) != 0) goto done;
        snprintf(what, sizeof what, "loss, T=%d from the %s state", T, run ? "non-zero" : "zero");
        compare_loss(m, what, loss, tloss, LOSS_RTOL(m), &loss_err);
        snprintf(file, sizeof file, "grad_%s.safetensors", tag);
        snprintf(what, sizeof what, "T=%d from the %s state", T, run ? "non-zero" : "zero");
        if (compare_grads(&b, file, what, &grad_err) != 0) goto done;
        snprintf(file, sizeof file, "dx_%s.npy", tag);
        snprintf(what, sizeof what, "dx, T=%d from the %s state", T, run ? "non-zero" : "zero");
        if (compare_dx(&b, file, what, T, &dx_err) != 0) goto done;
    }
    printf("torch grad:   %-27s %s %-13s B=%d T=%2d: loss rel %.1e | grad max_abs %.1e max_rel "
           "%.1e (%s) scaled %.1e | dx max_abs %.1e max_rel %.1e scaled %.1e\n",
           m->name, prec(m), loss_name(m->loss_kind), m->batch, m->seq_len, loss_err.max_rel,
           grad_err.max_abs, grad_err.max_rel, grad_err.where ? grad_err.where : "-",
           grad_err.max_scaled, dx_err.max_abs, dx_err.max_rel, dx_err.max_scaled);
    fflush(stdout);

done:
    bufs_free(&b);
    ck_assert_msg(g_failures == 0, "%s (%d failing check%s in all)", g_msg, g_failures,
                  g_failures == 1 ? "" : "s");
}
END_TEST

/* Truncated BPTT: two chunks, the state carried in the state struct, backward twice into the
 * same gradient. */
START_TEST(test_tbptt)
{
    if (!ready()) return;
    g_msg[0] = '\0';
    g_failures = 0;
    const nnrt_model *m = rnnc_test_models[torch_model_index(_i)];
    bufs b;
    ck_assert_msg(bufs_init(&b, m) == 0, "out of memory");
    err_stat loss_err = {0, 0, NULL, 0}, grad_err = loss_err, dx_err = loss_err;
    double tloss[2];
    if (load_weights(m, "weights.safetensors", b.params) != 0) goto done;
    if (read_losses(m, "loss_tb.npy", 2, tloss) != 0) goto done;

    m->reset(b.state);
    memset(b.grads, 0, m->params_bytes); /* once: the second backward adds to the first */
    for (int chunk = 1; chunk <= 2; chunk++) {
        int T = tbptt_T(m, chunk);
        char tag[16], file[64], what[128];
        double loss;
        snprintf(tag, sizeof tag, "tb%d", chunk);
        if (read_data(&b, tag, T) != 0) goto done;
        /* Chunk 2 starts from whatever chunk 1 left in b.state. */
        if (train_step(&b, T, &loss) != 0) goto done;
        snprintf(what, sizeof what, "TBPTT chunk %d (T=%d): loss", chunk, T);
        compare_loss(m, what, loss, tloss[chunk - 1], LOSS_RTOL(m), &loss_err);
        snprintf(file, sizeof file, "dx_%s.npy", tag);
        snprintf(what, sizeof what, "TBPTT chunk %d (T=%d): dx", chunk, T);
        if (compare_dx(&b, file, what, T, &dx_err) != 0) goto done;
    }
    if (compare_grads(&b, "grad_tb.safetensors", "TBPTT, accumulated over both chunks", &grad_err) != 0)
        goto done;
    printf("torch tbptt:  %-27s %s T=%2d+%-2d: loss rel %.1e | accumulated grad max_abs %.1e max_rel "
           "%.1e (%s) scaled %.1e | dx max_abs %.1e max_rel %.1e scaled %.1e\n",
           m->name, prec(m), tbptt_T(m, 1), tbptt_T(m, 2), loss_err.max_rel, grad_err.max_abs,
           grad_err.max_rel, grad_err.where ? grad_err.where : "-", grad_err.max_scaled,
           dx_err.max_abs, dx_err.max_rel, dx_err.max_scaled);
    fflush(stdout);

done:
    bufs_free(&b);
    ck_assert_msg(g_failures == 0, "%s (%d failing check%s in all)", g_msg, g_failures,
                  g_failures == 1 ? "" : "s");
}
END_TEST

/* The C forward from the zero state over x_zero: y into b->a (double), final state into b->h,
 * b->c, the loss against b->target. */
static int c_forward(bufs *b, double *loss)
{
    const nnrt_model *m = b->m;
    m->reset(b->state);
    m->pack(b->params, b->weights);
    int rc = m->forward(b->weights, b->state, b->work, m->seq_len, b->x, b->y);
    if (rc != NNRT_OK) {
        failure("%s: forward(T=%d) returned %d (%s): %s", m->name, m->seq_len, rc, nnrt_strerror(rc),
                nnrt_last_error());
        return -1;
    }
    ref_to_double(m, b->y, b->a, ref_y_count(m, m->seq_len));
    ref_state_unpack(m, b->state, b->h, b->c);
    rc = m->loss(m->seq_len, b->y, b->target, loss, NULL);
    if (rc != NNRT_OK) {
        failure("%s: loss returned %d (%s): %s", m->name, rc, nnrt_strerror(rc), nnrt_last_error());
        return -1;
    }
    return 0;
}

/* Compares the C forward (b->a, b->h, b->c) with the torch files y<suffix>.npy,
 * h<suffix>_l{k}.npy, c<suffix>_l{k}.npy. */
static int compare_forward(bufs *b, const char *suffix, const char *what, err_stat *y_err,
                           err_stat *s_err)
{
    const nnrt_model *m = b->m;
    int64_t shape[3];
    char file[128], label[192];
    int nd = y_shape(m, m->seq_len, shape);
    snprintf(file, sizeof file, "y%s.npy", suffix);
    if (read_npy(m, file, m->dtype, nd, shape, b->scratch) != 0) return -1;
    size_t n = shape_count(nd, shape);
    ref_to_double(m, b->scratch, b->b, n);
    snprintf(label, sizeof label, "%s: y", what);
    compare(m, label, KIND_Y, NULL, b->a, b->b, n, FWD_ATOL(m), 0.0, FWD_RTOL(m), y_err);
    size_t ns = ref_state_count(m);
    snprintf(file, sizeof file, "h%s", suffix);
    if (read_state(m, file, 0, b->ht, b->scratch) != 0) return -1;
    snprintf(file, sizeof file, "c%s", suffix);
    if (read_state(m, file, 1, b->ct, b->scratch) != 0) return -1;
    snprintf(label, sizeof label, "%s: final h", what);
    compare(m, label, KIND_STATE, NULL, b->h, b->ht, ns, FWD_ATOL(m), 0.0, FWD_RTOL(m), s_err);
    snprintf(label, sizeof label, "%s: final c", what);
    compare(m, label, KIND_STATE, NULL, b->c, b->ct, ns, FWD_ATOL(m), 0.0, FWD_RTOL(m), s_err);
    return 0;
}

/* Workflow torch -> C: weights trained and saved by the generated <name>.py. */
START_TEST(test_torch_to_c)
{
    if (!ready()) return;
    g_msg[0] = '\0';
    g_failures = 0;
    const nnrt_model *m = rnnc_test_models[torch_model_index(_i)];
    bufs b;
    ck_assert_msg(bufs_init(&b, m) == 0, "out of memory");
    err_stat y_err = {0, 0, NULL, 0}, s_err = y_err, loss_err = y_err;
    double loss, tloss;
    if (load_weights(m, "trained.safetensors", b.params) != 0) goto done;
    if (read_data(&b, "zero", m->seq_len) != 0) goto done;
    if (c_forward(&b, &loss) != 0) goto done;
    if (compare_forward(&b, "_trained", "weights trained in torch", &y_err, &s_err) != 0) goto done;
    if (read_losses(m, "loss_trained.npy", 1, &tloss) != 0) goto done;
    compare_loss(m, "loss on the weights trained in torch", loss, tloss, LOSS_RTOL(m), &loss_err);
    printf("torch py->c:  %-27s %s %d Adam steps in torch: y max_abs %.1e max_rel %.1e | state "
           "max_abs %.1e max_rel %.1e | loss %.6g rel %.1e\n",
           m->name, prec(m), TRAIN_STEPS, y_err.max_abs, y_err.max_rel, s_err.max_abs,
           s_err.max_rel, tloss, loss_err.max_rel);
    fflush(stdout);

done:
    bufs_free(&b);
    ck_assert_msg(g_failures == 0, "%s (%d failing check%s in all)", g_msg, g_failures,
                  g_failures == 1 ? "" : "s");
}
END_TEST

/* Trains model m in C: TRAIN_STEPS Adam steps through the descriptor on x_zero, target_zero from
 * the zero state, starting from nnrt_model_init; saves DIR/<model>/c_trained.safetensors. The
 * losses before each step go to losses[TRAIN_STEPS]. */
static int c_train(bufs *b, uint64_t seed, double *losses)
{
    const nnrt_model *m = b->m;
    nnrt_optim o;
    nnrt_optim_config cfg = nnrt_optim_defaults(NNRT_OPT_ADAM);
    cfg.lr = TRAIN_LR;
    int rc = nnrt_optim_init(&o, &cfg, m->dtype, m->num_params);
    if (rc != NNRT_OK) {
        failure("%s: nnrt_optim_init returned %d (%s): %s", m->name, rc, nnrt_strerror(rc),
                nnrt_last_error());
        return -1;
    }
    nnrt_model_init(m, b->params, seed);
    for (int step = 0; step < TRAIN_STEPS; step++) {
        memset(b->grads, 0, m->params_bytes);
        m->reset(b->state);
        if (train_step(b, m->seq_len, &losses[step]) != 0) {
            nnrt_optim_free(&o);
            return -1;
        }
        if (!isfinite(losses[step]))
            failure("%s: C training step %d: loss %g", m->name, step + 1, losses[step]);
        nnrt_optim_step(&o, b->params, b->grads);
    }
    nnrt_optim_free(&o);
    char path[1400];
    snprintf(path, sizeof path, "%s/%s/c_trained.safetensors", g_dir, m->name);
    rc = nnrt_model_save(m, b->params, path);
    if (rc != NNRT_OK) {
        failure("%s: nnrt_model_save(%s) returned %d (%s): %s", m->name, path, rc, nnrt_strerror(rc),
                nnrt_last_error());
        return -1;
    }
    return 0;
}

/* Workflow C -> torch: trained with nnrt_optim, saved with nnrt_model_save, loaded by the
 * generated <name>.py. One test for all models, so python runs once. */
START_TEST(test_c_to_torch)
{
    if (!ready()) return;
    g_msg[0] = '\0';
    g_failures = 0;
    static char out[16384];
    int count = torch_model_count();
    bufs *b = calloc((size_t)count, sizeof *b);
    double(*losses)[TRAIN_STEPS] = calloc((size_t)count, sizeof *losses);
    double *c_loss = calloc((size_t)count, sizeof *c_loss);
    ck_assert_msg(b && losses && c_loss, "out of memory");

    /* 1. Train each model in C and save it; keep its forward on x_zero. */
    for (int n = 0; n < count; n++) {
        const nnrt_model *m = rnnc_test_models[torch_model_index(n)];
        ck_assert_msg(bufs_init(&b[n], m) == 0, "out of memory");
        if (read_data(&b[n], "zero", m->seq_len) != 0) goto done;
        if (c_train(&b[n], GRAD_SEED + 3 + (uint64_t)n, losses[n]) != 0) goto done;
        if (c_forward(&b[n], &c_loss[n]) != 0) goto done;
    }

    /* 2. The generated modules load them, run forward and one Adam step, all in one python. */
    int rc = run_script("c2t", out, sizeof out);
    if (rc != 0) {
        char line[1024];
        last_line(out, line, sizeof line);
        fprintf(stderr, "%s\n", out); /* the whole traceback; the message keeps its last line */
        failure("tests/torch_grad.py c2t: %s", line);
        goto done;
    }

    /* 3. Compare. */
    for (int n = 0; n < count; n++) {
        const nnrt_model *m = b[n].m;
        err_stat y_err = {0, 0, NULL, 0}, s_err = y_err, loss_err = y_err;
        double py_loss[2];
        if (compare_forward(&b[n], "_py", "weights trained in C, loaded by the .py module", &y_err,
                            &s_err) != 0)
            continue;
        if (read_losses(m, "loss_py.npy", 2, py_loss) != 0) continue;
        compare_loss(m, "loss of the .py module on the weights trained in C", py_loss[0], c_loss[n],
                     LOSS_RTOL(m), &loss_err);
        if (!isfinite(py_loss[1]))
            failure("%s: loss after one torch Adam step on the C-trained weights: %g", m->name,
                    py_loss[1]);
        printf("torch c->py:  %-27s %s C Adam loss %.5g -> %.5g | y max_abs %.1e max_rel %.1e | "
               "state max_abs %.1e max_rel %.1e | loss %.6g rel %.1e | torch step -> %.6g (%s)\n",
               m->name, prec(m), losses[n][0], c_loss[n], y_err.max_abs, y_err.max_rel,
               s_err.max_abs, s_err.max_rel, c_loss[n], loss_err.max_rel, py_loss[1],
               py_loss[1] < py_loss[0] ? "down" : "not down");
    }
    fflush(stdout);

done:
    for (int n = 0; n < count; n++) bufs_free(&b[n]);
    free(b);
    free(losses);
    free(c_loss);
    ck_assert_msg(g_failures == 0, "%s (%d failing check%s in all)", g_msg, g_failures,
                  g_failures == 1 ? "" : "s");
}
END_TEST

Suite *torch_grad_suite(void)
{
    Suite *s = suite_create("torch_grad");
    TCase *tc = tcase_create("torch_grad");
    /* Unchecked: runs once, in the runner's process, before the tests fork; python and torch's
     * import take seconds, far too long to repeat per model. */
    tcase_add_unchecked_fixture(tc, grad_setup, grad_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_available);
    tcase_add_loop_test(tc, test_gradients, 0, torch_model_count());
    tcase_add_loop_test(tc, test_tbptt, 0, torch_model_count());
    tcase_add_loop_test(tc, test_torch_to_c, 0, torch_model_count());
    tcase_add_test(tc, test_c_to_torch);
    suite_add_tcase(s, tc);
    return s;
}
