/* test_forward.c — the "forward" suite: every generated test model against the naive double
 * reference (tests/reference.c), through its descriptor's untyped entry points.
 *
 * For each model in tests/test_models.h (one loop iteration per model, so a failure names it):
 *  - descriptor: consistent with PyTorch's shapes, ABI version, state layout, reset zeroes;
 *  - vs_reference: forward for T = 1, a middle T and seq_len, from a zero and a non-zero state,
 *    outputs and final state against ref_forward;
 *  - step: the step API called T times equals the sequence forward (and the reference);
 *  - carried: forward(T1) then forward(T2) equals forward(T1 + T2): the state carries over;
 *  - bad_T: T = 0, -1 and seq_len + 1 return NNRT_ERR_ARG, set a message, leave the state alone.
 *
 * Tolerances. An element passes when |got - ref| <= atol + rtol * |ref|.
 *  - f32: the generated code rounds every product and sum to float (u = 2^-24 = 6e-8) and uses
 *    vectorized tanh/exp accurate to a few ulp. A dot product of n terms is off by at most
 *    n*u*sum|w*x|, here n <= 2*33 + 1 with sum|w*x| of order 1, so ~4e-6 in the worst case and
 *    ~sqrt(n)*u ~ 5e-7 in practice. Errors do not grow along the sequence: the default init
 *    bounds |W_hh| entries by 1/sqrt(H) (spectral radius ~ 1/sqrt(3)) and tanh', sigmoid' <= 1,
 *    so each step shrinks the error it inherits. atol 1e-5 + rtol 1e-4 leaves a margin of more
 *    than 10x over that bound while any real bug (a wrong gate order, a missing bias, a wrong
 *    activation) moves outputs by 1e-2 or more.
 *  - f64: the same argument with u = 1.1e-16 gives errors ~1e-15. atol 1e-12 + rtol 1e-11
 *    keeps a 1000x margin, yet catches a single float rounding anywhere in an f64 model (which
 *    shows up at ~1e-8).
 * Measured with the scalar backend over every test model (T = seq_len, zero start): f32 outputs
 * and states within 2.5e-7 of the reference, f64 within 4.5e-16.
 * The step and carried tests compare two runs of the generated code with the same tolerances:
 * they may legitimately differ in summation order (batched input projection vs one step).
 */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnrt.h"
#include "reference.h"
#include "test_models.h"

Suite *forward_suite(void);

#define SEED_PARAMS 0x5eedULL
#define SEED_DATA 0xda7aULL

typedef struct tolerance {
    double atol, rtol;
} tolerance;

static tolerance tol_of(const nnrt_model *m)
{
    tolerance f32 = {1e-5, 1e-4}, f64 = {1e-12, 1e-11};
    return m->dtype == NNRT_F32 ? f32 : f64;
}

/* ---- Failure collection: the first failing comparison's message, then a count ----------- */

static char g_msg[2048];
static int g_failures;

static void failure_reset(void)
{
    g_msg[0] = '\0';
    g_failures = 0;
}

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
        fprintf(stderr, "forward: %s\n", g_msg);
    }
}

static void report(void)
{
    ck_assert_msg(g_failures == 0, "%s (%d failing check%s in all)", g_msg, g_failures,
                  g_failures == 1 ? "" : "s");
}

/* ---- Per-model context: buffers sized for seq_len + 1 steps ------------------------------ */

typedef struct ctx {
    const nnrt_model *m;
    tolerance tol;
    size_t es;                 /* element size of the model's dtype */
    void *params, *weights, *state, *work; /* the model's structs (nnrt_alloc, aligned) */
    void *x, *y;               /* model dtype; exactly sized mallocs so ASan sees overruns */
    double *pd;                /* params as double */
    double *xd;                /* x as double */
    double *yd, *yref;         /* outputs as double; reference outputs */
    double *h, *c;             /* reference state */
    double *h0, *c0;           /* a non-zero start state, exactly representable in the dtype */
    double *hg, *cg;           /* the generated state unpacked */
} ctx;

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    ck_assert_msg(p != NULL, "out of memory");
    return p;
}

static void ctx_free(ctx *c)
{
    nnrt_free(c->params);
    nnrt_free(c->weights);
    nnrt_free(c->state);
    nnrt_free(c->work);
    free(c->x);
    free(c->y);
    free(c->pd);
    free(c->xd);
    free(c->yd);
    free(c->yref);
    free(c->h);
    free(c->c);
    free(c->h0);
    free(c->c0);
    free(c->hg);
    free(c->cg);
}

