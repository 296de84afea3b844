/* test_optim.c — the "optim" suite: runtime/nnrt_optim.c.
 *
 * Test cases:
 *  config      defaults, config validation (each message names the field), state layout
 *  hand        single updates worked out by hand, so the formulas are checked without PyTorch
 *  clip        nnrt_grad_norm and nnrt_clip_grad_norm against hand values
 *  torch       PyTorch conformance: SGD, SGD with momentum, dampening and weight decay, SGD
 *              Nesterov, Adam, Adam with weight decay, AdamW, each in float32 and float64
 *  checkpoint  save, load into fresh buffers, continue: bit-identical to never stopping; load
 *              errors (another optimizer, missing tensors, another model) are clear
 *
 * PyTorch conformance. Once per run (an unchecked fixture, in the runner's own process) the suite
 * writes its case table as cases.json into a fresh temporary directory and runs
 * tests/torch_optim.py there with Debian's python (/usr/bin/python3, or $RNNC_PYTHON; never
 * whatever python3 comes first on PATH). For each case the script draws parameters and three
 * gradients under a fixed seed, runs torch.optim with foreach=False, and writes the parameters
 * before, the gradients, and torch's parameters after each step as .npy. Each test then runs
 * nnrt_optim_step over the same gradients and compares after every step.
 *
 * Tolerance. Every update is a short chain of elementwise operations, each rounded once in the
 * parameters' dtype. nnrt_optim.c performs the operations torch's CPU kernels perform, in the
 * same order and with the same fused multiply-adds, so on x86-64 (torch's AVX2 and AVX-512
 * kernels) the results are bit-identical: measured max error 0 in all twelve cases, float32 and
 * float64 alike. Another torch build may round differently where its kernels do not fuse (a
 * non-FMA machine), or compute a moment another way (torch 2.x: exp_avg.lerp_); each such change
 * moves an intermediate by about one rounding: one epsilon of the dtype relative to the terms
 * involved, which are at most as large as the parameter has been so far (an update is the
 * difference of consecutive values). So the measure is
 *     err = |got - torch| / (epsilon * max |p| over params0 and torch's values up to this step)
 * and the test allows err <= 8 (a few roundings per step over three steps): 8 * 1.2e-7 = 9.5e-7
 * relative for float32, 8 * 2.2e-16 = 1.8e-15 for float64. Measured by swapping such variants
 * into nnrt_optim.c: no fused operations at all gives max err 2.0, the lerp form of exp_avg 1.5,
 * while a real bug as small as a bias correction off by 1e-6 relative gives 17 in float32 and
 * 9e9 in float64. One line per case prints the max err, the max absolute error and how many
 * values differ at all.
 *
 * When `python -c "import torch, numpy"` fails, the torch tests print "SKIPPED: optimizer
 * conformance: <reason>" and pass, unless RNNC_REQUIRE_TORCH=1 (set by CI), where they fail.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */

#include <check.h>
#include <errno.h>
#include <float.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nnrt.h"
#include "test_util.h"

#ifndef RNNC_SOURCE_DIR
#error "compile with -DRNNC_SOURCE_DIR=\"/path/to/the/repo\" (the Makefile passes $(CURDIR))"
#endif

Suite *optim_suite(void);

/* ======================================= Helpers ============================================ */

#define ASSERT_OK(expr)                                                                                 \
    do {                                                                                                \
        int rc_ = (expr);                                                                               \
        ck_assert_msg(rc_ == NNRT_OK, "%s returned %d (%s): %s", #expr, rc_, nnrt_strerror(rc_),        \
                      nnrt_last_error());                                                               \
    } while (0)

