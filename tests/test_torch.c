/* test_torch.c — the "torch" suite: PyTorch conformance of every test model named torch_*.
 *
 * Once per run (an unchecked fixture, in the runner's own process) the suite writes each torch_
 * model's architecture, read from its descriptor, as arch.json into a fresh temporary directory
 * and runs tests/torch_forward.py on all of them with Debian's python (/usr/bin/python3, or
 * $RNNC_PYTHON; never whatever python3 comes first on PATH). The script builds the same network
 * from torch.nn.LSTM / GRU / RNN and nn.Linear, initialises it with torch's default init under a
 * fixed seed, and writes the weights as safetensors under DESIGN.md's PyTorch names, the inputs,
 * and torch's outputs and final states as .npy. Then, per model, this suite loads the weights
 * with nnrt_model_load, runs the generated forward from a zero state over seq_len steps and from
 * torch's non-zero start state over about half of it, and compares outputs and final states with
 * torch's. It also runs the double reference (tests/reference.c) on the same weights, which
 * checks the reference itself against PyTorch.
 *
 * Tolerances (|got - torch| <= atol + rtol*|torch|): the same as the forward suite's, for the
 * same reasons (see tests/test_forward.c): both sides compute in the model's precision with
 * different summation orders and different tanh/exp implementations, each a few ulp from exact
 * per operation, with errors that shrink rather than grow along the sequence at PyTorch's init.
 * f32: atol 1e-5 + rtol 1e-4; f64: atol 1e-12 + rtol 1e-11.
 *
 * One line per model reports the largest absolute and relative errors of the generated code
 * against torch (relative error counted where |torch| >= 1e-3), for outputs and final states.
 *
 * When `python -c "import torch, numpy"` fails the suite prints "SKIPPED: PyTorch conformance:
 * <reason>" and passes, unless RNNC_REQUIRE_TORCH=1 (set by CI), where it fails.
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

#include "nnrt.h"
#include "reference.h"
#include "test_models.h"
#include "torch_common.h"

#ifndef RNNC_SOURCE_DIR
#error "compile with -DRNNC_SOURCE_DIR=\"/path/to/the/repo\" (the Makefile passes $(CURDIR))"
#endif

Suite *torch_suite(void);

#define TORCH_SEED 20240601

/* ---- State shared by the fixture (parent process) and the tests (forked children) -------- */

enum { TORCH_READY, TORCH_SKIPPED, TORCH_BROKEN };
static int g_status;        /* TORCH_* */
static char g_reason[16384]; /* why skipped or broken */
static char g_dir[1024];    /* the temporary directory, "" when none */