/* Fills n doubles with U(lo, hi). */
static void fill_uniform(double *d, size_t n, double lo, double hi, nnrt_rng *rng)
{
    nnrt_fill_uniform_f64(d, n, lo, hi, rng);
}

/* Sets up model i: params from nnrt_model_init, and a random non-zero start state. Returns 0 when
 * the model's descriptor is usable (the descriptor test reports why it is not). */
static int ctx_init(ctx *c, int i)
{
    memset(c, 0, sizeof *c);
    failure_reset();
    ck_assert_int_lt(i, rnnc_test_model_count);
    const nnrt_model *m = c->m = rnnc_test_models[i];
    char msg[512];
    if (ref_check_model(m, msg, sizeof msg) != 0) {
        failure("%s", msg);
        return -1;
    }
    if (!ref_state_layout_ok(m)) {
        failure("%s: state_bytes %zu does not match the layout h_k[B][H_k] (then c_k for lstm) per "
                "layer", m->name, m->state_bytes);
        return -1;
    }
    c->tol = tol_of(m);
    c->es = nnrt_dtype_size(m->dtype);
    int Tmax = m->seq_len + 1;
    size_t ns = ref_state_count(m), nx = ref_x_count(m, Tmax), ny = ref_y_count(m, Tmax);
    c->params = nnrt_alloc(m->params_bytes);
    c->weights = nnrt_alloc(m->weights_bytes);
    c->state = nnrt_alloc(m->state_bytes);
    c->work = nnrt_alloc(m->work_bytes);
    ck_assert_msg(c->params && c->weights && c->state && c->work, "out of memory");
    c->x = xmalloc(nx * c->es);
    c->y = xmalloc(ny * c->es);
    c->pd = xmalloc(m->num_params * sizeof(double));
    c->xd = xmalloc(nx * sizeof(double));
    c->yd = xmalloc(ny * sizeof(double));
    c->yref = xmalloc(ny * sizeof(double));
    c->h = xmalloc(ns * sizeof(double));
    c->c = xmalloc(ns * sizeof(double));
    c->h0 = xmalloc(ns * sizeof(double));
    c->c0 = xmalloc(ns * sizeof(double));
    c->hg = xmalloc(ns * sizeof(double));
    c->cg = xmalloc(ns * sizeof(double));

    nnrt_model_init(m, c->params, SEED_PARAMS + (uint64_t)i);
    m->pack(c->params, c->weights);
    ref_to_double(m, c->params, c->pd, m->num_params);

    /* The non-zero start state goes through the generated state once, so that h0, c0 hold
     * exactly what the model sees (rounded to float for f32, c zero for non-lstm layers). */
    nnrt_rng rng;
    nnrt_rng_seed(&rng, SEED_DATA + (uint64_t)i);
    fill_uniform(c->h0, ns, -1.0, 1.0, &rng);
    fill_uniform(c->c0, ns, -1.0, 1.0, &rng);
    for (int k = 0; k < m->num_layers; k++)
        if (m->layers[k].cell == NNRT_CELL_RNN_RELU) /* a relu layer's h is never negative */
            for (size_t j = 0; j < (size_t)m->batch * (size_t)m->layers[k].hidden; j++)
                c->h0[ref_state_offset(m, k) + j] = fabs(c->h0[ref_state_offset(m, k) + j]);
    ref_state_pack(m, c->h0, c->c0, c->state);
    ref_state_unpack(m, c->state, c->h0, c->c0);
    return 0;
}

/* New random inputs for T steps, U(-2, 2) so that gates leave their linear range, in both x and
 * xd (identical values). */
static void ctx_inputs(ctx *c, int T, uint64_t seed)
{
    nnrt_rng rng;
    nnrt_rng_seed(&rng, seed);
    size_t n = ref_x_count(c->m, T);
    fill_uniform(c->xd, n, -2.0, 2.0, &rng);
    ref_from_double(c->m, c->xd, c->x, n);
    ref_to_double(c->m, c->x, c->xd, n);
}

/* Sets both the generated and the reference state to zero or to the non-zero start state. */
static void ctx_start(ctx *c, int nonzero)
{
    const nnrt_model *m = c->m;
    size_t ns = ref_state_count(m);
    memset(c->state, 0xA5, m->state_bytes); /* garbage: reset must clear all of it */
    m->reset(c->state);
    if (nonzero) {
        ref_state_pack(m, c->h0, c->c0, c->state);
        memcpy(c->h, c->h0, ns * sizeof(double));
        memcpy(c->c, c->c0, ns * sizeof(double));
    } else {
        memset(c->h, 0, ns * sizeof(double));
        memset(c->c, 0, ns * sizeof(double));
    }
}