/* Asserts a runtime call fails with code and a message containing text. */
#define ASSERT_FAILS(expr, code, text)                                                                  \
    do {                                                                                                \
        int rc_ = (expr);                                                                               \
        ck_assert_msg(rc_ == (code), "%s returned %d (%s), expected %s; message: %s", #expr, rc_,       \
                      nnrt_strerror(rc_), #code, nnrt_last_error());                                    \
        ck_assert_msg(strstr(nnrt_last_error(), (text)) != NULL, "message \"%s\" lacks \"%s\"",        \
                      nnrt_last_error(), (text));                                                       \
    } while (0)

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tree(const char *dir) {
    if (dir[0])
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Element i of a float32 or float64 array, as double. */
static double get(nnrt_dtype dtype, const void *a, size_t i) {
    return dtype == NNRT_F32 ? (double)((const float *)a)[i] : ((const double *)a)[i];
}

static void set(nnrt_dtype dtype, void *a, size_t i, double v) {
    if (dtype == NNRT_F32)
        ((float *)a)[i] = (float)v;
    else
        ((double *)a)[i] = v;
}

/* ==================================== Configuration ========================================= */

START_TEST(test_defaults_are_torch_defaults) {
    nnrt_optim_config c = nnrt_optim_defaults(NNRT_OPT_SGD);
    ck_assert_int_eq(c.kind, NNRT_OPT_SGD);
    ck_assert(c.lr == 1e-3 && c.momentum == 0 && c.dampening == 0 && c.weight_decay == 0 && c.nesterov == 0);
    c = nnrt_optim_defaults(NNRT_OPT_ADAM);
    ck_assert_int_eq(c.kind, NNRT_OPT_ADAM);
    ck_assert(c.lr == 1e-3 && c.beta1 == 0.9 && c.beta2 == 0.999 && c.eps == 1e-8 && c.weight_decay == 0);
    c = nnrt_optim_defaults(NNRT_OPT_ADAMW);
    ck_assert_int_eq(c.kind, NNRT_OPT_ADAMW);
    ck_assert(c.lr == 1e-3 && c.beta1 == 0.9 && c.beta2 == 0.999 && c.eps == 1e-8 && c.weight_decay == 1e-2);
    /* Every default initialises. */
    for (int kind = NNRT_OPT_SGD; kind <= NNRT_OPT_ADAMW; kind++) {
        nnrt_optim o;
        c = nnrt_optim_defaults(kind);
        ASSERT_OK(nnrt_optim_init(&o, &c, NNRT_F32, 10));
        nnrt_optim_free(&o);
    }
}
END_TEST

/* A config that breaks one rule, and the text its message must contain. */
typedef struct bad_config {
    int kind;
    const char *field; /* what is changed from the defaults */
    double value;
    const char *text;
} bad_config;

static const bad_config bad_configs[] = {
    {7, "kind", 0, "kind 7 is not an optimizer"},
    {-1, "kind", 0, "kind -1 is not an optimizer"},
    {NNRT_OPT_SGD, "lr", -0.5, "SGD: lr must be a finite number >= 0, got -0.5"},
    {NNRT_OPT_SGD, "lr", NAN, "lr must be a finite number >= 0, got nan"},
    {NNRT_OPT_ADAM, "lr", INFINITY, "Adam: lr must be a finite number >= 0, got inf"},
    {NNRT_OPT_SGD, "weight_decay", -1e-4, "weight_decay must be a finite number >= 0, got -0.0001"},
    {NNRT_OPT_ADAMW, "weight_decay", NAN, "AdamW: weight_decay must be"},
    {NNRT_OPT_SGD, "momentum", -0.9, "SGD: momentum must be a finite number >= 0, got -0.9"},
    {NNRT_OPT_SGD, "dampening", INFINITY, "SGD: dampening must be finite, got inf"},
    {NNRT_OPT_SGD, "nesterov", 2, "SGD: nesterov must be 0 or 1, got 2"},
    {NNRT_OPT_SGD, "nesterov", 1, "SGD: nesterov needs momentum > 0 and dampening 0, got momentum 0 and dampening 0"},
    {NNRT_OPT_SGD, "nesterov+dampening", 1, "nesterov needs momentum > 0 and dampening 0, got momentum 0.9 and dampening 0.1"},
    {NNRT_OPT_ADAM, "beta1", 1.0, "Adam: beta1 must be in [0, 1), got 1"},
    {NNRT_OPT_ADAM, "beta1", -0.1, "beta1 must be in [0, 1), got -0.1"},
    {NNRT_OPT_ADAMW, "beta2", NAN, "AdamW: beta2 must be in [0, 1), got nan"},
    {NNRT_OPT_ADAM, "beta2", 1.5, "beta2 must be in [0, 1), got 1.5"},
    {NNRT_OPT_ADAM, "eps", -1e-8, "Adam: eps must be a finite number >= 0, got -1e-08"},
};

START_TEST(test_init_rejects_bad_config) {
    const bad_config *b = &bad_configs[_i];
    nnrt_optim_config c = nnrt_optim_defaults(b->kind);
    if (strcmp(b->field, "lr") == 0) c.lr = b->value;
    if (strcmp(b->field, "weight_decay") == 0) c.weight_decay = b->value;
    if (strcmp(b->field, "momentum") == 0) c.momentum = b->value;
    if (strcmp(b->field, "dampening") == 0) c.dampening = b->value;
    if (strcmp(b->field, "nesterov") == 0) c.nesterov = (int)b->value;
    if (strcmp(b->field, "nesterov+dampening") == 0) {
        c.nesterov = 1;
        c.momentum = 0.9;
        c.dampening = 0.1;
    }
    if (strcmp(b->field, "beta1") == 0) c.beta1 = b->value;
    if (strcmp(b->field, "beta2") == 0) c.beta2 = b->value;
    if (strcmp(b->field, "eps") == 0) c.eps = b->value;
    nnrt_optim o;
    memset(&o, 0xAB, sizeof o);
    ASSERT_FAILS(nnrt_optim_init(&o, &c, NNRT_F64, 8), NNRT_ERR_ARG, b->text);
    ck_assert_msg(strstr(nnrt_last_error(), "optimizer config: ") == nnrt_last_error(), "message: %s",
                  nnrt_last_error());
    /* A failed init owns nothing. */
    ck_assert_ptr_null(o.state1);
    ck_assert_ptr_null(o.state2);
    nnrt_optim_free(&o);
}
END_TEST

START_TEST(test_init_rejects_bad_arguments) {
    nnrt_optim o;
    nnrt_optim_config c = nnrt_optim_defaults(NNRT_OPT_ADAM);
    ASSERT_FAILS(nnrt_optim_init(&o, &c, NNRT_I32, 8), NNRT_ERR_ARG, "dtype must be float32 or float64, got int32");
    ASSERT_FAILS(nnrt_optim_init(&o, &c, (nnrt_dtype)9, 8), NNRT_ERR_ARG, "an invalid dtype");
    ASSERT_FAILS(nnrt_optim_init(&o, NULL, NNRT_F32, 8), NNRT_ERR_ARG, "NULL");
    ASSERT_FAILS(nnrt_optim_init(NULL, &c, NNRT_F32, 8), NNRT_ERR_ARG, "NULL");
    ASSERT_FAILS(nnrt_optim_init(&o, &c, NNRT_F64, SIZE_MAX / 4), NNRT_ERR_NOMEM, "does not fit in memory");
    ck_assert_ptr_null(o.state1);
}
END_TEST

START_TEST(test_init_state_layout) {
    nnrt_optim o;
    nnrt_optim_config c = nnrt_optim_defaults(NNRT_OPT_SGD);
    ASSERT_OK(nnrt_optim_init(&o, &c, NNRT_F32, 5));
    ck_assert_ptr_null(o.state1); /* plain SGD keeps no state */
    ck_assert_ptr_null(o.state2);
    ck_assert_int_eq(o.step, 0);
    ck_assert_uint_eq(o.count, 5);
    ck_assert_int_eq(o.dtype, NNRT_F32);
    nnrt_optim_free(&o);

    c.momentum = 0.9;
    ASSERT_OK(nnrt_optim_init(&o, &c, NNRT_F64, 5));
    ck_assert_ptr_nonnull(o.state1);
    ck_assert_ptr_null(o.state2);
    for (int i = 0; i < 5; i++) ck_assert(((double *)o.state1)[i] == 0);
    nnrt_optim_free(&o);
    ck_assert_ptr_null(o.state1);
    ck_assert_uint_eq(o.count, 0);

    c = nnrt_optim_defaults(NNRT_OPT_ADAMW);
    ASSERT_OK(nnrt_optim_init(&o, &c, NNRT_F32, 7));
    ck_assert_ptr_nonnull(o.state1);
    ck_assert_ptr_nonnull(o.state2);
    ck_assert_uint_eq((uintptr_t)o.state1 % NNRT_ALIGN, 0);
    for (int i = 0; i < 7; i++) ck_assert(((float *)o.state1)[i] == 0 && ((float *)o.state2)[i] == 0);
    ck_assert(o.config.weight_decay == 1e-2);
    nnrt_optim_free(&o);
    nnrt_optim_free(NULL);

    /* Zero parameters are allowed: every step is a no-op. */
    ASSERT_OK(nnrt_optim_init(&o, &c, NNRT_F32, 0));
    nnrt_optim_step(&o, NULL, NULL);
    ck_assert_int_eq(o.step, 1);
    nnrt_optim_free(&o);
}
END_TEST

START_TEST(test_step_refuses_unusable_optimizer) {
    double p[2] = {1, 2}, g[2] = {3, 4};
    nnrt_optim o;
    nnrt_optim_config c = nnrt_optim_defaults(NNRT_OPT_SGD);
    ASSERT_OK(nnrt_optim_init(&o, &c, NNRT_F64, 2));
    o.config.momentum = 0.9; /* momentum switched on after init: no buffer to keep it in */
    nnrt_optim_step(&o, p, g);
    ck_assert_ptr_nonnull(strstr(nnrt_last_error(), "no state buffers"));
    ck_assert(p[0] == 1 && p[1] == 2 && o.step == 0);
    o.config.momentum = 0;
    nnrt_optim_step(&o, NULL, g);
    ck_assert_ptr_nonnull(strstr(nnrt_last_error(), "params or grads is NULL"));
    ck_assert_int_eq(o.step, 0);
    nnrt_optim_free(&o);
    nnrt_optim_step(NULL, p, g);
    ck_assert_ptr_nonnull(strstr(nnrt_last_error(), "optimizer is NULL"));
}
END_TEST

/* ===================================== Hand values ========================================== */

/* Runs steps updates of config on the two-element parameter {1, -2} with gradient {0.5, 0.25}
 * (the same every step) and checks the result against want, in both dtypes. */
static void check_hand(const nnrt_optim_config *c, int steps, const double want[2], double tol64, double tol32) {
    for (int d = 0; d < 2; d++) {
        nnrt_dtype dtype = d ? NNRT_F64 : NNRT_F32;
        double p64[2] = {1, -2}, g64[2] = {0.5, 0.25};
        float p32[2] = {1, -2}, g32[2] = {0.5f, 0.25f};
        void *p = d ? (void *)p64 : (void *)p32;
        const void *g = d ? (const void *)g64 : (const void *)g32;
        nnrt_optim o;
        ASSERT_OK(nnrt_optim_init(&o, c, dtype, 2));
        for (int s = 0; s < steps; s++) nnrt_optim_step(&o, p, g);
        ck_assert_int_eq(o.step, steps);
        for (int i = 0; i < 2; i++) {
            double got = get(dtype, p, i), tol = d ? tol64 : tol32;
            ck_assert_msg(fabs(got - want[i]) <= tol * fabs(want[i]), "%s kind %d, %d steps: p[%d] = %.17g, want %.17g",
                          nnrt_dtype_name(dtype), c->kind, steps, i, got, want[i]);
        }
        nnrt_optim_free(&o);
    }
}

START_TEST(test_sgd_hand_values) {
    nnrt_optim_config c = nnrt_optim_defaults(NNRT_OPT_SGD);
    c.lr = 0.1;
    check_hand(&c, 1, (double[]){0.95, -2.025}, 1e-15, 1e-7);
    /* weight decay 0.1: g = 0.5 + 0.1 * 1 = 0.6 -> 0.94; 0.25 - 0.2 = 0.05 -> -2.005 */
    c.weight_decay = 0.1;
    check_hand(&c, 1, (double[]){0.94, -2.005}, 1e-15, 1e-7);
    /* momentum 0.9, dampening 0.5: buf = g = 0.5 -> p = 0.95; then buf = 0.45 + 0.25 = 0.7 -> 0.88 */
    c = nnrt_optim_defaults(NNRT_OPT_SGD);
    c.lr = 0.1;
    c.momentum = 0.9;
    c.dampening = 0.5;
    check_hand(&c, 2, (double[]){0.88, -2.025 - 0.1 * 0.35}, 1e-15, 1e-7);
    /* Nesterov: buf = 0.5, d = 0.5 + 0.9 * 0.5 = 0.95 -> 0.905; buf = 0.95, d = 0.5 + 0.855 -> 0.7695 */
    c.dampening = 0;
    c.nesterov = 1;
    check_hand(&c, 2, (double[]){0.7695, -2 - 0.1 * (0.475 + 0.6775)}, 1e-15, 1e-7);
}
END_TEST

START_TEST(test_adam_hand_values) {
    /* Adam's first step moves each parameter by lr * g / (|g| + eps) (m and v divided by their
     * bias corrections are g and g*g), and a constant gradient keeps that so at every step. */
    nnrt_optim_config c = nnrt_optim_defaults(NNRT_OPT_ADAM);
    c.lr = 0.01;
    c.eps = 1e-3;
    check_hand(&c, 1, (double[]){1 - 0.01 * 0.5 / 0.501, -2 - 0.01 * 0.25 / 0.251}, 1e-14, 1e-6);
    check_hand(&c, 3, (double[]){1 - 0.03 * 0.5 / 0.501, -2 - 0.03 * 0.25 / 0.251}, 1e-14, 1e-6);
    /* AdamW shrinks the parameter first: p * (1 - lr * wd). */
    c.kind = NNRT_OPT_ADAMW;
    c.weight_decay = 0.5;
    check_hand(&c, 1, (double[]){0.995 - 0.01 * 0.5 / 0.501, -1.99 - 0.01 * 0.25 / 0.251}, 1e-14, 1e-6);
    /* Adam's weight decay joins the gradient instead: g = 0.5 + 0.5 = 1; 0.25 - 1 = -0.75. */
    c.kind = NNRT_OPT_ADAM;
    check_hand(&c, 1, (double[]){1 - 0.01 * 1 / 1.001, -2 + 0.01 * 0.75 / 0.751}, 1e-14, 1e-6);
}
END_TEST

/* ======================================= Clipping =========================================== */

START_TEST(test_grad_norm_hand_values) {
    double g64[4] = {3, 0, -4, 0};
    float g32[4] = {3, 0, -4, 0};
    ck_assert(nnrt_grad_norm(NNRT_F64, g64, 4) == 5);
    ck_assert(nnrt_grad_norm(NNRT_F32, g32, 4) == 5);
    ck_assert(nnrt_grad_norm(NNRT_F32, NULL, 0) == 0);
    /* Accumulated in double: float32 squares that would round away in float are kept. */
    float tiny[3] = {1, 1e-4f, 1e-4f};
    ck_assert(nnrt_grad_norm(NNRT_F32, tiny, 3) == sqrt(1 + 2 * (double)1e-4f * (double)1e-4f));
    ck_assert(isnan(nnrt_grad_norm(NNRT_I64, g64, 4)));
    ck_assert_ptr_nonnull(strstr(nnrt_last_error(), "nnrt_grad_norm: dtype must be float32 or float64"));
    ck_assert(isnan(nnrt_grad_norm(NNRT_F64, NULL, 4)));
    ck_assert_ptr_nonnull(strstr(nnrt_last_error(), "grads is NULL"));
}
END_TEST

START_TEST(test_clip_grad_norm_hand_values) {
    /* Norm 5 over max_norm 1: scaled by 1 / (5 + 1e-6), as torch.nn.utils.clip_grad_norm_. */
    double g64[2] = {3, -4};
    float g32[2] = {3, -4};
    const double coef = 1 / (5 + 1e-6);
    ck_assert(nnrt_clip_grad_norm(NNRT_F64, g64, 2, 1.0) == 5);
    ck_assert(g64[0] == 3 * coef && g64[1] == -4 * coef);
    ck_assert(nnrt_clip_grad_norm(NNRT_F32, g32, 2, 1.0) == 5);
    ck_assert(g32[0] == 3 * (float)coef && g32[1] == -4 * (float)coef);
    ck_assert(fabs(nnrt_grad_norm(NNRT_F64, g64, 2) - 1) < 1e-6);

    /* Below the limit nothing changes, bit for bit. */
    double small[2] = {0.3, 0.4};
    ck_assert(nnrt_clip_grad_norm(NNRT_F64, small, 2, 1.0) == 0.5);
    ck_assert(small[0] == 0.3 && small[1] == 0.4);
    /* At the limit torch still scales, by max_norm / (norm + 1e-6). */
    double at[2] = {3, 4};
    nnrt_clip_grad_norm(NNRT_F64, at, 2, 5.0);
    ck_assert(at[0] == 3 * (5 / (5 + 1e-6)) && at[0] < 3);
    /* max_norm 0 zeroes the gradient. */
    double zero[2] = {3, 4};
    nnrt_clip_grad_norm(NNRT_F64, zero, 2, 0.0);
    ck_assert(zero[0] == 0 && zero[1] == 0);
}
END_TEST

START_TEST(test_clip_grad_norm_bad_input) {
    double g[2] = {3, -4};
    ck_assert(isnan(nnrt_clip_grad_norm(NNRT_F64, g, 2, -1)));
    ck_assert_ptr_nonnull(strstr(nnrt_last_error(), "max_norm must be >= 0, got -1"));
    ck_assert(isnan(nnrt_clip_grad_norm(NNRT_F64, g, 2, NAN)));
    ck_assert(isnan(nnrt_clip_grad_norm(NNRT_I32, g, 2, 1)));
    ck_assert(g[0] == 3 && g[1] == -4);
    /* A non-finite norm is returned for the caller to act on; the gradient stays as it is. */
    double bad[2] = {INFINITY, 1};
    ck_assert(isinf(nnrt_clip_grad_norm(NNRT_F64, bad, 2, 1)));
    ck_assert(isinf(bad[0]) && bad[1] == 1);
    bad[0] = NAN;
    ck_assert(isnan(nnrt_clip_grad_norm(NNRT_F64, bad, 2, 1)));
    ck_assert(bad[1] == 1);
}
END_TEST

/* ================================= PyTorch conformance ====================================== */

#define TORCH_N 1031 /* prime, so no vector width divides it */
#define TORCH_STEPS 3
#define TORCH_ULPS 8.0 /* see the tolerance note at the top of this file */
#define DEFAULT_PYTHON "/usr/bin/python3"

typedef struct torch_case {
    const char *name;
    const char *optim; /* torch_optim.py's name for config.kind */
    nnrt_optim_config config;
} torch_case;

static const torch_case torch_cases[] = {
    {"sgd", "sgd", {.kind = NNRT_OPT_SGD, .lr = 0.1}},
    {"sgd_momentum", "sgd",
     {.kind = NNRT_OPT_SGD, .lr = 0.05, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01}},
    {"sgd_nesterov", "sgd", {.kind = NNRT_OPT_SGD, .lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3, .nesterov = 1}},
    {"adam", "adam", {.kind = NNRT_OPT_ADAM, .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8}},
    {"adam_wd", "adam",
     {.kind = NNRT_OPT_ADAM, .lr = 0.01, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1}},
    {"adamw", "adamw",
     {.kind = NNRT_OPT_ADAMW, .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05}},
};
#define TORCH_CASES ((int)(sizeof torch_cases / sizeof *torch_cases))

enum { TORCH_READY, TORCH_SKIPPED, TORCH_BROKEN };
static int g_status;          /* TORCH_* */
static char g_reason[8192];   /* why skipped or broken */
static char g_dir[1024];      /* the temporary directory, "" when none */

static const char *python_path(void) {
    const char *p = getenv("RNNC_PYTHON");
    return p && *p ? p : DEFAULT_PYTHON;
}

static int torch_required(void) {
    const char *r = getenv("RNNC_REQUIRE_TORCH");
    return r && strcmp(r, "1") == 0;
}

/* Appends s to buf (capacity size) in single quotes, safe for sh. */
static void append_quoted(char *buf, size_t size, const char *s) {
    size_t n = strlen(buf);
    if (n + 1 < size) buf[n++] = '\'';
    for (; *s && n + 5 < size; s++) {
        if (*s == '\'') {
            memcpy(buf + n, "'\\''", 4);
            n += 4;
        } else {
            buf[n++] = *s;
        }
    }
    if (n + 1 < size) buf[n++] = '\'';
    buf[n < size ? n : size - 1] = '\0';
}

/* The last non-empty line of text, copied to out. */
static void last_line(const char *text, char *out, size_t size) {
    const char *end = text + strlen(text);
    while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ')) end--;
    const char *start = end;
    while (start > text && start[-1] != '\n') start--;
    snprintf(out, size, "%.*s", (int)(end - start), start);
}

/* Case c in dtype d (0 float32, 1 float64) is loop index 2 * c + d. */
static void case_name(int index, char *buf, size_t size) {
    snprintf(buf, size, "%s_%s", torch_cases[index / 2].name, index % 2 ? "f64" : "f32");
}

static int write_cases(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "{\"cases\": [");
    for (int i = 0; i < 2 * TORCH_CASES; i++) {
        const torch_case *tc = &torch_cases[i / 2];
        const nnrt_optim_config *c = &tc->config;
        char name[128];
        case_name(i, name, sizeof name);
        fprintf(f,
                "%s\n {\"name\": \"%s\", \"optim\": \"%s\", \"dtype\": \"%s\", \"n\": %d, \"steps\": %d, "
                "\"seed\": %d, \"lr\": %.17g, \"weight_decay\": %.17g, \"momentum\": %.17g, "
                "\"dampening\": %.17g, \"nesterov\": %d, \"beta1\": %.17g, \"beta2\": %.17g, \"eps\": %.17g}",
                i ? "," : "", name, tc->optim, i % 2 ? "float64" : "float32", TORCH_N, TORCH_STEPS, 1000 + i, c->lr,
                c->weight_decay, c->momentum, c->dampening, c->nesterov, c->beta1, c->beta2, c->eps);
    }
    fprintf(f, "]}\n");
    return fclose(f) == 0 ? 0 : -1;
}

static void torch_setup(void) {
    static test_output out; /* 32 KB: keep it off the stack */
    char cmd[4096], line[1024], path[1100];
    g_status = TORCH_BROKEN;
    g_reason[0] = g_dir[0] = '\0';

    /* Is PyTorch there? */
    cmd[0] = '\0';
    append_quoted(cmd, sizeof cmd, python_path());
    strcat(cmd, " -c 'import torch, numpy'");
    if (test_run(cmd, &out) != 0) {
        last_line(out.text, line, sizeof line);
        snprintf(g_reason, sizeof g_reason, "%s cannot import torch and numpy: %s", python_path(),
                 line[0] ? line : "(no output)");
        if (torch_required()) {
            fprintf(stderr, "FAILED: optimizer conformance: %s (RNNC_REQUIRE_TORCH=1)\n", g_reason);
        } else {
            g_status = TORCH_SKIPPED;
            fprintf(stderr, "SKIPPED: optimizer conformance: %s\n", g_reason);
        }
        return;
    }

    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/rnnc-optim-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        snprintf(g_reason, sizeof g_reason, "mkdtemp %s: %s", g_dir, strerror(errno));
        g_dir[0] = '\0';
        return;
    }
    snprintf(path, sizeof path, "%s/cases.json", g_dir);
    if (write_cases(path) != 0) {
        snprintf(g_reason, sizeof g_reason, "cannot write %s: %s", path, strerror(errno));
        return;
    }
    cmd[0] = '\0';
    append_quoted(cmd, sizeof cmd, python_path());
    strcat(cmd, " ");
    append_quoted(cmd, sizeof cmd, RNNC_SOURCE_DIR "/tests/torch_optim.py");
    strcat(cmd, " ");
    append_quoted(cmd, sizeof cmd, g_dir);
    int rc = test_run(cmd, &out);
    if (rc != 0) {
        size_t len = strlen(out.text); /* the end of a traceback says the most */
        snprintf(g_reason, sizeof g_reason, "tests/torch_optim.py failed (status %d):\n%.6000s", rc,
                 out.text + (len > 6000 ? len - 6000 : 0));
        return;
    }
    last_line(out.text, line, sizeof line);
    fprintf(stderr, "optim: reference: %s\n", line);
    g_status = TORCH_READY;
}

