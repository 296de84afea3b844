/* test_isa.c — the "isa" suite: every SIMD build of the isa specs (tests/specs/isa) against the
 * scalar build of the same spec, forward and backward, through the descriptors' entry points.
 *
 * The pairs come from a registry (tests/isa_models.h) generated for the build at hand: natively
 * sse4, avx2 and avx512 (the Makefile), under qemu-aarch64 neon (scripts/test_neon.sh). Both
 * builds run this same file. A pair whose ISA this CPU lacks (__builtin_cpu_supports; NEON is part
 * of every AArch64 CPU) prints "SKIPPED: <isa> (CPU lacks it)" and passes. RNNC_ISA_SKIP="avx512
 * ..." treats the ISAs it lists as missing (to see the skip path, or to bisect).
 *
 * Test cases:
 *  registry  every pair is usable: the variant is the scalar model's spec under <name>_<isa>, with
 *            the same architecture, canonical parameter table, parameter and state layout; and the
 *            isa specs together cover every cell, loss, head activation, output_at, both
 *            precisions, batch 1 and > 1, and (per precision) every size of ISA_SIZES as an input,
 *            hidden or head size, so every tail of 16/8/4/2 lanes is hit. A spec edited out of
 *            coverage fails here, naming what went missing.
 *  agree     (one loop iteration per pair) from the same canonical parameters (nnrt_model_init on
 *            the scalar model; the flat layout is the same, so both models read one array), the
 *            same inputs and targets:
 *             - forward, T = 1 and seq_len, from the zero and from a non-zero state: y and the
 *               final state;
 *             - the step API seq_len times from the non-zero state: every step's y, the final state;
 *             - forward_train + loss + backward, T = seq_len from the zero and from the non-zero
 *               state, and T = 1 from the non-zero state accumulating onto the previous gradients
 *               with dx = NULL: forward_train's y and final state, the loss, dloss/dy, every
 *               gradient tensor and dloss/dx.
 *            Every buffer the caller owns (y, dy, dx, state, gradients) carries a guard zone past
 *            its end that must stay untouched (a masked tail storing a full vector shows up
 *            here; under ASan the buffers are exact and ASan watches instead); outputs are
 *            poisoned with NaN first, so an element a tail forgot to write fails; packed weights,
 *            workspace and tape start as garbage (NaN bytes), since pack and the passes must not
 *            rely on zeroed memory. One line per pair reports the largest errors.
 *
 * Tolerances. The two builds run the same kernels (generator/kernels.lua) in the same summation
 * order: vectors run across units (forward) or across k (backward), and every dot product still
 * accumulates over k, rows or timesteps one term after another, as the scalar loop does. What
 * differs:
 *  (a) FMA: avx2, avx512 and neon round a*b + c once, the scalar build (no -mfma, and -std=c11
 *      keeps GCC from contracting) twice; sse4 has no FMA either. Each term of a dot product then
 *      differs by up to one rounding (u = 2^-24 = 6.0e-8 in f32, 2^-53 = 1.1e-16 in f64) of
 *      |w*x|, so a product over K terms differs by <= K*u*sum|w*x| (sqrt(K)*u*sum|w*x| typically).
 *  (b) SLEEF (exp 1.0 ulp; tanh 3.5 ulp with math = "fast", the default, or 1.0 ulp) against libm (glibc's expf,
 *      tanhf, exp, tanh: < 1 ulp): a few ulp per activation.
 *  f32 needs the slack of (a) and (b) carried through a few layers and steps; f64 the same in
 *  units of 1.1e-16. As in the forward suites, the recurrence shrinks inherited errors (|W_hh|
 *  entries <= 1/sqrt(H) at init, tanh', sigmoid' <= 1), so they do not grow with T.
 *  - y and states (forward, step, forward_train): |v - s| <= atol + rtol*|s|, f32 atol 1e-5 +
 *    rtol 1e-4, f64 atol 1e-12 + rtol 1e-11: the forward suites' tolerances (tests/test_forward.c).
 *    Both sides here are within those of the exact result, so their difference is too, with the
 *    same reasoning (sum|w*x| of order 1-10 for K <= 2*129 + 1 with U(-2, 2) inputs). Measured
 *    maxima are printed per pair and summarised below.
 *  - loss: relative, f32 1e-5, f64 1e-12 (a mean in double of outputs that carry the errors above).
 *  - dloss/dy, every gradient tensor and dloss/dx: |v - s| <= rtol*(|s| + the tensor's largest
 *    |s|), f32 rtol 1e-4, f64 1e-11, as tests/test_torch_grad.c: a gradient element is a sum over
 *    T*B rows of products carried back through every layer and step, and where that sum cancels
 *    to nearly nothing its rounding error is relative to its terms, not to the result; the
 *    tensor's own scale is the natural absolute floor. A missing or wrong term, or a tail lane
 *    dropped or doubled, is O(1) relative to the scale.
 * Measured maxima over every pair (sse4, avx2, avx512 on an AVX-512 x86-64; neon under
 * qemu-aarch64), as the line per pair prints them:
 *  f32: y and states 7.2e-7 absolute (margin 14x), loss 3.1e-7 relative (32x), dloss/dy 4.1e-7,
 *       gradients 8.6e-7 and dx 7.4e-7 relative to the tensor's largest value (> 100x);
 *  f64: y and states 6.7e-16 (1500x), loss 4.1e-16 (2400x), dloss/dy 4.3e-16, gradients 2.7e-15,
 *       dx 1.8e-15 (> 3700x).
 * sse4 on a model without exp or tanh (rnn relu, no head) agrees bit for bit: the summation
 * orders really are the same. A tail lane lost, doubled or stored past its row is caught at
 * 1e-3 or more (and by the guards), and so is a float rounding anywhere in an f64 model (1e-8).
 */