/* Poisons y (NaN) so that any element forward fails to write is caught. */
static void poison_y(ctx *c, size_t n)
{
    double *nan_d = xmalloc(n * sizeof(double));
    for (size_t j = 0; j < n; j++) nan_d[j] = NAN;
    ref_from_double(c->m, nan_d, c->y, n);
    free(nan_d);
}

/* Compares n outputs got against ref; t0 is the timestep of got's first row (for messages). */
static void check_y(const ctx *c, const char *what, int t0, const double *got, const double *ref,
                    size_t n)
{
    ref_diff d = ref_compare(got, ref, n, c->tol.atol, c->tol.rtol);
    if (d.bad) {
        char where[96];
        ref_describe_y(c->m, t0, d.first_bad, where, sizeof where);
        failure("%s: %s: %zu of %zu outputs differ; first y%s (index %zu): got %.9g, expected "
                "%.9g (|diff| %.3g > %.3g); max abs err %.3g",
                c->m->name, what, d.bad, d.count, where, d.first_bad, got[d.first_bad],
                ref[d.first_bad], fabs(got[d.first_bad] - ref[d.first_bad]),
                c->tol.atol + c->tol.rtol * fabs(ref[d.first_bad]), d.max_abs);
    }
}

/* Compares state arrays (h or c, named by which). */
static void check_state(const ctx *c, const char *what, const char *which, const double *got,
                        const double *ref)
{
    size_t n = ref_state_count(c->m);
    ref_diff d = ref_compare(got, ref, n, c->tol.atol, c->tol.rtol);
    if (d.bad) {
        char where[96];
        ref_describe_state(c->m, d.first_bad, where, sizeof where);
        failure("%s: %s: %zu of %zu final %s values differ; first %s %s (index %zu): got %.9g, "
                "expected %.9g (|diff| %.3g); max abs err %.3g",
                c->m->name, what, d.bad, d.count, which, which, where, d.first_bad,
                got[d.first_bad], ref[d.first_bad], fabs(got[d.first_bad] - ref[d.first_bad]),
                d.max_abs);
    }
}

/* The generated state against the reference's h, c. */
static void check_final_state(ctx *c, const char *what, const double *h, const double *cc)
{
    ref_state_unpack(c->m, c->state, c->hg, c->cg);
    check_state(c, what, "h", c->hg, h);
    check_state(c, what, "c", c->cg, cc);
}

/* Runs the generated forward over T steps; 0 when it returned NNRT_OK. */
static int run_forward(ctx *c, const char *what, int T)
{
    const nnrt_model *m = c->m;
    poison_y(c, ref_y_count(m, T));
    int rc = m->forward(c->weights, c->state, c->work, T, c->x, c->y);
    if (rc != NNRT_OK) {
        failure("%s: %s: forward(T=%d) returned %d (%s): %s", m->name, what, T, rc,
                nnrt_strerror(rc), nnrt_last_error());
        return -1;
    }
    ref_to_double(m, c->y, c->yd, ref_y_count(m, T));
    return 0;
}

/* ---- descriptor ------------------------------------------------------------------------- */

START_TEST(test_registry)
{
    ck_assert_msg(rnnc_test_model_count > 0, "no test models registered");
    for (int i = 0; i < rnnc_test_model_count; i++)
        for (int j = i + 1; j < rnnc_test_model_count; j++)
            ck_assert_msg(strcmp(rnnc_test_models[i]->name, rnnc_test_models[j]->name) != 0,
                          "two test models are named %s", rnnc_test_models[i]->name);
}
END_TEST

START_TEST(test_descriptor)
{
    ctx c;
    if (ctx_init(&c, _i) == 0) {
        const nnrt_model *m = c.m;
        if (m->abi_version != NNRT_ABI_VERSION)
            failure("%s: abi_version %d, runtime has %d", m->name, m->abi_version,
                    NNRT_ABI_VERSION);
        /* reset zeroes every byte of the state. */
        memset(c.state, 0xA5, m->state_bytes);
        m->reset(c.state);
        const unsigned char *s = c.state;
        for (size_t j = 0; j < m->state_bytes; j++)
            if (s[j] != 0) {
                failure("%s: reset left byte %zu of the state at 0x%02x", m->name, j, s[j]);
                break;
            }
        /* init stays within each tensor's bound (up to float rounding of values drawn next to
         * it) and is not all zeros. */
        double slack = m->dtype == NNRT_F32 ? 1.0 + 1e-7 : 1.0;
        for (int t = 0; t < m->num_tensors; t++) {
            const nnrt_param_desc *d = &m->tensors[t];
            int nonzero = 0;
            for (size_t j = 0; j < d->count; j++) nonzero |= c.pd[d->offset + j] != 0.0;
            if (!nonzero)
                failure("%s: init left tensor %s all zeros", m->name, d->name);
            for (size_t j = 0; j < d->count; j++)
                if (!(fabs(c.pd[d->offset + j]) <= d->init_bound * slack)) {
                    failure("%s: init: %s[%zu] = %g outside +-%g", m->name, d->name, j,
                            c.pd[d->offset + j], d->init_bound);
                    break;
                }
        }
    }
    ctx_free(&c);
    report();
}
END_TEST

