/* test_driver_bench.c — the driver's bench command on real generated models. The tests
 * never assert on a timing beyond its being positive. */
#include "driver_test.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

Suite *driver_bench_suite(void);

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

/* ---- suite ----------------------------------------------------------------------------------- */

Suite *driver_bench_suite(void) {
    Suite *s = suite_create("driver_bench");
    TCase *tc;

    tc = tcase("bench");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_bench_json);
    tcase_add_test(tc, test_bench_table);
    tcase_add_test(tc, test_bench_bad_options);
    tcase_add_test(tc, test_bench_help);
    suite_add_tcase(s, tc);

    return s;
}