#define _POSIX_C_SOURCE 200112L /* posix_memalign */

#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isa_models.h"
#include "nnrt.h"
#include "reference.h"

Suite *isa_suite(void);

#define SEED_PARAMS 0x15a0ULL
#define SEED_DATA 0xda7a15aULL
#define MAX_REPORTS 8 /* mismatch messages printed per pair */

/* The sizes the isa specs must cover, per precision (as an input, hidden or head size). */
static const int ISA_SIZES[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 65, 129};
#define NUM_ISA_SIZES ((int)(sizeof ISA_SIZES / sizeof ISA_SIZES[0]))

/* Tolerances; see the header comment. */
#define FWD_ATOL(m) ((m)->dtype == NNRT_F32 ? 1e-5 : 1e-12)
#define FWD_RTOL(m) ((m)->dtype == NNRT_F32 ? 1e-4 : 1e-11)
#define LOSS_RTOL(m) ((m)->dtype == NNRT_F32 ? 1e-5 : 1e-12)
#define GRAD_RTOL(m) ((m)->dtype == NNRT_F32 ? 1e-4 : 1e-11)

/* Guard zone past the end of every caller-owned buffer. Under AddressSanitizer none: buffers are
 * exact and ASan reports any access past them, reads included. */
#if defined(__SANITIZE_ADDRESS__)
#define GUARD_BYTES 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GUARD_BYTES 0
#endif
#endif
#ifndef GUARD_BYTES
#define GUARD_BYTES 256 /* four AVX-512 vectors */
#endif
#define GUARD_BYTE 0x5a
/* A function, not the macro, in the code: a literal 0 would trip -Wtype-limits and
 * -Wmemset-transposed-args. */
static size_t guard_bytes(void) { return GUARD_BYTES; }

/* ======================================= CPU support ======================================== */

/* Whether the ISA is listed in $RNNC_ISA_SKIP (words separated by spaces or commas). */
static int skipped_by_env(const char *isa)
{
    const char *list = getenv("RNNC_ISA_SKIP");
    size_t n = strlen(isa);
    while (list && *list) {
        size_t len = strcspn(list, " ,");
        if (len == n && strncmp(list, isa, n) == 0) return 1;
        list += len;
        list += strspn(list, " ,");
    }
    return 0;
}