/* ---- vs_reference ----------------------------------------------------------------------- */

START_TEST(test_vs_reference)
{
    ctx c;
    if (ctx_init(&c, _i) == 0) {
        const nnrt_model *m = c.m;
        int Ts[3] = {1, (m->seq_len + 1) / 2, m->seq_len};
        for (int ti = 0; ti < 3; ti++) {
            int T = Ts[ti];
            if (ti > 0 && T == Ts[ti - 1]) continue;
            for (int nonzero = 0; nonzero <= 1; nonzero++) {
                char what[96];
                snprintf(what, sizeof what, "forward T=%d from a %s state", T,
                         nonzero ? "non-zero" : "zero");
                ctx_inputs(&c, T, SEED_DATA + 1000u * (uint64_t)T + (uint64_t)nonzero);
                ctx_start(&c, nonzero);
                if (run_forward(&c, what, T) != 0) continue;
                ref_forward(m, c.pd, T, c.xd, c.yref, c.h, c.c);
                check_y(&c, what, 0, c.yd, c.yref, ref_y_count(m, T));
                check_final_state(&c, what, c.h, c.c);
            }
        }
    }
    ctx_free(&c);
    report();
}
END_TEST

/* ---- step ------------------------------------------------------------------------------- */

START_TEST(test_step)
{
    ctx c;
    if (ctx_init(&c, _i) == 0) {
        const nnrt_model *m = c.m;
        const int T = m->seq_len;
        const size_t ns = ref_state_count(m), row = (size_t)m->batch * (size_t)m->output;
        const size_t bi = (size_t)m->batch * (size_t)m->input;
        ctx_inputs(&c, T, SEED_DATA + 77);

        /* The sequence forward from the non-zero state: its outputs and final state. */
        ctx_start(&c, 1);
        if (run_forward(&c, "forward for step comparison", T) == 0) {
            double *y_seq = xmalloc(ref_y_count(m, T) * sizeof(double));
            double *h_seq = xmalloc(ns * sizeof(double)), *c_seq = xmalloc(ns * sizeof(double));
            double *yref_t = xmalloc(row * sizeof(double));
            void *y_step = xmalloc(row * c.es);
            double *y_stepd = xmalloc(row * sizeof(double));
            memcpy(y_seq, c.yd, ref_y_count(m, T) * sizeof(double));
            ref_state_unpack(m, c.state, h_seq, c_seq);

            /* The step T times from the same state, beside the reference one step at a time. */
            ctx_start(&c, 1);
            const unsigned char *x = c.x;
            for (int t = 0; t < T; t++) {
                char what[64], what2[96];
                snprintf(what, sizeof what, "step %d of %d vs the reference", t + 1, T);
                snprintf(what2, sizeof what2, "step %d of %d vs the sequence forward", t + 1, T);
                m->step(c.weights, c.state, x + (size_t)t * bi * c.es, y_step);
                ref_to_double(m, y_step, y_stepd, row);
                /* The reference of one step: a copy of the descriptor with output_last set, so
                 * that its y is the head on the new top h, [B][O]. */
                nnrt_model one = *m;
                one.output_last = 1;
                ref_forward(&one, c.pd, 1, c.xd + (size_t)t * bi, yref_t, c.h, c.c);
                check_y(&c, what, t, y_stepd, yref_t, row);
                /* With output_at = "all" every step's y is row t of the sequence's y; with
                 * "last", the last step's y is the sequence's y. */
                if (!m->output_last || t == T - 1)
                    check_y(&c, what2, t, y_stepd,
                            m->output_last ? y_seq : y_seq + (size_t)t * row, row);
            }
            check_final_state(&c, "step x seq_len vs the reference", c.h, c.c);
            check_final_state(&c, "step x seq_len vs the sequence forward", h_seq, c_seq);
            free(y_seq);
            free(h_seq);
            free(c_seq);
            free(yref_t);
            free(y_step);
            free(y_stepd);
        }
    }
    ctx_free(&c);
    report();
}
END_TEST

