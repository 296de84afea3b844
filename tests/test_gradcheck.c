/* test_gradcheck.c — the generated backward pass against central finite differences, in f64.
 *
 * For every registered f64 model named grad_* (tests/specs/grad: every cell x loss x output_at,
 * unequal stacks, every head activation) and every parameter and input element e, the generated
 * backward is compared with the five-point central difference
 *     numeric = (8 (L(e+h) - L(e-h)) - (L(e+2h) - L(e-2h))) / (12 h),   h = 1e-4.
 * Both start from the same random non-zero state, a constant (no gradient flows into it).
 *
 * Tolerance: |analytic - numeric| <= 1e-6 * max(|analytic|, |numeric|) + 1e-11. The stencil's
 * truncation error is O(h^4 L^(5)) ~ 1e-16 and its rounding error ~ 1e-16 |L| / h ~ 1e-12, so a
 * relative error of 1e-6 leaves a wide margin for a correct gradient and is far below any real
 * mistake (a missing term is O(1) relative). The absolute floor covers gradients that are ~0.
 * The printed maximum relative error is taken over elements with |gradient| > 1e-5, where the
 * absolute floor is negligible; it must stay below 1e-6 too.
 * Kinks (relu at exactly 0) are not hit with random weights.
 */
#define _DEFAULT_SOURCE
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnrt.h"
#include "test_models.h"

#define H 1e-4
#define RTOL 1e-6
#define ATOL 1e-11

typedef struct problem {
    const nnrt_model *m;
    int T;
    size_t nx, ny, nt; /* elements of x, y, target */
    double *params, *grads, *x, *dx, *y, *dy, *state0, *state;
    void *weights; /* params packed for the forward: repacked after every change of params */
    void *target, *tape;
} problem;

static size_t rows_of(const nnrt_model *m, int T) { return (size_t)(m->output_last ? 1 : T) * (size_t)m->batch; }

static void fill(double *dst, size_t n, double lo, double hi, nnrt_rng *rng)
{
    nnrt_fill_uniform_f64(dst, n, lo, hi, rng);
}

static void problem_init(problem *p, const nnrt_model *m, int T, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->m = m;
    p->T = T;
    p->nx = (size_t)T * m->batch * m->input;
    p->ny = rows_of(m, T) * (size_t)m->output;
    p->nt = m->loss_kind == NNRT_LOSS_CROSS_ENTROPY ? rows_of(m, T) : p->ny;
    p->params = nnrt_alloc(m->params_bytes);
    p->weights = nnrt_alloc(m->weights_bytes);
    p->grads = nnrt_alloc(m->params_bytes);
    p->x = nnrt_alloc(p->nx * sizeof(double));
    p->dx = nnrt_alloc(p->nx * sizeof(double));
    p->y = nnrt_alloc(p->ny * sizeof(double));
    p->dy = nnrt_alloc(p->ny * sizeof(double));
    p->state0 = nnrt_alloc(m->state_bytes);
    p->state = nnrt_alloc(m->state_bytes);
    p->tape = nnrt_alloc(m->tape_bytes);
    p->target = nnrt_alloc(p->nt * 8);
    ck_assert_msg(p->params && p->weights && p->grads && p->x && p->dx && p->y && p->dy && p->state0 && p->state && p->tape &&
                  p->target, "out of memory");
    nnrt_model_init(m, p->params, seed);
    m->pack(p->params, p->weights);
    nnrt_rng rng;
    nnrt_rng_seed(&rng, seed + 1);
    fill(p->x, p->nx, -1, 1, &rng);
    fill(p->state0, m->state_bytes / sizeof(double), -0.5, 0.5, &rng);
    if (m->loss_kind == NNRT_LOSS_CROSS_ENTROPY) {
        int32_t *classes = p->target;
        for (size_t i = 0; i < p->nt; i++) classes[i] = (int32_t)(nnrt_rng_u64(&rng) % (uint64_t)m->output);
    } else {
        fill(p->target, p->nt, m->loss_kind == NNRT_LOSS_BCE ? 0 : -1, 1, &rng);
    }
}