/* Writes DIR/<name>/arch.json for model m. */
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
    int warm_T = m->seq_len / 2 > 0 ? m->seq_len / 2 : 1;
    fprintf(f, "{\"name\": \"%s\", \"dtype\": \"%s\", \"input\": %d, \"batch\": %d, "
               "\"seq_len\": %d, \"output\": %d, \"output_last\": %d, \"seed\": %d,\n",
            m->name, dtypes[m->dtype == NNRT_F64], m->input, m->batch, m->seq_len, m->output,
            m->output_last, TORCH_SEED);
    write_architecture(f, m);
    fprintf(f, "],\n \"runs\": [{\"tag\": \"zero\", \"T\": %d, \"warm\": 0}, "
               "{\"tag\": \"warm\", \"T\": %d, \"warm\": 1}]}\n",
            m->seq_len, warm_T);
    if (fclose(f) != 0) {
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* ---- The fixture ------------------------------------------------------------------------- */

static void torch_setup(void)
{
    char out[8192], line[1024], cmd[16384];
    g_status = TORCH_BROKEN;
    g_reason[0] = g_dir[0] = '\0';
    if (torch_model_count() == 0) {
        g_status = TORCH_SKIPPED;
        snprintf(g_reason, sizeof g_reason, "no torch_* test models are registered");
        return;
    }

    /* Is PyTorch there? */
    cmd[0] = '\0';
    append_quoted(cmd, sizeof cmd, python_path());
    append(cmd, sizeof cmd, " -c 'import torch, numpy' 2>&1");
    int rc = run_command(cmd, out, sizeof out);
    if (rc != 0) {
        last_line(out, line, sizeof line);
        g_status = TORCH_SKIPPED;
        snprintf(g_reason, sizeof g_reason, "%s cannot import torch and numpy: %s",
                 python_path(), line[0] ? line : "(no output)");
        if (torch_required()) {
            g_status = TORCH_BROKEN;
            fprintf(stderr, "FAILED: PyTorch conformance: %s (RNNC_REQUIRE_TORCH=1)\n", g_reason);
        } else {
            fprintf(stderr, "SKIPPED: PyTorch conformance: %s\n", g_reason);
        }
        return;
    }

    /* The architectures. */
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/rnnc-torch-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        snprintf(g_reason, sizeof g_reason, "mkdtemp %s: %s", g_dir, strerror(errno));
        g_dir[0] = '\0';
        return;
    }
    cmd[0] = '\0';
    append_quoted(cmd, sizeof cmd, python_path());
    append(cmd, sizeof cmd, " ");
    append_quoted(cmd, sizeof cmd, RNNC_SOURCE_DIR "/tests/torch_forward.py");
    for (int n = 0; torch_model_index(n) >= 0; n++) {
        const nnrt_model *m = rnnc_test_models[torch_model_index(n)];
        char msg[2048], path[1200];
        if (ref_check_model(m, msg, sizeof msg) != 0 ||
            write_arch(m, g_dir, msg, sizeof msg) != 0) {
            snprintf(g_reason, sizeof g_reason, "%s", msg);
            return;
        }
        snprintf(path, sizeof path, "%s/%s", g_dir, m->name);
        append(cmd, sizeof cmd, " ");
        append_quoted(cmd, sizeof cmd, path);
    }
    append(cmd, sizeof cmd, " 2>&1");

    /* PyTorch's side, once for all models. */
    rc = run_command(cmd, out, sizeof out);
    if (rc != 0) {
        snprintf(g_reason, sizeof g_reason, "tests/torch_forward.py failed (status %d):\n%s", rc,
                 out);
        return;
    }
    g_status = TORCH_READY;
}

static void torch_teardown(void)
{
    if (g_dir[0]) nftw(g_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    g_dir[0] = '\0';
}

/* ---- Per-model comparison ---------------------------------------------------------------- */

static char g_msg[2048];
static int g_failures;

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static void failure(const char *fmt, ...)
{
    if (g_failures++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g_msg, sizeof g_msg, fmt, ap);
        va_end(ap);
        fprintf(stderr, "torch: %s\n", g_msg);
    }
}

/* Reads DIR/<model>/<file> as an array of the model's dtype with the given shape, converted to
 * double into dst (count elements). 0 on success. */
static int read_npy(const nnrt_model *m, const char *file, int ndim, const int64_t *shape,
                    double *dst)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s/%s", g_dir, m->name, file);
    nnrt_array a;
    int rc = nnrt_npy_read(path, &a);
    if (rc != NNRT_OK) {
        failure("%s: %s: %s", m->name, path, nnrt_last_error());
        return -1;
    }
    int ok = a.dtype == m->dtype && a.ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = a.shape[d] == shape[d];
    if (!ok) {
        failure("%s: %s: dtype %s ndim %d, expected %s ndim %d", m->name, file,
                nnrt_dtype_name(a.dtype), a.ndim, nnrt_dtype_name(m->dtype), ndim);
    } else {
        ref_to_double(m, a.data, dst, a.count);
    }
    nnrt_array_free(&a);
    return ok ? 0 : -1;
}

/* Reads torch's per-layer state files <prefix>_l{k}.npy (h, or c when is_c) into h (or c). */
static int read_state(const nnrt_model *m, const char *prefix, int is_c, double *s)
{
    memset(s, 0, ref_state_count(m) * sizeof *s);
    for (int k = 0; k < m->num_layers; k++) {
        if (is_c && m->layers[k].cell != NNRT_CELL_LSTM) continue;
        char file[128];
        int64_t shape[2] = {m->batch, m->layers[k].hidden};
        snprintf(file, sizeof file, "%s_l%d.npy", prefix, k);
        if (read_npy(m, file, 2, shape, s + ref_state_offset(m, k)) != 0) return -1;
    }
    return 0;
}