/* Whether this CPU (and OS) can run code built for the backend isa (isa_models.h). */
int rnnc_isa_runs_here(const char *isa)
{
    if (skipped_by_env(isa)) return 0;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (strcmp(isa, "sse4") == 0) return __builtin_cpu_supports("sse4.1");
    if (strcmp(isa, "avx2") == 0) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (strcmp(isa, "avx512") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
    return 0;
#elif defined(__aarch64__)
    return strcmp(isa, "neon") == 0; /* Advanced SIMD is architectural on AArch64 */
#else
    return 0;
#endif
}

/* ================================ Failures and error stats ================================== */

static char g_msg[2048];
static int g_failures;
static const rnnc_isa_pair *g_pair; /* the pair under test, for messages */

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static void failure(const char *fmt, ...)
{
    char msg[1800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_failures == 0)
        snprintf(g_msg, sizeof g_msg, "%s vs %s: %s", g_pair->variant->name, g_pair->scalar->name, msg);
    if (g_failures < MAX_REPORTS)
        fprintf(stderr, "isa: %s (%s) vs scalar: %s\n", g_pair->variant->name, g_pair->isa, msg);
    g_failures++;
}

static void report(void)
{
    ck_assert_msg(g_failures == 0, "%s (%d failing check%s in all)", g_msg, g_failures,
                  g_failures == 1 ? "" : "s");
}

/* The largest error of one category and what it belongs to. */
typedef struct err_stat {
    double max;        /* max |v - s| (y, state), relative (loss) or scaled (gradients) */
    const char *where; /* tensor name of max, or NULL */
} err_stat;

static void stat_add(err_stat *s, double err, const char *where)
{
    if (isnan(err)) err = INFINITY;
    if (err > s->max || (s->where == NULL && err == s->max)) {
        s->max = err;
        s->where = where;
    }
}

/* What element i of an array is, for messages. */
enum { KIND_X, KIND_Y, KIND_H, KIND_C, KIND_TENSOR };

static void describe(const nnrt_model *m, int kind, const nnrt_param_desc *d, size_t i, char *buf,
                     size_t size)
{
    size_t B = (size_t)m->batch, I = (size_t)m->input;
    switch (kind) {
    case KIND_X: snprintf(buf, size, "[t %zu][b %zu][i %zu]", i / (B * I), i / I % B, i % I); break;
    case KIND_Y: ref_describe_y(m, 0, i, buf, size); break;
    case KIND_H:
    case KIND_C: ref_describe_state(m, i, buf, size); break;
    default:
        if (d->ndim == 2)
            snprintf(buf, size, "[%zu][%zu]", i / (size_t)d->shape[1], i % (size_t)d->shape[1]);
        else
            snprintf(buf, size, "[%zu]", i);
        break;
    }
}

/* Compares the variant's v with the scalar's s (n values): |v - s| <= atol + rtol*|s|, where
 * atol = atol_abs + atol_scale * max|s|. Folds the error (absolute, or relative to max|s| when
 * atol_scale > 0) into st; reports the first mismatch with its index and what it is. */
static void compare(const nnrt_model *m, const char *what, int kind, const nnrt_param_desc *d,
                    const double *v, const double *s, size_t n, double atol_abs, double atol_scale,
                    double rtol, err_stat *st)
{
    double scale = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(s[i]) > scale) scale = fabs(s[i]);
    double atol = atol_abs + atol_scale * scale;
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs(v[i] - s[i]);
        if (isnan(err)) err = INFINITY;
        if (!(err <= atol + rtol * fabs(s[i])) && bad++ == 0) first = i;
        stat_add(st, atol_scale > 0 ? (scale > 0 ? err / scale : err) : err, d ? d->name : NULL);
    }
    if (bad) {
        char where[128];
        describe(m, kind, d, first, where, sizeof where);
        failure("%s: %zu of %zu values differ; first %s%s (index %zu): %s %.10g, scalar %.10g "
                "(|diff| %.3g, allowed %.3g)",
                what, bad, n, d ? d->name : "", where, first, g_pair->isa, v[first], s[first],
                fabs(v[first] - s[first]), atol + rtol * fabs(s[first]));
    }
}

/* ================================== Buffers and guards ====================================== */

/* A caller-owned buffer with a guard zone past its end. */
typedef struct buf {
    unsigned char *p;
    size_t bytes;
} buf;

static buf buf_new(size_t bytes)
{
    buf b = {NULL, bytes};
    void *p = NULL;
    size_t total = bytes + guard_bytes();
    ck_assert_msg(posix_memalign(&p, NNRT_ALIGN, total ? total : 1) == 0, "out of memory");
    b.p = p;
    memset(b.p, 0, bytes);
    memset(b.p + bytes, GUARD_BYTE, guard_bytes());
    return b;
}

/* Reports a write past the end of b (what: the buffer, call: who wrote). */
static void guard_check(const buf *b, const char *what, const char *call)
{
    for (size_t i = 0; i < guard_bytes(); i++)
        if (b->p[b->bytes + i] != GUARD_BYTE) {
            failure("%s wrote past the end of %s (%zu bytes): byte %zu after it changed to 0x%02x",
                    call, what, b->bytes, i, b->p[b->bytes + i]);
            memset(b->p + b->bytes, GUARD_BYTE, guard_bytes());
            return;
        }
}

/* One model's side of a pair: its own structs and outputs. */
typedef struct side {
    const nnrt_model *m;
    void *weights, *work, *tape; /* nnrt_alloc'd, filled with garbage */
    buf state, y, dy, dx, grads;
    double loss;
} side;