static void torch_teardown(void) {
    remove_tree(g_dir);
    g_dir[0] = '\0';
}

/* Reads DIR/<case>/<file>, which must have dtype and shape [dims...]. */
static void read_case_npy(const char *name, const char *file, nnrt_dtype dtype, int ndim, const int64_t *shape,
                          nnrt_array *a) {
    char path[1400];
    snprintf(path, sizeof path, "%s/%s/%s", g_dir, name, file);
    int rc = nnrt_npy_read(path, a);
    ck_assert_msg(rc == NNRT_OK, "%s", nnrt_last_error());
    ck_assert_msg(a->dtype == dtype && a->ndim == ndim, "%s: dtype %s, ndim %d; expected %s, ndim %d", path,
                  nnrt_dtype_name(a->dtype), a->ndim, nnrt_dtype_name(dtype), ndim);
    for (int d = 0; d < ndim; d++)
        ck_assert_msg(a->shape[d] == shape[d], "%s: dimension %d is %lld, expected %lld", path, d,
                      (long long)a->shape[d], (long long)shape[d]);
}

START_TEST(test_torch_conformance) {
    if (g_status == TORCH_SKIPPED) return; /* announced once by the fixture */
    ck_assert_msg(g_status == TORCH_READY, "optimizer conformance: %s", g_reason);
    const torch_case *tc = &torch_cases[_i / 2];
    const nnrt_dtype dtype = _i % 2 ? NNRT_F64 : NNRT_F32;
    const double eps = dtype == NNRT_F64 ? DBL_EPSILON : FLT_EPSILON;
    const size_t n = TORCH_N;
    char name[128];
    case_name(_i, name, sizeof name);

    nnrt_array params0, grads, want;
    read_case_npy(name, "params0.npy", dtype, 1, (int64_t[]){TORCH_N}, &params0);
    read_case_npy(name, "grads.npy", dtype, 2, (int64_t[]){TORCH_STEPS, TORCH_N}, &grads);
    read_case_npy(name, "params.npy", dtype, 2, (int64_t[]){TORCH_STEPS, TORCH_N}, &want);

    const size_t elt = nnrt_dtype_size(dtype);
    void *p = nnrt_alloc(n * elt);
    double *scale = malloc(n * sizeof *scale); /* max |p| so far in torch's trajectory */
    ck_assert(p != NULL && scale != NULL);
    memcpy(p, params0.data, n * elt);
    for (size_t i = 0; i < n; i++) scale[i] = fabs(get(dtype, params0.data, i));
    nnrt_optim o;
    ASSERT_OK(nnrt_optim_init(&o, &tc->config, dtype, n));

    double max_err = 0, max_abs = 0, worst_got = 0, worst_ref = 0;
    size_t differ = 0, worst = 0;
    int worst_step = 0;
    for (int s = 0; s < TORCH_STEPS; s++) {
        nnrt_optim_step(&o, p, (const char *)grads.data + (size_t)s * n * elt);
        const void *ref = (const char *)want.data + (size_t)s * n * elt;
        for (size_t i = 0; i < n; i++) {
            const double got = get(dtype, p, i), r = get(dtype, ref, i);
            scale[i] = fmax(scale[i], fabs(r));
            const double abs_err = fabs(got - r);
            const double err = abs_err == 0 ? 0 : scale[i] > 0 ? abs_err / (eps * scale[i]) : INFINITY;
            differ += got != r;
            max_abs = fmax(max_abs, abs_err);
            if (err > max_err || isnan(got)) {
                max_err = isnan(got) ? INFINITY : err;
                worst = i;
                worst_step = s + 1;
                worst_got = got;
                worst_ref = r;
            }
        }
    }
    fprintf(stderr, "optim torch %-17s %d steps x %d: max err %.2f eps (of max |p| so far), max |err| %.3g, "
                    "%zu of %d values differ\n",
            name, TORCH_STEPS, TORCH_N, max_err, max_abs, differ, TORCH_STEPS * TORCH_N);
    ck_assert_msg(max_err <= TORCH_ULPS,
                  "%s: parameter %zu after step %d is %.17g, torch has %.17g: %.2f eps apart (allowed %.0f)",
                  name, worst, worst_step, worst_got, worst_ref, max_err, TORCH_ULPS);
    nnrt_optim_free(&o);
    nnrt_free(p);
    free(scale);
    nnrt_array_free(&params0);
    nnrt_array_free(&grads);
    nnrt_array_free(&want);
}
END_TEST

