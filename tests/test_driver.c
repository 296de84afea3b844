/* test_driver.c — the generic driver (runtime/nnrt_driver*.c) against the tiny
 * hand-written models of driver_test.h: init, forward, chunking, the command line, bad input files
 * and the atomic replacement of outputs. */
#include "driver_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *driver_suite(void);


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


/* ---- suite ----------------------------------------------------------------------------------- */

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

    return s;
}
