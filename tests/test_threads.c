/* test_threads.c — the multi-core entry points (*_mt on an nnrt_workers team) give bitwise the
 * results of one thread, for every cell, loss, output_at and backend of the ISA suite's models
 * (most of which are generated with parallel = "split", so every layer-step is shared), for
 * teams of 2 and 3 threads; and the team itself: every thread runs a job, barriers order writes.
 * Run it under ThreadSanitizer with `make tsan`. */
#include <check.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "isa_models.h"
#include "nnrt.h"

#define T_STEPS 3 /* streaming steps per check */

/* Everything one run of a model produces, for one team size. */
typedef struct run_result {
    void *state_step, *y_step;       /* after T_STEPS streaming steps */
    void *state_fwd, *y_fwd;         /* after a sequence forward */
    void *y_train, *grads, *dx;      /* training forward, backward */
    size_t state_bytes, y_step_bytes, y_bytes, x_bytes;
} run_result;

static void *xcalloc(size_t bytes)
{
    void *p = nnrt_alloc(bytes);
    ck_assert_ptr_nonnull(p);
    return p;
}

static void fill(const nnrt_model *m, void *dst, size_t n, uint64_t seed)
{
    nnrt_rng rng;
    nnrt_rng_seed(&rng, seed);
    if (m->dtype == NNRT_F64)
        nnrt_fill_uniform_f64(dst, n, -1, 1, &rng);
    else
        nnrt_fill_uniform_f32(dst, n, -1, 1, &rng);
}

/* A non-zero state, so the starting h and c are exercised. */
static void start_state(const nnrt_model *m, void *state)
{
    fill(m, state, m->state_bytes / nnrt_dtype_size(m->dtype), 7);
}

static void run_model(const nnrt_model *m, nnrt_workers *team, run_result *r)
{
    const size_t es = nnrt_dtype_size(m->dtype);
    const int T = m->seq_len;
    const size_t xn = (size_t)T * m->batch * m->input;
    const size_t yn = (m->output_last ? 1 : (size_t)T) * m->batch * m->output;
    void *params = xcalloc(m->params_bytes), *weights = xcalloc(m->weights_bytes);
    void *work = xcalloc(m->work_bytes), *tape = xcalloc(m->tape_bytes);
    void *x = xcalloc(xn * es), *dy = xcalloc(yn * es);
    nnrt_model_init(m, params, 11);
    m->pack(params, weights);
    fill(m, x, xn, 12);
    fill(m, dy, yn, 13);
    r->state_bytes = m->state_bytes;
    r->x_bytes = xn * es;
    r->y_bytes = yn * es;
    r->y_step_bytes = (size_t)m->batch * m->output * es;

    r->state_step = xcalloc(m->state_bytes);
    r->y_step = xcalloc(T_STEPS * r->y_step_bytes);
    start_state(m, r->state_step);
    for (int t = 0; t < T_STEPS; t++)
        m->step_mt(team, weights, r->state_step, (char *)x + (size_t)t * m->batch * m->input * es,
                   (char *)r->y_step + (size_t)t * r->y_step_bytes);

    r->state_fwd = xcalloc(m->state_bytes);
    r->y_fwd = xcalloc(r->y_bytes);
    start_state(m, r->state_fwd);
    ck_assert_int_eq(m->forward_mt(team, weights, r->state_fwd, work, T, x, r->y_fwd), NNRT_OK);

    void *state = xcalloc(m->state_bytes);
    r->y_train = xcalloc(r->y_bytes);
    r->grads = xcalloc(m->params_bytes);
    r->dx = xcalloc(r->x_bytes);
    start_state(m, state);
    ck_assert_int_eq(m->forward_train_mt(team, weights, state, tape, T, x, r->y_train), NNRT_OK);
    ck_assert_int_eq(m->backward_mt(team, params, tape, x, dy, r->grads, r->dx), NNRT_OK);
    /* A second backward accumulates into the gradients, as with micro-batches. */
    ck_assert_int_eq(m->backward_mt(team, params, tape, x, dy, r->grads, r->dx), NNRT_OK);
    nnrt_free(state);
    nnrt_free(params);
    nnrt_free(weights);
    nnrt_free(work);
    nnrt_free(tape);
    nnrt_free(x);
    nnrt_free(dy);
}

static void free_result(run_result *r)
{
    void *all[] = {r->state_step, r->y_step, r->state_fwd, r->y_fwd, r->y_train, r->grads, r->dx};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) nnrt_free(all[i]);
}

static void same(const nnrt_model *m, int threads, const char *what, const void *a, const void *b, size_t bytes)
{
    ck_assert_msg(memcmp(a, b, bytes) == 0, "%s (%s): %s with %d threads differs from one thread", m->name, m->isa, what,
                  threads);
}