/* ===================================== Checkpoints ========================================== */

/* A descriptor as the generator would emit it for gru(3) over 2 inputs, then dense(1). */
static const nnrt_layer_desc ck_layers[] = {{NNRT_CELL_GRU, 2, 3}};
static const nnrt_head_desc ck_heads[] = {{NNRT_ACT_LINEAR, 3, 1}};
static const nnrt_param_desc ck_tensors[] = {
    {"rnn.weight_ih_l0", 2, {9, 2}, 0, 18, 0.5773502691896258},
    {"rnn.weight_hh_l0", 2, {9, 3}, 18, 27, 0.5773502691896258},
    {"rnn.bias_ih_l0", 1, {9, 0}, 45, 9, 0.5773502691896258},
    {"rnn.bias_hh_l0", 1, {9, 0}, 54, 9, 0.5773502691896258},
    {"head.0.weight", 2, {1, 3}, 63, 3, 0.5773502691896258},
    {"head.0.bias", 1, {1, 0}, 66, 1, 0.5773502691896258},
};
#define CK_PARAMS 67

static nnrt_model ck_model(nnrt_dtype dtype) {
    return (nnrt_model){
        .abi_version = NNRT_ABI_VERSION, .name = "ckpt", .isa = "scalar", .dtype = dtype,
        .input = 2, .output = 1, .seq_len = 4, .batch = 1,
        .num_layers = 1, .layers = ck_layers, .num_heads = 1, .heads = ck_heads,
        .num_params = CK_PARAMS, .num_tensors = 6, .tensors = ck_tensors,
        .params_bytes = CK_PARAMS * nnrt_dtype_size(dtype),
    };
}