typedef struct ctx {
    const nnrt_model *ms, *mv; /* scalar, variant */
    size_t es;                 /* element size */
    size_t nx, ny, ns;         /* elements of x, y (seq_len steps) and of a reference h or c */
    buf params;                /* canonical parameters, shared by both */
    void *x, *target;          /* seq_len steps */
    void *state0;              /* the non-zero start state, in the (common) state layout */
    side s, v;
    double *a, *b, *c, *d;     /* scratch doubles */
    err_stat y_err, state_err, step_err, loss_err, dy_err, grad_err, dx_err;
} ctx;

static void *xalloc(size_t bytes)
{
    void *p = nnrt_alloc(bytes);
    ck_assert_msg(p != NULL, "out of memory");
    return p;
}

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    ck_assert_msg(p != NULL, "out of memory");
    return p;
}

static void side_init(side *sd, const nnrt_model *m, const ctx *c)
{
    memset(sd, 0, sizeof *sd);
    sd->m = m;
    sd->weights = xalloc(m->weights_bytes);
    sd->work = xalloc(m->work_bytes);
    sd->tape = xalloc(m->tape_bytes);
    /* Garbage, NaN in either precision: nothing may depend on these being zero. */
    memset(sd->weights, 0xff, m->weights_bytes);
    memset(sd->work, 0xff, m->work_bytes);
    memset(sd->tape, 0xff, m->tape_bytes);
    sd->state = buf_new(m->state_bytes);
    sd->y = buf_new(c->ny * c->es);
    sd->dy = buf_new(c->ny * c->es);
    sd->dx = buf_new(c->nx * c->es);
    sd->grads = buf_new(m->params_bytes);
}

static void side_free(side *sd)
{
    nnrt_free(sd->weights);
    nnrt_free(sd->work);
    nnrt_free(sd->tape);
    free(sd->state.p);
    free(sd->y.p);
    free(sd->dy.p);
    free(sd->dx.p);
    free(sd->grads.p);
}

static void ctx_free(ctx *c)
{
    side_free(&c->s);
    side_free(&c->v);
    free(c->params.p);
    free(c->x);
    free(c->target);
    free(c->state0);
    free(c->a);
    free(c->b);
    free(c->c);
    free(c->d);
}

/* Sets up pair i: parameters, inputs, targets, the non-zero start state, both sides. */
static void ctx_init(ctx *c, int i)
{
    memset(c, 0, sizeof *c);
    const nnrt_model *ms = c->ms = rnnc_isa_pairs[i].scalar, *mv = c->mv = rnnc_isa_pairs[i].variant;
    c->es = nnrt_dtype_size(ms->dtype);
    c->nx = ref_x_count(ms, ms->seq_len);
    c->ny = ref_y_count(ms, ms->seq_len);
    c->ns = ref_state_count(ms);
    size_t most = ms->num_params;
    if (c->nx > most) most = c->nx;
    if (c->ny > most) most = c->ny;
    if (c->ns > most) most = c->ns;
    c->a = xmalloc(most * sizeof(double));
    c->b = xmalloc(most * sizeof(double));
    c->c = xmalloc(most * sizeof(double));
    c->d = xmalloc(most * sizeof(double));

    c->params = buf_new(ms->params_bytes);
    nnrt_model_init(ms, c->params.p, SEED_PARAMS + (uint64_t)i);
    side_init(&c->s, ms, c);
    side_init(&c->v, mv, c);
    ms->pack(c->params.p, c->s.weights);
    mv->pack(c->params.p, c->v.weights);
    guard_check(&c->params, "the parameters", "pack");

    /* Inputs U(-2, 2), so that gates leave their linear range. */
    nnrt_rng rng;
    nnrt_rng_seed(&rng, SEED_DATA + (uint64_t)i);
    c->x = xmalloc(c->nx * c->es);
    nnrt_fill_uniform_f64(c->a, c->nx, -2.0, 2.0, &rng);
    ref_from_double(ms, c->a, c->x, c->nx);

    /* Targets: class indices for cross_entropy, U(0, 1) for bce, U(-1, 1) for mse. */
    size_t rows = c->ny / (size_t)ms->output;
    if (ms->loss_kind == NNRT_LOSS_CROSS_ENTROPY) {
        int32_t *t = xmalloc(rows * sizeof *t);
        for (size_t r = 0; r < rows; r++) t[r] = (int32_t)(nnrt_rng_u64(&rng) % (uint64_t)ms->output);
        c->target = t;
    } else {
        c->target = xmalloc(c->ny * c->es);
        nnrt_fill_uniform_f64(c->a, c->ny, ms->loss_kind == NNRT_LOSS_BCE ? 0.0 : -1.0, 1.0, &rng);
        ref_from_double(ms, c->a, c->target, c->ny);
    }

    /* The non-zero start state: h in (-1, 1) ([0, 1) for relu layers), c in (-1, 1). */
    nnrt_fill_uniform_f64(c->a, c->ns, -1.0, 1.0, &rng);
    nnrt_fill_uniform_f64(c->b, c->ns, -1.0, 1.0, &rng);
    for (int k = 0; k < ms->num_layers; k++)
        if (ms->layers[k].cell == NNRT_CELL_RNN_RELU)
            for (size_t j = 0; j < (size_t)ms->batch * (size_t)ms->layers[k].hidden; j++)
                c->a[ref_state_offset(ms, k) + j] = fabs(c->a[ref_state_offset(ms, k) + j]);
    c->state0 = xmalloc(ms->state_bytes);
    memset(c->state0, 0, ms->state_bytes);
    ref_state_pack(ms, c->a, c->b, c->state0);
}