static void problem_free(problem *p)
{
    void *blocks[] = {p->params, p->weights, p->grads, p->x, p->dx, p->y, p->dy, p->state0, p->state, p->tape, p->target};
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) nnrt_free(blocks[i]);
}

/* The loss at the current params and x, from the fixed start state. */
static double loss_at(problem *p)
{
    memcpy(p->state, p->state0, p->m->state_bytes);
    p->m->pack(p->params, p->weights);
    ck_assert_int_eq(p->m->forward_train(p->weights, p->state, p->tape, p->T, p->x, p->y), NNRT_OK);
    double loss;
    ck_assert_int_eq(p->m->loss(p->T, p->y, p->target, &loss, NULL), NNRT_OK);
    return loss;
}

/* Five-point central difference of the loss with respect to *element: truncation error
 * O(h^4), so h can be large enough that rounding stays negligible. */
static double numeric(problem *p, double *element)
{
    const double saved = *element;
    double f[4];
    const double offsets[4] = {2 * H, H, -H, -2 * H};
    for (int i = 0; i < 4; i++) {
        *element = saved + offsets[i];
        f[i] = loss_at(p);
    }
    *element = saved;
    return (8 * (f[1] - f[2]) - (f[0] - f[3])) / (12 * H);
}

/* Name of the tensor holding flat parameter i, and the index inside it. */
static const char *tensor_of(const nnrt_model *m, size_t i, size_t *inside)
{
    for (int k = 0; k < m->num_tensors; k++) {
        const nnrt_param_desc *t = &m->tensors[k];
        if (i >= t->offset && i < t->offset + t->count) {
            *inside = i - t->offset;
            return t->name;
        }
    }
    *inside = i;
    return "?";
}

static double check_one(const char *model, const char *what, size_t index, double analytic, double num, int *failures)
{
    const double err = fabs(analytic - num);
    const double scale = fmax(fabs(analytic), fabs(num));
    if (!(err <= RTOL * scale + ATOL)) {
        if ((*failures)++ < 5)
            fprintf(stderr, "%s: %s[%zu]: analytic %.12g, finite difference %.12g (error %.3g)\n", model, what, index,
                    analytic, num, err);
    }
    return scale > 1e-5 ? err / scale : 0;
}

START_TEST(gradient_matches_finite_differences)
{
    const nnrt_model *m = rnnc_test_models[_i];
    if (strncmp(m->name, "grad_", 5) != 0) return;
    ck_assert_msg(m->dtype == NNRT_F64, "%s: gradient checks need f64", m->name);
    for (int T = 1; T <= m->seq_len; T += m->seq_len > 1 ? m->seq_len - 1 : 1) {
        problem p;
        problem_init(&p, m, T, 42 + (uint64_t)T);
        /* Analytic: one training forward, the loss's dy, one backward. */
        memcpy(p.state, p.state0, m->state_bytes);
        ck_assert_int_eq(m->forward_train(p.weights, p.state, p.tape, T, p.x, p.y), NNRT_OK);
        double loss;
        ck_assert_int_eq(m->loss(T, p.y, p.target, &loss, p.dy), NNRT_OK);
        memset(p.grads, 0, m->params_bytes);
        ck_assert_int_eq(m->backward(p.params, p.tape, p.x, p.dy, p.grads, p.dx), NNRT_OK);

        int failures = 0;
        double worst = 0;
        for (size_t i = 0; i < m->num_params; i++) {
            size_t inside;
            const char *name = tensor_of(m, i, &inside);
            worst = fmax(worst, check_one(m->name, name, inside, p.grads[i], numeric(&p, &p.params[i]), &failures));
        }
        for (size_t i = 0; i < p.nx; i++)
            worst = fmax(worst, check_one(m->name, "x", i, p.dx[i], numeric(&p, &p.x[i]), &failures));
        printf("gradcheck %-28s T=%d: %zu parameters + %zu inputs, max relative error %.2e\n", m->name, T,
               m->num_params, p.nx, worst);
        ck_assert_msg(worst < RTOL, "%s (T=%d): max relative error %.3g", m->name, T, worst);
        ck_assert_msg(failures == 0, "%s (T=%d): %d gradient elements disagree with finite differences", m->name, T,
                      failures);
        problem_free(&p);
    }
}
END_TEST