static void check_close(const nnrt_model *m, const char *what, int is_state, const double *got,
                        const double *ref, size_t n, ref_diff *acc)
{
    double atol = m->dtype == NNRT_F32 ? 1e-5 : 1e-12;
    double rtol = m->dtype == NNRT_F32 ? 1e-4 : 1e-11;
    ref_diff d = ref_compare(got, ref, n, atol, rtol);
    if (d.bad) {
        char where[96];
        if (is_state) ref_describe_state(m, d.first_bad, where, sizeof where);
        else ref_describe_y(m, 0, d.first_bad, where, sizeof where);
        failure("%s: %s: %zu of %zu values differ from torch; first %s (index %zu): got %.9g, "
                "torch %.9g; max abs err %.3g",
                m->name, what, d.bad, d.count, where, d.first_bad, got[d.first_bad],
                ref[d.first_bad], d.max_abs);
    }
    if (acc) ref_diff_merge(acc, d);
}

START_TEST(test_available)
{
    if (g_status == TORCH_SKIPPED) {
        ck_assert_msg(!torch_required(), "PyTorch conformance: %s (RNNC_REQUIRE_TORCH=1)",
                      g_reason);
        return;
    }
    ck_assert_msg(g_status == TORCH_READY, "PyTorch conformance: %s", g_reason);
}
END_TEST