/* ==================================== Comparisons =========================================== */

static void set_state(ctx *c, side *sd, int nonzero)
{
    memset(sd->state.p, 0xff, sd->state.bytes); /* reset must clear all of it */
    sd->m->reset(sd->state.p);
    if (nonzero) memcpy(sd->state.p, c->state0, sd->state.bytes);
}

/* NaN in n elements of b. */
static void poison(const ctx *c, buf *b, size_t n)
{
    for (size_t i = 0; i < n; i++) c->a[i] = NAN;
    ref_from_double(c->ms, c->a, b->p, n);
}

/* y (n values) and the final state of both sides. */
static void compare_outputs(ctx *c, const char *what, size_t n, err_stat *y_err)
{
    char label[192];
    ref_to_double(c->ms, c->v.y.p, c->a, n);
    ref_to_double(c->ms, c->s.y.p, c->b, n);
    snprintf(label, sizeof label, "%s: y", what);
    compare(c->ms, label, KIND_Y, NULL, c->a, c->b, n, FWD_ATOL(c->ms), 0.0, FWD_RTOL(c->ms), y_err);
    ref_state_unpack(c->ms, c->v.state.p, c->a, c->c);
    ref_state_unpack(c->ms, c->s.state.p, c->b, c->d);
    snprintf(label, sizeof label, "%s: final h", what);
    compare(c->ms, label, KIND_H, NULL, c->a, c->b, c->ns, FWD_ATOL(c->ms), 0.0, FWD_RTOL(c->ms),
            &c->state_err);
    snprintf(label, sizeof label, "%s: final c", what);
    compare(c->ms, label, KIND_C, NULL, c->c, c->d, c->ns, FWD_ATOL(c->ms), 0.0, FWD_RTOL(c->ms),
            &c->state_err);
}

static void check_guards(side *sd, const char *call)
{
    guard_check(&sd->state, "the state", call);
    guard_check(&sd->y, "y", call);
    guard_check(&sd->dy, "dy", call);
    guard_check(&sd->dx, "dx", call);
    guard_check(&sd->grads, "the gradients", call);
}

static int check_rc(const side *sd, const char *call, int rc)
{
    if (rc == NNRT_OK) return 0;
    failure("%s: %s returned %d (%s): %s", sd->m->name, call, rc, nnrt_strerror(rc), nnrt_last_error());
    return -1;
}

/* forward over T steps from the zero or the non-zero state. */
static void run_forward(ctx *c, int T, int nonzero)
{
    char what[96];
    snprintf(what, sizeof what, "forward T=%d from the %s state", T, nonzero ? "non-zero" : "zero");
    size_t n = ref_y_count(c->ms, T);
    side *sides[2] = {&c->s, &c->v};
    for (int k = 0; k < 2; k++) {
        side *sd = sides[k];
        set_state(c, sd, nonzero);
        poison(c, &sd->y, n);
        int rc = sd->m->forward(sd->weights, sd->state.p, sd->work, T, c->x, sd->y.p);
        check_guards(sd, "forward");
        if (check_rc(sd, "forward", rc) != 0) return;
    }
    compare_outputs(c, what, n, &c->y_err);
}