/* ---- carried ---------------------------------------------------------------------------- */

START_TEST(test_carried)
{
    ctx c;
    if (ctx_init(&c, _i) == 0) {
        const nnrt_model *m = c.m;
        if (m->seq_len >= 2) {
            const int T = m->seq_len, T1 = T / 2, T2 = T - T1;
            const size_t ns = ref_state_count(m), bi = (size_t)m->batch * (size_t)m->input;
            const size_t ny = ref_y_count(m, T), ny1 = ref_y_count(m, T1);
            ctx_inputs(&c, T, SEED_DATA + 99);
            double *y_one = xmalloc(ny * sizeof(double));
            double *h_one = xmalloc(ns * sizeof(double)), *c_one = xmalloc(ns * sizeof(double));
            void *x_full = c.x;
            char what[96];

            /* One call of T1 + T2 steps. */
            ctx_start(&c, 1);
            if (run_forward(&c, "forward(T1+T2)", T) == 0) {
                memcpy(y_one, c.yd, ny * sizeof(double));
                ref_state_unpack(m, c.state, h_one, c_one);

                /* Two calls: T1 steps, then T2 steps on the state it left. */
                ctx_start(&c, 1);
                snprintf(what, sizeof what, "forward(T1=%d) of T1+T2", T1);
                if (run_forward(&c, what, T1) == 0) {
                    if (!m->output_last)
                        check_y(&c, what, 0, c.yd, y_one, ny1);
                    c.x = (unsigned char *)x_full + (size_t)T1 * bi * c.es;
                    snprintf(what, sizeof what, "forward(T2=%d) after forward(T1=%d)", T2, T1);
                    int rc = run_forward(&c, what, T2);
                    c.x = x_full;
                    if (rc == 0) {
                        if (m->output_last)
                            check_y(&c, what, 0, c.yd, y_one, ref_y_count(m, T2));
                        else
                            check_y(&c, what, T1, c.yd, y_one + ny1, ref_y_count(m, T2));
                        check_final_state(&c, what, h_one, c_one);
                    }
                }
            }
            free(y_one);
            free(h_one);
            free(c_one);
        }
    }
    ctx_free(&c);
    report();
}
END_TEST

/* ---- bad_T ------------------------------------------------------------------------------ */

START_TEST(test_bad_T)
{
    ctx c;
    if (ctx_init(&c, _i) == 0) {
        const nnrt_model *m = c.m;
        int bad[3] = {0, -1, m->seq_len + 1};
        unsigned char *before = xmalloc(m->state_bytes);
        ctx_inputs(&c, m->seq_len + 1, SEED_DATA + 5);
        for (int j = 0; j < 3; j++) {
            ctx_start(&c, 1);
            memcpy(before, c.state, m->state_bytes);
            nnrt_fail(NNRT_OK, "%s", ""); /* clear the thread's message */
            int rc = m->forward(c.weights, c.state, c.work, bad[j], c.x, c.y);
            if (rc != NNRT_ERR_ARG)
                failure("%s: forward(T=%d) returned %d (%s), expected NNRT_ERR_ARG (%d)",
                        m->name, bad[j], rc, nnrt_strerror(rc), NNRT_ERR_ARG);
            else if (nnrt_last_error()[0] == '\0')
                failure("%s: forward(T=%d) returned NNRT_ERR_ARG without a message", m->name,
                        bad[j]);
            if (memcmp(before, c.state, m->state_bytes) != 0)
                failure("%s: forward(T=%d) failed but changed the state", m->name, bad[j]);
        }
        free(before);
    }
    ctx_free(&c);
    report();
}
END_TEST

Suite *forward_suite(void)
{
    Suite *s = suite_create("forward");
    const int n = rnnc_test_model_count;
    struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"descriptor", test_descriptor}, {"vs_reference", test_vs_reference},
        {"step", test_step},             {"carried", test_carried},
        {"bad_T", test_bad_T},
    };
    TCase *tc = tcase_create("registry");
    tcase_add_test(tc, test_registry);
    suite_add_tcase(s, tc);
    for (size_t j = 0; j < sizeof cases / sizeof cases[0]; j++) {
        tc = tcase_create(cases[j].name);
        tcase_set_timeout(tc, 120); /* generous: sanitizer builds of the reference are slow */
        tcase_add_loop_test(tc, cases[j].test, 0, n);
        suite_add_tcase(s, tc);
    }
    return s;
}