START_TEST(test_conformance)
{
    if (g_status != TORCH_READY) {
        ck_assert_msg(g_status == TORCH_SKIPPED && !torch_required(), "PyTorch conformance: %s",
                      g_reason);
        return;
    }
    g_msg[0] = '\0';
    g_failures = 0;
    const nnrt_model *m = rnnc_test_models[torch_model_index(_i)];
    const size_t es = nnrt_dtype_size(m->dtype), ns = ref_state_count(m);
    void *params = nnrt_alloc(m->params_bytes), *state = nnrt_alloc(m->state_bytes);
    void *work = nnrt_alloc(m->work_bytes), *weights = nnrt_alloc(m->weights_bytes);
    size_t nx = ref_x_count(m, m->seq_len), ny = ref_y_count(m, m->seq_len);
    void *x = malloc(nx * es), *y = malloc(ny * es);
    double *pd = malloc(m->num_params * sizeof *pd), *xd = malloc(nx * sizeof *xd);
    double *yd = malloc(ny * sizeof *yd), *yt = malloc(ny * sizeof *yt);
    double *yr = malloc(ny * sizeof *yr);
    double *h = malloc(ns * sizeof *h), *c = malloc(ns * sizeof *c);
    double *ht = malloc(ns * sizeof *ht), *ct = malloc(ns * sizeof *ct);
    double *hr = malloc(ns * sizeof *hr), *cr = malloc(ns * sizeof *cr);
    ck_assert_msg(params && weights && state && work && x && y && pd && xd && yd && yt && yr && h && c &&
                      ht && ct && hr && cr,
                  "out of memory");
    ref_diff y_err = {0, 0, 0, 0.0, 0.0}, s_err = y_err, ref_err = y_err;
    char path[1400];

    if (!ref_state_layout_ok(m)) {
        failure("%s: state_bytes %zu does not match the layout h_k[B][H_k] (then c_k for lstm) "
                "per layer", m->name, m->state_bytes);
        goto done;
    }
    snprintf(path, sizeof path, "%s/%s/weights.safetensors", g_dir, m->name);
    int rc = nnrt_model_load(m, params, path);
    if (rc != NNRT_OK) {
        failure("%s: nnrt_model_load(%s) returned %d (%s): %s", m->name, path, rc,
                nnrt_strerror(rc), nnrt_last_error());
        goto done;
    }
    m->pack(params, weights);
    ref_to_double(m, params, pd, m->num_params);

    static const char *const tags[2] = {"zero", "warm"};
    for (int run = 0; run < 2; run++) {
        const char *tag = tags[run];
        int T = run == 0 ? m->seq_len : (m->seq_len / 2 > 0 ? m->seq_len / 2 : 1);
        char file[128], what[128];
        int64_t xshape[3] = {T, m->batch, m->input};
        int64_t yshape[3] = {T, m->batch, m->output};
        snprintf(file, sizeof file, "x_%s.npy", tag);
        if (read_npy(m, file, 3, xshape, xd) != 0) goto done;
        ref_from_double(m, xd, x, ref_x_count(m, T));
        snprintf(file, sizeof file, "y_%s.npy", tag);
        if (m->output_last) {
            if (read_npy(m, file, 2, yshape + 1, yt) != 0) goto done;
        } else if (read_npy(m, file, 3, yshape, yt) != 0) {
            goto done;
        }
        if (run == 0) {
            memset(h, 0, ns * sizeof *h);
            memset(c, 0, ns * sizeof *c);
        } else {
            snprintf(file, sizeof file, "h0_%s", tag);
            if (read_state(m, file, 0, h) != 0) goto done;
            snprintf(file, sizeof file, "c0_%s", tag);
            if (read_state(m, file, 1, c) != 0) goto done;
        }
        m->reset(state);
        ref_state_pack(m, h, c, state);
        memcpy(hr, h, ns * sizeof *h);
        memcpy(cr, c, ns * sizeof *c);

        /* The generated forward vs torch. */
        rc = m->forward(weights, state, work, T, x, y);
        if (rc != NNRT_OK) {
            failure("%s: forward(T=%d) returned %d (%s): %s", m->name, T, rc, nnrt_strerror(rc),
                    nnrt_last_error());
            goto done;
        }
        size_t n = ref_y_count(m, T);
        ref_to_double(m, y, yd, n);
        snprintf(what, sizeof what, "y, T=%d from a %s state", T, run ? "non-zero" : "zero");
        check_close(m, what, 0, yd, yt, n, &y_err);
        ref_state_unpack(m, state, h, c);
        snprintf(file, sizeof file, "h_%s", tag);
        if (read_state(m, file, 0, ht) != 0) goto done;
        snprintf(file, sizeof file, "c_%s", tag);
        if (read_state(m, file, 1, ct) != 0) goto done;
        snprintf(what, sizeof what, "final h, T=%d from a %s state", T, run ? "non-zero" : "zero");
        check_close(m, what, 1, h, ht, ns, &s_err);
        snprintf(what, sizeof what, "final c, T=%d from a %s state", T, run ? "non-zero" : "zero");
        check_close(m, what, 1, c, ct, ns, &s_err);

        /* The double reference vs torch: checks tests/reference.c itself. */
        ref_forward(m, pd, T, xd, yr, hr, cr);
        snprintf(what, sizeof what, "reference y, T=%d from a %s state", T,
                 run ? "non-zero" : "zero");
        check_close(m, what, 0, yr, yt, n, &ref_err);
        snprintf(what, sizeof what, "reference final h, T=%d", T);
        check_close(m, what, 1, hr, ht, ns, &ref_err);
        snprintf(what, sizeof what, "reference final c, T=%d", T);
        check_close(m, what, 1, cr, ct, ns, &ref_err);
    }
    printf("torch conformance: %-24s %s B=%d T=%d: y max_abs %.2e max_rel %.2e | "
           "state max_abs %.2e max_rel %.2e | reference vs torch max_abs %.2e\n",
           m->name, m->dtype == NNRT_F32 ? "f32" : "f64", m->batch, m->seq_len, y_err.max_abs,
           y_err.max_rel, s_err.max_abs, s_err.max_rel, ref_err.max_abs);
    fflush(stdout);

done:
    nnrt_free(params);
    nnrt_free(weights);
    nnrt_free(state);
    nnrt_free(work);
    free(x);
    free(y);
    free(pd);
    free(xd);
    free(yd);
    free(yt);
    free(yr);
    free(h);
    free(c);
    free(ht);
    free(ct);
    free(hr);
    free(cr);
    ck_assert_msg(g_failures == 0, "%s (%d failing check%s in all)", g_msg, g_failures,
                  g_failures == 1 ? "" : "s");
}
END_TEST

Suite *torch_suite(void)
{
    Suite *s = suite_create("torch");
    TCase *tc = tcase_create("conformance");
    /* Unchecked: runs once, in the runner's process, before the tests fork; python and torch's
     * import take seconds, far too long to repeat per model. */
    tcase_add_unchecked_fixture(tc, torch_setup, torch_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_available);
    tcase_add_loop_test(tc, test_conformance, 0, torch_model_count());
    suite_add_tcase(s, tc);
    return s;
}