/* The step API seq_len times from the non-zero state. */
static void run_steps(ctx *c)
{
    const nnrt_model *m = c->ms;
    size_t row_x = (size_t)m->batch * (size_t)m->input, row_y = (size_t)m->batch * (size_t)m->output;
    set_state(c, &c->s, 1);
    set_state(c, &c->v, 1);
    for (int t = 0; t < m->seq_len; t++) {
        const unsigned char *x = (const unsigned char *)c->x + (size_t)t * row_x * c->es;
        poison(c, &c->s.y, row_y);
        poison(c, &c->v.y, row_y);
        c->s.m->step(c->s.weights, c->s.state.p, x, c->s.y.p);
        c->v.m->step(c->v.weights, c->v.state.p, x, c->v.y.p);
        check_guards(&c->s, "step");
        check_guards(&c->v, "step");
        char what[96];
        snprintf(what, sizeof what, "step %d of %d from the non-zero state", t + 1, m->seq_len);
        compare_outputs(c, what, row_y, &c->step_err);
    }
}

/* forward_train, loss and backward over T steps. accumulate: the gradients start from the
 * scalar side's previous ones (the same array on both sides) instead of zero, and dx is NULL. */
static void run_train(ctx *c, int T, int nonzero, int accumulate)
{
    const nnrt_model *m = c->ms;
    char what[160];
    snprintf(what, sizeof what, "training T=%d from the %s state%s", T, nonzero ? "non-zero" : "zero",
             accumulate ? ", gradients accumulated onto the previous run's" : "");
    size_t ny = ref_y_count(m, T), nx = ref_x_count(m, T);
    side *sides[2] = {&c->s, &c->v};
    if (accumulate) memcpy(c->v.grads.p, c->s.grads.p, m->params_bytes);
    for (int k = 0; k < 2; k++) {
        side *sd = sides[k];
        set_state(c, sd, nonzero);
        poison(c, &sd->y, ny);
        int rc = sd->m->forward_train(sd->weights, sd->state.p, sd->tape, T, c->x, sd->y.p);
        check_guards(sd, "forward_train");
        if (check_rc(sd, "forward_train", rc) != 0) return;
    }
    compare_outputs(c, what, ny, &c->y_err);

    for (int k = 0; k < 2; k++) {
        side *sd = sides[k];
        poison(c, &sd->dy, ny);
        int rc = sd->m->loss(T, sd->y.p, c->target, &sd->loss, sd->dy.p);
        check_guards(sd, "loss");
        if (check_rc(sd, "loss", rc) != 0) return;
        if (!accumulate) memset(sd->grads.p, 0, m->params_bytes);
        poison(c, &sd->dx, nx);
        rc = sd->m->backward(c->params.p, sd->tape, c->x, sd->dy.p, sd->grads.p, accumulate ? NULL : sd->dx.p);
        check_guards(sd, "backward");
        guard_check(&c->params, "the parameters", "backward");
        if (check_rc(sd, "backward", rc) != 0) return;
    }

    char label[256];
    double err = fabs(c->v.loss - c->s.loss);
    stat_add(&c->loss_err, c->s.loss != 0 ? err / fabs(c->s.loss) : err, NULL);
    if (!(err <= LOSS_RTOL(m) * fabs(c->s.loss)))
        failure("%s: loss %.17g, scalar %.17g (relative error %.3g, allowed %.3g)", what, c->v.loss,
                c->s.loss, err / fabs(c->s.loss), LOSS_RTOL(m));

    ref_to_double(m, c->v.dy.p, c->a, ny);
    ref_to_double(m, c->s.dy.p, c->b, ny);
    snprintf(label, sizeof label, "%s: dloss/dy", what);
    compare(m, label, KIND_Y, NULL, c->a, c->b, ny, 0.0, GRAD_RTOL(m), GRAD_RTOL(m), &c->dy_err);

    ref_to_double(m, c->v.grads.p, c->a, m->num_params);
    ref_to_double(m, c->s.grads.p, c->b, m->num_params);
    for (int t = 0; t < m->num_tensors; t++) {
        const nnrt_param_desc *d = &m->tensors[t];
        snprintf(label, sizeof label, "%s: gradient of %s", what, d->name);
        compare(m, label, KIND_TENSOR, d, c->a + d->offset, c->b + d->offset, d->count, 0.0,
                GRAD_RTOL(m), GRAD_RTOL(m), &c->grad_err);
    }

    if (!accumulate) {
        ref_to_double(m, c->v.dx.p, c->a, nx);
        ref_to_double(m, c->s.dx.p, c->b, nx);
        snprintf(label, sizeof label, "%s: dloss/dx", what);
        compare(m, label, KIND_X, NULL, c->a, c->b, nx, 0.0, GRAD_RTOL(m), GRAD_RTOL(m), &c->dx_err);
    }
}

/* ===================================== The registry ========================================= */