static void check_model(const nnrt_model *m)
{
    run_result one, many;
    run_model(m, NULL, &one);
    for (int threads = 2; threads <= 3; threads++) {
        nnrt_workers *team;
        ck_assert_int_eq(nnrt_workers_create(threads, &team), NNRT_OK);
        ck_assert_int_eq(nnrt_workers_threads(team), threads);
        run_model(m, team, &many);
        same(m, threads, "step state", one.state_step, many.state_step, one.state_bytes);
        same(m, threads, "step y", one.y_step, many.y_step, T_STEPS * one.y_step_bytes);
        same(m, threads, "forward state", one.state_fwd, many.state_fwd, one.state_bytes);
        same(m, threads, "forward y", one.y_fwd, many.y_fwd, one.y_bytes);
        same(m, threads, "training forward y", one.y_train, many.y_train, one.y_bytes);
        same(m, threads, "gradients", one.grads, many.grads, m->params_bytes);
        same(m, threads, "dx", one.dx, many.dx, one.x_bytes);
        free_result(&many);
        nnrt_workers_destroy(team);
    }
    free_result(&one);
}

START_TEST(threads_agree_bitwise)
{
    const rnnc_isa_pair *p = &rnnc_isa_pairs[_i];
    /* Each spec's scalar model once (with the first of its pairs), then the SIMD variant. */
    if (_i == 0 || rnnc_isa_pairs[_i - 1].scalar != p->scalar) check_model(p->scalar);
    if (!rnnc_isa_runs_here(p->isa)) {
        printf("threads: %s: skipped, this CPU cannot run %s\n", p->variant->name, p->isa);
        return;
    }
    check_model(p->variant);
}
END_TEST

/* The team: every thread runs each job once with its own id; values written before a barrier
 * are seen by every thread after it (each thread checks the others' slots). */
typedef struct {
    atomic_int ran[4];
    int slots[4];
    int bad;
} team_job;

static void team_job_run(void *arg, int id, int count, nnrt_workers *team)
{
    team_job *j = arg;
    atomic_fetch_add(&j->ran[id], 1);
    for (int round = 1; round <= 50; round++) {
        j->slots[id] = round * 10 + id;
        nnrt_workers_sync(team);
        for (int k = 0; k < count; k++)
            if (j->slots[k] != round * 10 + k) j->bad = 1; /* a data race TSan would also flag */
        nnrt_workers_sync(team);
    }
}

START_TEST(team_runs_every_thread)
{
    for (int threads = 1; threads <= 4; threads++) {
        nnrt_workers *team;
        ck_assert_int_eq(nnrt_workers_create(threads, &team), NNRT_OK);
        for (int job = 0; job < 20; job++) {
            team_job j;
            memset(&j, 0, sizeof j);
            nnrt_workers_run(team, team_job_run, &j);
            for (int k = 0; k < threads; k++) ck_assert_int_eq(atomic_load(&j.ran[k]), 1);
            ck_assert_int_eq(j.bad, 0);
        }
        nnrt_workers_destroy(team);
    }
    /* A NULL team runs the job on the caller alone. */
    team_job j;
    memset(&j, 0, sizeof j);
    nnrt_workers_run(NULL, team_job_run, &j);
    ck_assert_int_eq(atomic_load(&j.ran[0]), 1);
    ck_assert_int_eq(nnrt_workers_threads(NULL), 1);
}
END_TEST

START_TEST(team_size_is_checked)
{
    nnrt_workers *team = (nnrt_workers *)&team;
    ck_assert_int_eq(nnrt_workers_create(0, &team), NNRT_ERR_ARG);
    ck_assert_ptr_null(team);
    ck_assert_int_eq(nnrt_workers_create(NNRT_MAX_THREADS + 1, &team), NNRT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(nnrt_last_error(), "65 threads requested"));
    nnrt_workers_destroy(NULL);
}
END_TEST

/* nnrt_share: contiguous, in order, covering everything, sizes within one. */
START_TEST(share_covers_everything)
{
    for (int n = 0; n < 40; n++)
        for (int count = 1; count <= 5; count++) {
            int next = 0;
            for (int id = 0; id < count; id++) {
                int lo, hi;
                nnrt_share(n, id, count, &lo, &hi);
                ck_assert_int_eq(lo, next);
                ck_assert_int_ge(hi - lo, n / count);
                ck_assert_int_le(hi - lo, n / count + 1);
                next = hi;
            }
            ck_assert_int_eq(next, n);
        }
}
END_TEST

Suite *threads_suite(void)
{
    Suite *s = suite_create("threads");
    TCase *team = tcase_create("team");
    tcase_add_test(team, team_runs_every_thread);
    tcase_add_test(team, team_size_is_checked);
    tcase_add_test(team, share_covers_everything);
    suite_add_tcase(s, team);
    TCase *models = tcase_create("models");
    tcase_set_timeout(models, 120);
    tcase_add_loop_test(models, threads_agree_bitwise, 0, rnnc_isa_pair_count);
    suite_add_tcase(s, models);
    return s;
}
