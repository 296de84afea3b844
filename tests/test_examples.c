/* test_examples.c — the examples learn what they claim. Each example is built with its own
 * Makefile (make -C examples/NAME build) into this build tree (RNNC_BUILD_DIR/examples/NAME,
 * with the sanitizers when this runner has them), run in its --quick mode with its fixed seed,
 * and the result it prints is held to a threshold with a wide margin, so that a change in
 * rounding (another ISA backend, another compiler) passes and a broken gradient or optimizer
 * does not. The quick-mode values measured when the thresholds were set are in the comments.
 *
 * charlm trains on /usr/share/common-licenses/GPL-3 (Debian's base-files); without it the test
 * prints "SKIPPED" and passes.
 */
#define _DEFAULT_SOURCE
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

Suite *examples_suite(void);

/* The examples are built with the runner's sanitizers, so that they link with its libnnrt.a. */
#if defined(__SANITIZE_ADDRESS__)
#define EXAMPLE_SAN "-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EXAMPLE_SAN "-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
#endif
#endif
#ifndef EXAMPLE_SAN
#define EXAMPLE_SAN ""
#endif

#define GPL3 "/usr/share/common-licenses/GPL-3"

static test_output g_out; /* large: static, not on the stack */

/* Builds examples/name (a fresh sub-make, not the caller's jobserver) into dir. */
static void build_example(const char *name, char *dir, size_t size)
{
    snprintf(dir, size, "%s/examples/%s", RNNC_BUILD_DIR, name);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "unset MAKEFLAGS MFLAGS MAKELEVEL; make -s --no-print-directory -C '%s/examples/%s' build "
             "BUILD='%s' OUT='%s' EXTRA_CFLAGS='%s'",
             RNNC_SOURCE_DIR, name, RNNC_BUILD_DIR, dir, EXAMPLE_SAN);
    int status = test_run(cmd, &g_out);
    ck_assert_msg(status == 0, "building examples/%s failed (exit %d):\n%s\n%s", name, status, cmd, g_out.text);
}

/* Runs a command that must succeed; its output is in g_out. */
static void run_ok(const char *cmd)
{
    int status = test_run(cmd, &g_out);
    ck_assert_msg(status == 0, "exit %d: %s\n%s", status, cmd, g_out.text);
}

/* The number printed right after key in g_out (the first occurrence); fails the test if absent. */
static double value_after(const char *key)
{
    const char *at = strstr(g_out.text, key);
    ck_assert_msg(at != NULL, "'%s' not found in the output:\n%s", key, g_out.text);
    char *end;
    double v = strtod(at + strlen(key), &end);
    ck_assert_msg(end != at + strlen(key), "no number after '%s' in the output:\n%s", key, g_out.text);
    return v;
}

/* sine: next-sample prediction. Measured (avx512 and scalar backends alike): validation mse
 * 0.00108 after the quick run; the app's RMS error from step 8 on 0.0099; step and sequence
 * forward agree to 0. */
START_TEST(test_sine_learns)
{
    char dir[1024], cmd[4096];
    build_example("sine", dir, sizeof dir);
    snprintf(cmd, sizeof cmd, "'%s/sine_train' --quick -o '%s/weights.safetensors'", dir, dir);
    run_ok(cmd);
    double mse = value_after("final validation mse ");
    ck_assert_msg(mse < 0.004, "sine: validation mse %g, expected below 0.004:\n%s", mse, g_out.text);

    snprintf(cmd, sizeof cmd, "'%s/sine_app' '%s/weights.safetensors' '%s/predictions.csv'", dir, dir, dir);
    run_ok(cmd);
    double rms_late = value_after("RMS error of the prediction: ");
    double gap = value_after("sequence forward agree to ");
    ck_assert_msg(rms_late < 0.04, "sine_app: RMS error from step 8 on %g, expected below 0.04:\n%s", rms_late,
                  g_out.text);
    ck_assert_msg(gap < 1e-4, "sine_app: step and sequence forward differ by %g:\n%s", gap, g_out.text);

    snprintf(cmd, sizeof cmd, "%s/predictions.csv", dir);
    char *csv = test_read_file(cmd);
    ck_assert_msg(csv != NULL, "sine_app wrote no %s", cmd);
    int lines = 0;
    for (const char *p = csv; *p; p++) lines += *p == '\n';
    ck_assert_msg(strncmp(csv, "t,input,truth,prediction,abs_error\n", 35) == 0 && lines == 129,
                  "%s: expected the header and 128 rows, found %d lines", cmd, lines);
    free(csv);
}
END_TEST

/* adding: T = 10 only in quick mode. Measured: baseline 0.170, rnn 0.048, gru 0.0010 (avx512)
 * or 0.0012 (scalar), lstm 0.0050. The gated cells must beat the baseline tenfold. */
START_TEST(test_adding_learns)
{
    char dir[1024], cmd[4096];
    build_example("adding", dir, sizeof dir);
    snprintf(cmd, sizeof cmd, "'%s/adding_train' --quick", dir);
    run_ok(cmd);
    double baseline = value_after("predict 1 ");
    double gru = value_after("\ngru(32) ");
    double lstm = value_after("\nlstm(32) ");
    ck_assert_msg(baseline > 0.12 && baseline < 0.22, "adding: baseline MSE %g, expected about 1/6:\n%s", baseline,
                  g_out.text);
    ck_assert_msg(lstm < baseline / 10, "adding: lstm test MSE %g at T=10, expected below %g:\n%s", lstm,
                  baseline / 10, g_out.text);
    ck_assert_msg(gru < baseline / 10, "adding: gru test MSE %g at T=10, expected below %g:\n%s", gru, baseline / 10,
                  g_out.text);
}
END_TEST

/* charlm: 2 epochs in quick mode. Measured: unigram entropy 3.136 nats/char, validation
 * 2.300 (avx512) or 2.281 (scalar) nats/char. */
START_TEST(test_charlm_learns)
{
    if (access(GPL3, R_OK) != 0) {
        fprintf(stderr, "SKIPPED: examples/charlm: %s is missing (Debian's base-files ships it)\n", GPL3);
        return;
    }
    char dir[1024], cmd[4096];
    build_example("charlm", dir, sizeof dir);
    snprintf(cmd, sizeof cmd, "'%s/charlm_train' --quick --text %s -o '%s/weights.safetensors'", dir, GPL3, dir);
    run_ok(cmd);
    double unigram = value_after("unigram entropy of the training text: ");
    double valid_final = value_after("), validation ");
    ck_assert_msg(valid_final < 2.6 && valid_final < unigram - 0.4,
                  "charlm: validation loss %g nats/char, expected below 2.6 and the unigram entropy %g - 0.4:\n%s",
                  valid_final, unigram, g_out.text);
    ck_assert_msg(strstr(g_out.text, "-- sample at temperature 1.0 --\nThe ") != NULL, "charlm: no samples:\n%s",
                  g_out.text);
}
END_TEST

Suite *examples_suite(void)
{
    Suite *s = suite_create("examples");
    TCase *tc = tcase_create("learn");
    tcase_set_timeout(tc, 300); /* builds plus training; sanitizer builds are slower */
    tcase_add_test(tc, test_sine_learns);
    tcase_add_test(tc, test_adding_learns);
    tcase_add_test(tc, test_charlm_learns);
    suite_add_tcase(s, tc);
    return s;
}