static char ck_dir[256];

static void ck_dir_setup(void) {
    snprintf(ck_dir, sizeof ck_dir, "/tmp/nnrt_optim_test.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(ck_dir));
}

static void ck_dir_teardown(void) { remove_tree(ck_dir); }

static const char *ck_path(const char *name, char *buf) {
    snprintf(buf, 512, "%s/%s", ck_dir, name);
    return buf;
}
#define CK_TMP(name) ck_path((name), (char[512]){0})

/* The gradient of training step s (counted from 1): a pull towards 0.25 plus noise that depends
 * only on s, so two runs at the same step see the same gradient for the same parameters. */
static void ck_grad(nnrt_dtype dtype, const void *params, void *grads, int s) {
    nnrt_rng rng;
    nnrt_rng_seed(&rng, 9000 + (uint64_t)s);
    for (size_t i = 0; i < CK_PARAMS; i++)
        set(dtype, grads, i, get(dtype, params, i) - 0.25 + 0.1 * nnrt_rng_normal(&rng));
}

/* A zeroed parameter-sized buffer for either dtype, with room for extra elements. */
static void *ck_alloc(size_t extra) {
    void *p = nnrt_alloc((CK_PARAMS + extra) * sizeof(double));
    ck_assert_ptr_nonnull(p);
    return p;
}

static void ck_train(nnrt_optim *o, void *params, int from, int to) {
    void *grads = ck_alloc(0);
    for (int s = from; s <= to; s++) {
        ck_grad(o->dtype, params, grads, s);
        nnrt_optim_step(o, params, grads);
    }
    nnrt_free(grads);
}

static const nnrt_optim_config ck_configs[] = {
    {.kind = NNRT_OPT_SGD, .lr = 0.1},
    {.kind = NNRT_OPT_SGD, .lr = 0.05, .momentum = 0.9, .dampening = 0.2, .weight_decay = 0.01},
    {.kind = NNRT_OPT_SGD, .lr = 0.05, .momentum = 0.8, .nesterov = 1},
    {.kind = NNRT_OPT_ADAM, .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.1},
    {.kind = NNRT_OPT_ADAMW, .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01},
};
#define CK_CONFIGS ((int)(sizeof ck_configs / sizeof *ck_configs))

static void assert_same_optim(const nnrt_optim *a, const nnrt_optim *b) {
    size_t bytes = a->count * nnrt_dtype_size(a->dtype);
    ck_assert_int_eq(a->step, b->step);
    ck_assert((a->state1 == NULL) == (b->state1 == NULL) && (a->state2 == NULL) == (b->state2 == NULL));
    if (a->state1) ck_assert_mem_eq(a->state1, b->state1, bytes);
    if (a->state2) ck_assert_mem_eq(a->state2, b->state2, bytes);
}

START_TEST(test_checkpoint_resume_is_bit_identical) {
    const nnrt_optim_config *c = &ck_configs[_i / 2];
    const nnrt_dtype dtype = _i % 2 ? NNRT_F64 : NNRT_F32;
    const nnrt_model m = ck_model(dtype);
    const size_t bytes = CK_PARAMS * nnrt_dtype_size(dtype);
    void *a_params = ck_alloc(0), *b_params = ck_alloc(0);
    nnrt_model_init(&m, a_params, 42);

    nnrt_optim a, b;
    ASSERT_OK(nnrt_optim_init(&a, c, dtype, CK_PARAMS));
    ASSERT_OK(nnrt_optim_init(&b, c, dtype, CK_PARAMS));
    ck_train(&a, a_params, 1, 3);
    const char *path = CK_TMP("run.safetensors");
    ASSERT_OK(nnrt_checkpoint_save(path, &m, a_params, &a));
    ASSERT_OK(nnrt_checkpoint_load(path, &m, b_params, &b));
    ck_assert_mem_eq(a_params, b_params, bytes);
    assert_same_optim(&a, &b);
    ck_assert_int_eq(b.step, 3);

    /* Both go on as if nothing had happened: a never stopped, b resumed. */
    ck_train(&a, a_params, 4, 7);
    ck_train(&b, b_params, 4, 7);
    ck_assert_mem_eq(a_params, b_params, bytes);
    assert_same_optim(&a, &b);

    /* A checkpoint taken before any step resumes too (SGD's momentum buffer is still unborn). */
    nnrt_optim fresh;
    ASSERT_OK(nnrt_optim_init(&fresh, c, dtype, CK_PARAMS));
    nnrt_model_init(&m, a_params, 43);
    ASSERT_OK(nnrt_checkpoint_save(path, &m, a_params, &fresh));
    ASSERT_OK(nnrt_checkpoint_load(path, &m, b_params, &b));
    ck_assert_int_eq(b.step, 0);
    ck_train(&fresh, a_params, 1, 2);
    ck_train(&b, b_params, 1, 2);
    ck_assert_mem_eq(a_params, b_params, bytes);
    assert_same_optim(&fresh, &b);

    nnrt_optim_free(&fresh);
    nnrt_optim_free(&a);
    nnrt_optim_free(&b);
    nnrt_free(a_params);
    nnrt_free(b_params);
}
END_TEST

START_TEST(test_checkpoint_file_layout) {
    const nnrt_model m = ck_model(NNRT_F64);
    double params[CK_PARAMS];
    nnrt_model_init(&m, params, 1);
    nnrt_optim o;
    nnrt_optim_config c = nnrt_optim_defaults(NNRT_OPT_ADAM);
    ASSERT_OK(nnrt_optim_init(&o, &c, NNRT_F64, CK_PARAMS));
    ck_train(&o, params, 1, 2);
    const char *path = CK_TMP("adam.safetensors");
    ASSERT_OK(nnrt_checkpoint_save(path, &m, params, &o));
    char *file = test_read_file(path);
    ck_assert_ptr_nonnull(file);
    const char *header = file + 8;
    ck_assert_ptr_nonnull(strstr(header, "\"rnn.weight_ih_l0\":{\"dtype\":\"F64\",\"shape\":[9,2]"));
    ck_assert_ptr_nonnull(strstr(header, "\"optim.state1.rnn.weight_ih_l0\":{\"dtype\":\"F64\",\"shape\":[9,2]"));
    ck_assert_ptr_nonnull(strstr(header, "\"optim.state2.head.0.bias\":{\"dtype\":\"F64\",\"shape\":[1]"));
    ck_assert_ptr_nonnull(strstr(header, "\"optim.step\":{\"dtype\":\"I64\",\"shape\":[1]"));
    ck_assert_ptr_nonnull(strstr(header, "\"optim.kind\":{\"dtype\":\"I32\",\"shape\":[1]"));
    free(file);
    nnrt_optim_free(&o);

    /* Plain SGD has no state tensors; the parameters load as an ordinary weights file would. */
    c = nnrt_optim_defaults(NNRT_OPT_SGD);
    ASSERT_OK(nnrt_optim_init(&o, &c, NNRT_F64, CK_PARAMS));
    ASSERT_OK(nnrt_checkpoint_save(path, &m, params, &o));
    file = test_read_file(path);
    ck_assert_ptr_null(strstr(file + 8, "optim.state"));
    ck_assert_ptr_nonnull(strstr(file + 8, "\"optim.kind\""));
    free(file);
    nnrt_optim_free(&o);
}
END_TEST

/* Writes a checkpoint of m by hand: parameters, states layers of state tensors, optim.step and
 * optim.kind, leaving out the tensor named skip (NULL: none). */
static void write_ckpt_by_hand(const char *path, const nnrt_model *m, int states, int64_t step, int32_t kind,
                               const char *skip) {
    static double data[3][CK_PARAMS];
    static char names[2][6][64];
    nnrt_tensor t[3 * 6 + 2];
    size_t n = 0;
    for (int layer = 0; layer <= states; layer++)
        for (int i = 0; i < m->num_tensors; i++) {
            const nnrt_param_desc *d = &m->tensors[i];
            const char *name = d->name;
            if (layer > 0) {
                snprintf(names[layer - 1][i], sizeof names[0][0], "optim.state%d.%s", layer, d->name);
                name = names[layer - 1][i];
            }
            if (skip && strcmp(name, skip) == 0) continue;
            t[n++] = (nnrt_tensor){.name = name, .dtype = m->dtype, .ndim = d->ndim,
                                   .shape = {d->shape[0], d->ndim > 1 ? d->shape[1] : 0},
                                   .data = (char *)data[layer] + d->offset * nnrt_dtype_size(m->dtype)};
        }
    if (!skip || strcmp(skip, "optim.step") != 0)
        t[n++] = (nnrt_tensor){.name = "optim.step", .dtype = NNRT_I64, .ndim = 1, .shape = {1}, .data = &step};
    if (!skip || strcmp(skip, "optim.kind") != 0)
        t[n++] = (nnrt_tensor){.name = "optim.kind", .dtype = NNRT_I32, .ndim = 1, .shape = {1}, .data = &kind};
    ASSERT_OK(nnrt_safetensors_write(path, t, n));
}

/* Loads path into an optimizer of config c and asserts it fails with code and text, leaving the
 * parameters and the optimizer exactly as they were. */
static void assert_load_fails(const char *path, const nnrt_model *m, const nnrt_optim_config *c, int code,
                              const char *text) {
    void *params = ck_alloc(0), *before = ck_alloc(0);
    nnrt_model_init(m, params, 5);
    memcpy(before, params, CK_PARAMS * sizeof(double));
    nnrt_optim o, ref;
    ASSERT_OK(nnrt_optim_init(&o, c, m->dtype, m->num_params));
    ASSERT_OK(nnrt_optim_init(&ref, c, m->dtype, m->num_params));
    ck_train(&o, params, 1, 2);
    ck_train(&ref, before, 1, 2);
    ASSERT_FAILS(nnrt_checkpoint_load(path, m, params, &o), code, text);
    ck_assert_mem_eq(params, before, m->num_params * nnrt_dtype_size(m->dtype));
    assert_same_optim(&o, &ref);
    nnrt_optim_free(&o);
    nnrt_optim_free(&ref);
    nnrt_free(params);
    nnrt_free(before);
}

START_TEST(test_checkpoint_wrong_optimizer) {
    const nnrt_model m = ck_model(NNRT_F32);
    float *params = ck_alloc(0);
    nnrt_model_init(&m, params, 3);
    nnrt_optim o;
    nnrt_optim_config adam = nnrt_optim_defaults(NNRT_OPT_ADAM), adamw = nnrt_optim_defaults(NNRT_OPT_ADAMW);
    nnrt_optim_config sgd = nnrt_optim_defaults(NNRT_OPT_SGD), sgd_m = sgd;
    sgd_m.momentum = 0.9;
    ASSERT_OK(nnrt_optim_init(&o, &adam, NNRT_F32, CK_PARAMS));
    ck_train(&o, params, 1, 2);
    const char *path = CK_TMP("adam.safetensors");
    ASSERT_OK(nnrt_checkpoint_save(path, &m, params, &o));
    nnrt_optim_free(&o);

    assert_load_fails(path, &m, &adamw, NNRT_ERR_ARG, "adam.safetensors: the checkpoint holds the state of Adam, "
                                                      "but this optimizer is AdamW");
    assert_load_fails(path, &m, &sgd_m, NNRT_ERR_ARG, "holds the state of Adam, but this optimizer is SGD with momentum");
    assert_load_fails(path, &m, &sgd, NNRT_ERR_ARG, "holds the state of Adam, but this optimizer is SGD without momentum");

    ASSERT_OK(nnrt_optim_init(&o, &sgd, NNRT_F32, CK_PARAMS));
    path = CK_TMP("sgd.safetensors");
    ASSERT_OK(nnrt_checkpoint_save(path, &m, params, &o));
    nnrt_optim_free(&o);
    assert_load_fails(path, &m, &adam, NNRT_ERR_ARG, "holds the state of SGD without momentum, but this optimizer is Adam");
    assert_load_fails(path, &m, &sgd_m, NNRT_ERR_ARG, "holds the state of SGD without momentum, but this optimizer is "
                                                      "SGD with momentum");

    /* A weights file is not a checkpoint. */
    path = CK_TMP("weights.safetensors");
    ASSERT_OK(nnrt_model_save(&m, params, path));
    assert_load_fails(path, &m, &adam, NNRT_ERR_ARG, "holds the parameters of model ckpt but no optimizer state: a "
                                                     "weights file, not a checkpoint");
    assert_load_fails(path, &m, &sgd, NNRT_ERR_ARG, "a weights file, not a checkpoint");

    /* An unknown kind in the right layout, and a kind that does not fit its layout. */
    path = CK_TMP("kind9.safetensors");
    write_ckpt_by_hand(path, &m, 2, 4, 9, NULL);
    assert_load_fails(path, &m, &adam, NNRT_ERR_ARG, "holds the state of an unknown optimizer, but this optimizer is Adam");
    path = CK_TMP("kind_mismatch.safetensors");
    write_ckpt_by_hand(path, &m, 1, 4, NNRT_OPT_ADAMW, NULL);
    assert_load_fails(path, &m, &adam, NNRT_ERR_FORMAT, "optim.kind 2 does not fit 1 state tensors per parameter");
    path = CK_TMP("negative_step.safetensors");
    write_ckpt_by_hand(path, &m, 2, -1, NNRT_OPT_ADAM, NULL);
    assert_load_fails(path, &m, &adam, NNRT_ERR_FORMAT, "optim.step is negative (-1)");
    nnrt_free(params);
}
END_TEST

START_TEST(test_checkpoint_missing_tensors) {
    const nnrt_model m = ck_model(NNRT_F64);
    nnrt_optim_config adam = nnrt_optim_defaults(NNRT_OPT_ADAM);
    const char *path = CK_TMP("partial.safetensors");
    write_ckpt_by_hand(path, &m, 2, 3, NNRT_OPT_ADAM, "optim.state2.head.0.bias");
    assert_load_fails(path, &m, &adam, NNRT_ERR_NAME, "partial.safetensors: missing tensor optim.state2.head.0.bias");
    write_ckpt_by_hand(path, &m, 2, 3, NNRT_OPT_ADAM, "optim.step");
    assert_load_fails(path, &m, &adam, NNRT_ERR_NAME, "missing tensor optim.step");
    write_ckpt_by_hand(path, &m, 2, 3, NNRT_OPT_ADAM, "rnn.bias_hh_l0");
    assert_load_fails(path, &m, &adam, NNRT_ERR_NAME, "missing tensor rnn.bias_hh_l0");
    assert_load_fails(CK_TMP("absent.safetensors"), &m, &adam, NNRT_ERR_IO, "absent.safetensors: cannot open");
}
END_TEST

START_TEST(test_checkpoint_other_model) {
    const nnrt_model m = ck_model(NNRT_F64);
    double params[CK_PARAMS + 9];
    nnrt_model_init(&m, params, 3);
    nnrt_optim o;
    nnrt_optim_config sgd_m = nnrt_optim_defaults(NNRT_OPT_SGD);
    sgd_m.momentum = 0.5;
    ASSERT_OK(nnrt_optim_init(&o, &sgd_m, NNRT_F64, CK_PARAMS));
    ck_train(&o, params, 1, 1);
    const char *path = CK_TMP("ckpt.safetensors");
    ASSERT_OK(nnrt_checkpoint_save(path, &m, params, &o));
    nnrt_optim_free(&o);

    /* Another precision: the first tensor says so. */
    const nnrt_model m32 = ck_model(NNRT_F32);
    assert_load_fails(path, &m32, &sgd_m, NNRT_ERR_DTYPE, "tensor rnn.weight_ih_l0: expected dtype F32, found F64");

    /* Another shape: a head of two outputs. */
    nnrt_param_desc wider[6];
    memcpy(wider, ck_tensors, sizeof wider);
    wider[4] = (nnrt_param_desc){"head.0.weight", 2, {2, 3}, 63, 6, 1.0};
    wider[5] = (nnrt_param_desc){"head.0.bias", 1, {2, 0}, 69, 2, 1.0};
    nnrt_model other = ck_model(NNRT_F64);
    other.tensors = wider;
    other.num_params = 71;
    double big[71];
    nnrt_optim ob;
    ASSERT_OK(nnrt_optim_init(&ob, &sgd_m, NNRT_F64, 71));
    ASSERT_FAILS(nnrt_checkpoint_load(path, &other, big, &ob), NNRT_ERR_SHAPE,
                 "tensor head.0.weight: expected shape [2, 3], found [1, 3]");
    nnrt_optim_free(&ob);

    /* Another architecture: a second layer the file does not have. */
    nnrt_param_desc deeper[7];
    memcpy(deeper, ck_tensors, sizeof ck_tensors);
    deeper[6] = (nnrt_param_desc){"rnn.weight_ih_l1", 1, {9, 0}, 67, 9, 1.0};
    other = ck_model(NNRT_F64);
    other.tensors = deeper;
    other.num_tensors = 7;
    other.num_params = CK_PARAMS + 9;
    ASSERT_OK(nnrt_optim_init(&ob, &sgd_m, NNRT_F64, CK_PARAMS + 9));
    ASSERT_FAILS(nnrt_checkpoint_load(path, &other, params, &ob), NNRT_ERR_NAME, "missing tensor rnn.weight_ih_l1");
    nnrt_optim_free(&ob);
}
END_TEST

START_TEST(test_checkpoint_bad_arguments) {
    const nnrt_model m = ck_model(NNRT_F32);
    float params[CK_PARAMS] = {0};
    nnrt_optim o;
    nnrt_optim_config c = nnrt_optim_defaults(NNRT_OPT_ADAM);
    const char *path = CK_TMP("x.safetensors");
    ASSERT_OK(nnrt_optim_init(&o, &c, NNRT_F64, CK_PARAMS));
    ASSERT_FAILS(nnrt_checkpoint_save(path, &m, params, &o), NNRT_ERR_ARG, "model ckpt is float32 but the optimizer is float64");
    nnrt_optim_free(&o);
    ASSERT_OK(nnrt_optim_init(&o, &c, NNRT_F32, CK_PARAMS - 1));
    ASSERT_FAILS(nnrt_checkpoint_save(path, &m, params, &o), NNRT_ERR_ARG,
                 "model ckpt has 67 parameters but the optimizer was set up for 66");
    ASSERT_FAILS(nnrt_checkpoint_load(path, &m, params, &o), NNRT_ERR_ARG, "set up for 66");
    nnrt_optim_free(&o);
    ASSERT_FAILS(nnrt_checkpoint_save(path, &m, params, NULL), NNRT_ERR_ARG, "optimizer is NULL");
    ASSERT_FAILS(nnrt_checkpoint_save(path, NULL, params, &o), NNRT_ERR_ARG, "NULL");
    nnrt_model stale = ck_model(NNRT_F32);
    stale.abi_version = NNRT_ABI_VERSION + 1;
    ASSERT_OK(nnrt_optim_init(&o, &c, NNRT_F32, CK_PARAMS));
    ASSERT_FAILS(nnrt_checkpoint_save(path, &stale, params, &o), NNRT_ERR_ARG, "generated for runtime ABI");
    stale = ck_model(NNRT_F32);
    stale.num_params = 66; /* head.0.bias would fall outside the array */
    o.count = 66;
    ASSERT_FAILS(nnrt_checkpoint_save(path, &stale, params, &o), NNRT_ERR_ARG, "descriptor entry 5 (head.0.bias)");
    o.count = CK_PARAMS;
    nnrt_optim_free(&o);
    /* Nothing was written by any of these. */
    ck_assert_int_eq(access(path, F_OK), -1);
}
END_TEST

/* ======================================== Suite ============================================= */

Suite *optim_suite(void) {
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_defaults_are_torch_defaults);
    tcase_add_loop_test(tc, test_init_rejects_bad_config, 0, (int)(sizeof bad_configs / sizeof *bad_configs));
    tcase_add_test(tc, test_init_rejects_bad_arguments);
    tcase_add_test(tc, test_init_state_layout);
    tcase_add_test(tc, test_step_refuses_unusable_optimizer);
    suite_add_tcase(s, tc);

    tc = tcase_create("hand");
    tcase_add_test(tc, test_sgd_hand_values);
    tcase_add_test(tc, test_adam_hand_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("clip");
    tcase_add_test(tc, test_grad_norm_hand_values);
    tcase_add_test(tc, test_clip_grad_norm_hand_values);
    tcase_add_test(tc, test_clip_grad_norm_bad_input);
    suite_add_tcase(s, tc);

    tc = tcase_create("torch");
    tcase_add_unchecked_fixture(tc, torch_setup, torch_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_torch_conformance, 0, 2 * TORCH_CASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("checkpoint");
    tcase_add_checked_fixture(tc, ck_dir_setup, ck_dir_teardown);
    tcase_add_loop_test(tc, test_checkpoint_resume_is_bit_identical, 0, 2 * CK_CONFIGS);
    tcase_add_test(tc, test_checkpoint_file_layout);
    tcase_add_test(tc, test_checkpoint_wrong_optimizer);
    tcase_add_test(tc, test_checkpoint_missing_tensors);
    tcase_add_test(tc, test_checkpoint_other_model);
    tcase_add_test(tc, test_checkpoint_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}