/* Gradients accumulate: two backward passes without zeroing give twice the gradient. */
START_TEST(gradients_accumulate)
{
    const nnrt_model *m = rnnc_test_models[_i];
    if (strncmp(m->name, "grad_", 5) != 0) return;
    problem p;
    problem_init(&p, m, m->seq_len, 7);
    double *once = nnrt_alloc(m->params_bytes);
    memcpy(p.state, p.state0, m->state_bytes);
    ck_assert_int_eq(m->forward_train(p.weights, p.state, p.tape, p.T, p.x, p.y), NNRT_OK);
    double loss;
    ck_assert_int_eq(m->loss(p.T, p.y, p.target, &loss, p.dy), NNRT_OK);
    ck_assert_int_eq(m->backward(p.params, p.tape, p.x, p.dy, once, NULL), NNRT_OK);
    ck_assert_int_eq(m->backward(p.params, p.tape, p.x, p.dy, p.grads, NULL), NNRT_OK);
    ck_assert_int_eq(m->backward(p.params, p.tape, p.x, p.dy, p.grads, NULL), NNRT_OK);
    for (size_t i = 0; i < m->num_params; i++)
        ck_assert_msg(fabs(p.grads[i] - 2 * once[i]) <= 1e-12 * fabs(once[i]) + 1e-15, "%s: element %zu", m->name, i);
    nnrt_free(once);
    problem_free(&p);
}
END_TEST

/* The training forward computes what the inference forward does, and leaves the same state. */
START_TEST(training_forward_equals_inference)
{
    const nnrt_model *m = rnnc_test_models[_i];
    const size_t real = m->dtype == NNRT_F64 ? 8 : 4;
    const int T = m->seq_len;
    const size_t ny = rows_of(m, T) * (size_t)m->output, nx = (size_t)T * m->batch * m->input;
    void *params = nnrt_alloc(m->params_bytes), *work = nnrt_alloc(m->work_bytes), *tape = nnrt_alloc(m->tape_bytes);
    void *weights = nnrt_alloc(m->weights_bytes);
    void *s1 = nnrt_alloc(m->state_bytes), *s2 = nnrt_alloc(m->state_bytes);
    void *x = nnrt_alloc(nx * real), *y1 = nnrt_alloc(ny * real), *y2 = nnrt_alloc(ny * real);
    nnrt_model_init(m, params, 3);
    m->pack(params, weights);
    nnrt_rng rng;
    nnrt_rng_seed(&rng, 4);
    for (size_t i = 0; i < nx; i++) {
        double v = 2 * nnrt_rng_uniform(&rng) - 1;
        if (real == 8) ((double *)x)[i] = v;
        else ((float *)x)[i] = (float)v;
    }
    m->reset(s1);
    m->reset(s2);
    ck_assert_int_eq(m->forward(weights, s1, work, T, x, y1), NNRT_OK);
    ck_assert_int_eq(m->forward_train(weights, s2, tape, T, x, y2), NNRT_OK);
    ck_assert_msg(memcmp(y1, y2, ny * real) == 0, "%s: outputs differ", m->name);
    ck_assert_msg(memcmp(s1, s2, m->state_bytes) == 0, "%s: final states differ", m->name);
    void *blocks[] = {params, weights, work, tape, s1, s2, x, y1, y2};
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) nnrt_free(blocks[i]);
}
END_TEST

Suite *gradcheck_suite(void)
{
    Suite *s = suite_create("gradcheck");
    TCase *tc = tcase_create("finite differences");
    tcase_add_loop_test(tc, gradient_matches_finite_differences, 0, rnnc_test_model_count);
    tcase_add_loop_test(tc, gradients_accumulate, 0, rnnc_test_model_count);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    TCase *train = tcase_create("training forward");
    tcase_add_loop_test(train, training_forward_equals_inference, 0, rnnc_test_model_count);
    suite_add_tcase(s, train);
    return s;
}