static int same_str(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* Whether the variant of pair p is the scalar model's spec under another name and backend. */
static void check_pair(const rnnc_isa_pair *p)
{
    const nnrt_model *s = p->scalar, *v = p->variant;
    char msg[512], name[256];
    if (ref_check_model(s, msg, sizeof msg) != 0) failure("scalar model: %s", msg);
    if (ref_check_model(v, msg, sizeof msg) != 0) failure("variant model: %s", msg);
    if (!ref_state_layout_ok(s) || !ref_state_layout_ok(v))
        failure("state_bytes %zu (scalar), %zu (%s) do not match the layout h_k[B][H_k] (then c_k "
                "for lstm) per layer", s->state_bytes, v->state_bytes, p->isa);
    if (s->abi_version != NNRT_ABI_VERSION || v->abi_version != NNRT_ABI_VERSION)
        failure("abi_version %d (scalar), %d (%s); the runtime has %d", s->abi_version,
                v->abi_version, p->isa, NNRT_ABI_VERSION);
    if (!same_str(s->isa, "scalar")) failure("the reference %s was generated for %s, not scalar", s->name, s->isa);
    if (!same_str(v->isa, p->isa)) failure("%s was generated for %s, the registry says %s", v->name, v->isa, p->isa);
    snprintf(name, sizeof name, "%s_%s", s->name, p->isa);
    if (!same_str(v->name, name)) failure("the variant is named %s, expected %s", v->name, name);
    if (v->dtype != s->dtype || v->input != s->input || v->output != s->output ||
        v->seq_len != s->seq_len || v->batch != s->batch || v->output_last != s->output_last ||
        v->loss_kind != s->loss_kind || v->target_dtype != s->target_dtype ||
        v->num_layers != s->num_layers || v->num_heads != s->num_heads ||
        v->num_params != s->num_params || v->num_tensors != s->num_tensors ||
        v->params_bytes != s->params_bytes || v->state_bytes != s->state_bytes) {
        failure("the variant's architecture, parameter count or struct sizes differ from the scalar model's");
        return;
    }
    for (int k = 0; k < s->num_layers; k++)
        if (memcmp(&s->layers[k], &v->layers[k], sizeof s->layers[k]) != 0)
            failure("layer %d differs", k);
    for (int j = 0; j < s->num_heads; j++)
        if (memcmp(&s->heads[j], &v->heads[j], sizeof s->heads[j]) != 0)
            failure("head %d differs", j);
    for (int t = 0; t < s->num_tensors; t++) {
        const nnrt_param_desc *a = &s->tensors[t], *b = &v->tensors[t];
        if (!same_str(a->name, b->name) || a->ndim != b->ndim || a->shape[0] != b->shape[0] ||
            (a->ndim == 2 && a->shape[1] != b->shape[1]) || a->offset != b->offset ||
            a->count != b->count || a->init_bound != b->init_bound)
            failure("parameter tensor %d: %s in the scalar model, %s in the variant (name, shape, "
                    "offset or init bound differ)", t, a->name, b->name);
    }
}

START_TEST(test_registry)
{
    g_msg[0] = '\0';
    g_failures = 0;
    ck_assert_msg(rnnc_isa_pair_count > 0, "no isa pairs registered");
    for (int i = 0; i < rnnc_isa_pair_count; i++) {
        g_pair = &rnnc_isa_pairs[i];
        ck_assert_msg(g_pair->scalar && g_pair->variant && g_pair->isa, "pair %d is incomplete", i);
        check_pair(g_pair);
        for (int j = 0; j < i; j++)
            if (rnnc_isa_pairs[j].variant == g_pair->variant ||
                same_str(rnnc_isa_pairs[j].variant->name, g_pair->variant->name))
                failure("registered twice");
    }

    /* Coverage, over the distinct scalar models. */
    enum { CELLS = 4, ACTS = 4, LOSSES = 3 };
    int cell[2][CELLS] = {{0}}, act[2][ACTS] = {{0}}, loss[2][LOSSES] = {{0}}, last[2][2] = {{0}};
    int batch1[2] = {0}, batchn[2] = {0}, size_seen[2][NUM_ISA_SIZES];
    memset(size_seen, 0, sizeof size_seen);
    for (int i = 0; i < rnnc_isa_pair_count; i++) {
        const nnrt_model *m = rnnc_isa_pairs[i].scalar;
        int p = m->dtype == NNRT_F64;
        int sizes[64], n = 0;
        sizes[n++] = m->input;
        for (int k = 0; k < m->num_layers && n < 64; k++) {
            if (m->layers[k].cell >= 0 && m->layers[k].cell < CELLS) cell[p][m->layers[k].cell] = 1;
            sizes[n++] = m->layers[k].hidden;
        }
        for (int j = 0; j < m->num_heads && n < 64; j++) {
            if (m->heads[j].act >= 0 && m->heads[j].act < ACTS) act[p][m->heads[j].act] = 1;
            sizes[n++] = m->heads[j].output;
        }
        if (m->loss_kind >= 0 && m->loss_kind < LOSSES) loss[p][m->loss_kind] = 1;
        last[p][m->output_last != 0] = 1;
        (m->batch == 1 ? batch1 : batchn)[p] = 1;
        for (int q = 0; q < NUM_ISA_SIZES; q++)
            for (int r = 0; r < n; r++) size_seen[p][q] |= sizes[r] == ISA_SIZES[q];
    }
    static const char *const precs[2] = {"f32", "f64"};
    static const char *const losses[LOSSES] = {"mse", "cross_entropy", "bce"};
    for (int p = 0; p < 2; p++) {
        char missing[512] = "";
        for (int k = 0; k < CELLS; k++)
            if (!cell[p][k]) snprintf(missing + strlen(missing), sizeof missing - strlen(missing), " cell %s", ref_cell_name(k));
        for (int k = 0; k < ACTS; k++)
            if (!act[p][k]) snprintf(missing + strlen(missing), sizeof missing - strlen(missing), " head %s", ref_act_name(k));
        for (int k = 0; k < LOSSES; k++)
            if (!loss[p][k]) snprintf(missing + strlen(missing), sizeof missing - strlen(missing), " loss %s", losses[k]);
        for (int k = 0; k < 2; k++)
            if (!last[p][k]) snprintf(missing + strlen(missing), sizeof missing - strlen(missing), " output_at %s", k ? "last" : "all");
        if (!batch1[p]) snprintf(missing + strlen(missing), sizeof missing - strlen(missing), " batch 1");
        if (!batchn[p]) snprintf(missing + strlen(missing), sizeof missing - strlen(missing), " batch > 1");
        for (int q = 0; q < NUM_ISA_SIZES; q++)
            if (!size_seen[p][q]) snprintf(missing + strlen(missing), sizeof missing - strlen(missing), " size %d", ISA_SIZES[q]);
        if (missing[0]) {
            g_pair = &rnnc_isa_pairs[0];
            failure("the isa specs (tests/specs/isa) do not cover, in %s:%s", precs[p], missing);
        }
    }
    report();
}
END_TEST

/* ====================================== Agreement =========================================== */

START_TEST(test_agree)
{
    g_msg[0] = '\0';
    g_failures = 0;
    g_pair = &rnnc_isa_pairs[_i];
    const nnrt_model *m = g_pair->scalar;
    if (!rnnc_isa_runs_here(g_pair->isa)) {
        printf("isa: %-38s SKIPPED: %s (CPU lacks it)\n", g_pair->variant->name, g_pair->isa);
        fflush(stdout);
        return;
    }
    check_pair(g_pair);
    if (g_failures) report();

    ctx c;
    ctx_init(&c, _i);
    for (int nonzero = 0; nonzero <= 1; nonzero++) {
        run_forward(&c, 1, nonzero);
        run_forward(&c, m->seq_len, nonzero);
    }
    run_steps(&c);
    run_train(&c, m->seq_len, 0, 0);
    run_train(&c, m->seq_len, 1, 0);
    run_train(&c, 1, 1, 1);

    printf("isa: %-38s %s B=%d T=%d: y %.1e state %.1e step %.1e | loss %.1e dy %.1e grad %.1e (%s) "
           "dx %.1e\n",
           g_pair->variant->name, m->dtype == NNRT_F32 ? "f32" : "f64", m->batch, m->seq_len,
           c.y_err.max, c.state_err.max, c.step_err.max, c.loss_err.max, c.dy_err.max,
           c.grad_err.max, c.grad_err.where ? c.grad_err.where : "-", c.dx_err.max);
    fflush(stdout);
    ctx_free(&c);
    report();
}
END_TEST

Suite *isa_suite(void)
{
    Suite *s = suite_create("isa");
    TCase *tc = tcase_create("isa");
    tcase_set_timeout(tc, 120); /* qemu-aarch64 and the sanitizers are slow */
    tcase_add_test(tc, test_registry);
    tcase_add_loop_test(tc, test_agree, 0, rnnc_isa_pair_count);
    suite_add_tcase(s, tc);
    return s;
}
