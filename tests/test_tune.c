/* test_tune.c — rnnc tune: a small grid end to end (search, training, table, CSV, chosen spec),
 * the tuned spec regenerating the code that was measured, knobs that change no result, every bad
 * --vary as a usage error before anything is built, the cache (a re-run measures nothing; a change
 * of the spec or of the generator measures again) and Ctrl-C. Fast settings throughout: tiny
 * models, 3 timed runs, 20 training steps. Nothing here depends on how fast anything ran. */
#define _DEFAULT_SOURCE
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nnrt.h"
#include "test_util.h"

#define RNNC RNNC_BUILD_DIR "/rnnc"
#ifndef RNNC_SANITIZE_FLAGS
#define RNNC_SANITIZE_FLAGS ""
#endif
/* A sanitizer build of rnnc links the sanitized runtime: the drivers it builds need the flags. */
#define ENV "export CC='cc " RNNC_SANITIZE_FLAGS "' && "
#define FAST "--bench-runs 3"

static char dir[64]; /* the suite's scratch directory, made once in the runner's process */

static const char *const SPEC = "-- tiny: what the tune suite varies\n"
                                "return model {\n"
                                "  name = \"tiny\", input = 1, seq_len = 16,\n"
                                "  recurrent = { lstm(8) }, head = { dense(1) },\n"
                                "}\n";

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    fclose(fp);
}

/* x[t] = sin(0.3 t), y[t] = x[t + 1]: 200 steps of one sequence, [T][1][1]. */
static void write_data(void)
{
    float x[200], y[200];
    for (int t = 0; t < 200; t++) {
        x[t] = (float)sin(0.3 * t);
        y[t] = (float)sin(0.3 * (t + 1));
    }
    char path[128];
    nnrt_array a = {.dtype = NNRT_F32, .ndim = 3, .shape = {200, 1, 1}, .count = 200, .data = x};
    snprintf(path, sizeof path, "%s/x.npy", dir);
    ck_assert_int_eq(nnrt_npy_write(path, &a), NNRT_OK);
    a.data = y;
    snprintf(path, sizeof path, "%s/y.npy", dir);
    ck_assert_int_eq(nnrt_npy_write(path, &a), NNRT_OK);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/rnnc_tune_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/tiny.lua", dir);
    write_text(path, SPEC);
    write_data();
}

static void teardown(void)
{
    char command[128];
    snprintf(command, sizeof command, "rm -rf %s", dir);
    if (system(command) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

/* Runs rnnc tune (rnnc: the binary) on dir/tiny.lua with args, results in dir/out. */
static int tune(const char *rnnc, const char *args, test_output *out)
{
    char command[2048];
    snprintf(command, sizeof command, ENV "%s tune %s/tiny.lua -o %s/out " FAST " %s", rnnc, dir, dir, args);
    return test_run(command, out);
}

/* The count before " measured," in tune's summary line, or -1. */
static int measured(const char *text)
{
    const char *p = strstr(text, " measured, ");
    if (!p) return -1;
    while (p > text && p[-1] >= '0' && p[-1] <= '9') p--;
    return atoi(p);
}

static int count(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)); p += strlen(what)) n++;
    return n;
}

/* The grid: two hidden sizes, with data, every variant within the budget; must exit 0. */
static void tune_grid(test_output *out)
{
    char args[512];
    snprintf(args, sizeof args,
             "--vary recurrent.1.size=4,8 --data %s/x.npy --target %s/y.npy --steps 20 --budget-us 1e9", dir, dir);
    int code = tune(RNNC, args, out);
    ck_assert_msg(code == 0, "exit %d:\n%s", code, test_tail(out->text, 3000));
}

START_TEST(grid_end_to_end)
{
    test_output out;
    tune_grid(&out);
    /* Both variants measured with the defaults and at least one other candidate, and trained. */
    ck_assert_msg(count(out.text, "measured ") >= 4, "expected a search:\n%s", test_tail(out.text, 3000));
    ck_assert_int_eq(count(out.text, "trained  20 steps"), 2);
    const char *expected[] = {"isa and knobs", "recurrent.1.size=4", "recurrent.1.size=8", "pareto", "in-budget",
                              "CHOSEN", "validation loss", "results.csv", "wrote "};
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        ck_assert_msg(strstr(out.text, expected[i]), "expected '%s' in:\n%s", expected[i], test_tail(out.text, 3000));
    char path[256];
    snprintf(path, sizeof path, "%s/out/results.csv", dir);
    char *csv = test_read_file(path);
    ck_assert_ptr_nonnull(csv);
    ck_assert_int_eq(count(csv, "\n"), 3); /* header and two variants */
    ck_assert_msg(strstr(csv, "index,variant,params,weight_bytes,cache,flops_per_step,isa,knobs,step_us"), "%s", csv);
    ck_assert_int_eq(count(csv, ",yes,/"), 1); /* one chosen, with its build directory */
    free(csv);
    if (system("command -v gnuplot >/dev/null 2>&1") == 0) {
        snprintf(path, sizeof path, "%s/out/tune.png", dir);
        ck_assert_msg(access(path, F_OK) == 0, "no chart:\n%s", test_tail(out.text, 2000));
    }
    snprintf(path, sizeof path, "%s/tiny.tuned.lua", dir);
    char *tuned = test_read_file(path);
    ck_assert_ptr_nonnull(tuned);
    ck_assert_msg(strstr(tuned, "tuning = {") && strstr(tuned, "recurrent = { rb = "), "%s", tuned);
    free(tuned);
}
END_TEST

/* The same command again measures nothing and trains nothing; the spec it writes generates, in
 * the directory the winner was built in, exactly the files that were measured. */
START_TEST(rerun_is_cached_and_tuned_spec_regenerates)
{
    test_output out;
    tune_grid(&out);
    ck_assert_msg(measured(out.text) == 0 && !strstr(out.text, "trained "), "expected all cached:\n%s",
                  test_tail(out.text, 3000));
    const char *built = strstr(out.text, "(built in ");
    ck_assert_msg(built != NULL, "%s", test_tail(out.text, 2000));
    char build_dir[256];
    ck_assert_int_eq(sscanf(built, "(built in %255[^)])", build_dir), 1);
    const char *files[] = {"tiny.c", "tiny.h", "tiny_main.c"};
    char *before[3], path[512], command[1024];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", build_dir, files[i]);
        before[i] = test_read_file(path);
        ck_assert_msg(before[i] != NULL, "%s", path);
    }
    /* The same CC as tune's: the header records the compile command. */
    snprintf(command, sizeof command, ENV "%s generate %s/tiny.tuned.lua -o %s", RNNC, dir, build_dir);
    ck_assert_msg(test_run(command, &out) == 0, "%s", test_tail(out.text, 2000));
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", build_dir, files[i]);
        char *after = test_read_file(path);
        ck_assert_msg(after && strcmp(before[i], after) == 0, "%s differs from the measured build", files[i]);
        free(after);
        free(before[i]);
    }
}
END_TEST

/* Knobs change the code, not the numbers: a spec with tuning and the same spec without give
 * bit-identical outputs (each output still sums its inputs in order). */
START_TEST(knobs_change_no_result)
{
    char command[4096];
    snprintf(command, sizeof command,
             ENV "cd %s && sed '/tuning = {/,/^  },/d' %s/tests/specs/good/tuned.lua > untuned.lua && "
                 "%s build %s/tests/specs/good/tuned.lua -o k/tuned --isa scalar >/dev/null && "
                 "%s build untuned.lua -o k/untuned --isa scalar >/dev/null && "
                 "! cmp -s k/tuned/tuned.c k/untuned/tuned.c && "
                 "k/untuned/tuned init --seed 5 -o k/w.safetensors && "
                 "k/tuned/tuned train -w k/w.safetensors -i k/x.npy -t k/y.npy --steps 3 -o k/w1.safetensors && "
                 "k/untuned/tuned train -w k/w.safetensors -i k/x.npy -t k/y.npy --steps 3 -o k/w2.safetensors && "
                 "cmp k/w1.safetensors k/w2.safetensors",
             dir, RNNC_SOURCE_DIR, RNNC, RNNC_SOURCE_DIR, RNNC);
    float x[8 * 2 * 3], y[8 * 2 * 2];
    for (int i = 0; i < 8 * 2 * 3; i++) x[i] = (float)sin(0.7 * i);
    for (int i = 0; i < 8 * 2 * 2; i++) y[i] = (float)cos(0.4 * i);
    char path[256];
    snprintf(path, sizeof path, "%s/k", dir);
    mkdir(path, 0777);
    nnrt_array a = {.dtype = NNRT_F32, .ndim = 3, .shape = {8, 2, 3}, .count = 48, .data = x};
    snprintf(path, sizeof path, "%s/k/x.npy", dir);
    ck_assert_int_eq(nnrt_npy_write(path, &a), NNRT_OK);
    a = (nnrt_array){.dtype = NNRT_F32, .ndim = 3, .shape = {8, 2, 2}, .count = 32, .data = y};
    snprintf(path, sizeof path, "%s/k/y.npy", dir);
    ck_assert_int_eq(nnrt_npy_write(path, &a), NNRT_OK);
    test_output out;
    int code = test_run(command, &out);
    ck_assert_msg(code == 0, "exit %d:\n%s", code, test_tail(out.text, 3000));
}
END_TEST

/* Every problem with --vary (and with tune's other options) is a usage error, exit 2, reported
 * before anything is built: the output directory is never made. */
START_TEST(bad_vary_is_a_usage_error)
{
    struct {
        const char *args, *message;
    } cases[] = {
        {"--vary recurrent.2.size=4", "--vary recurrent.2.size: the spec has 1 recurrent layer, so there is no recurrent 2"},
        {"--vary recurent.1.size=4", "unknown field 'recurent.1.size' (did you mean 'recurrent.N.size'?)"},
        {"--vary recurrent.1.size=-4,8", "--vary recurrent.1.size=-4: layer 1 (lstm): size must be a positive integer, got -4"},
        {"--vary recurrent.1.size=8,abc", "--vary recurrent.1.size=abc: layer 1 (lstm): size must be a positive integer"},
        {"--vary recurrent.1.cell=gruu", "unknown cell \"gruu\"; expected one of: rnn, gru, lstm (did you mean \"gru\"?)"},
        {"--vary recurrent.1.activation=relu", "recurrent layer 1 is lstm: only rnn layers take an activation"},
        {"--vary head.1.activation=softmax", "--vary head.1.activation=softmax: head layer 1 (dense): activation: unknown value"},
        {"--vary math=fast,precise", "--vary math=precise: math: unknown value \"precise\""},
        {"--vary name=x", "--vary name: unknown field 'name'"},
        {"--vary seq_len", "--vary seq_len: expected FIELD=V1,V2,..."},
        {"--vary math=fast,fast", "fast is listed twice"},
        {"--vary math=fast --vary math=accurate", "--vary math is given twice"},
        {"--vary loss=cross_entropy", "--vary loss=cross_entropy: loss cross_entropy needs at least 2 outputs"},
        {"--vary head.1.size=1,3 --vary loss=mse,cross_entropy",
         "--vary: the variant head.1.size=1 loss=cross_entropy: loss cross_entropy needs at least 2 outputs"},
        {"--metric latency", "--metric: unknown metric 'latency'"},
        {"--steps 5", "--steps sets the training of --data"},
        {"--isa multi", "--isa multi: tune measures one ISA at a time"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char command[1024];
        snprintf(command, sizeof command, "%s tune %s/tiny.lua -o %s/never %s", RNNC, dir, dir, cases[i].args);
        test_output out;
        int code = test_run(command, &out);
        ck_assert_msg(code == 2, "%s: expected exit 2, got %d:\n%s", cases[i].args, code, test_tail(out.text, 2000));
        ck_assert_msg(strstr(out.text, cases[i].message), "%s: expected '%s' in:\n%s", cases[i].args, cases[i].message,
                      out.text);
        snprintf(command, sizeof command, "%s/never", dir);
        ck_assert_msg(access(command, F_OK) != 0, "%s: the output directory was made", cases[i].args);
    }
    /* A file that does not fit is the user's input: exit 1, naming it. */
    char command[1024];
    snprintf(command, sizeof command, "%s tune %s/tiny.lua -o %s/never --vary input=2 --data %s/x.npy --target %s/y.npy",
             RNNC, dir, dir, dir, dir);
    test_output out;
    ck_assert_int_eq(test_run(command, &out), 1);
    ck_assert_msg(strstr(out.text, "x.npy: shape [200, 1, 1] does not fit the variant input=2: expected [T, 1, 2]"),
                  "%s", out.text);
}
END_TEST

/* Measurements are cached per spec and generator: changing either measures again. */
START_TEST(cache_follows_spec_and_generator)
{
    test_output out;
    int code = tune(RNNC, "--no-search", &out);
    ck_assert_msg(code == 0 && measured(out.text) == 1, "exit %d:\n%s", code, test_tail(out.text, 2000));
    ck_assert_int_eq(tune(RNNC, "--no-search", &out), 0);
    ck_assert_msg(measured(out.text) == 0, "%s", test_tail(out.text, 2000));
    /* The spec changes (a wider head layer): measured again. */
    char path[256], *text = strdup(SPEC);
    *strstr(text, "dense(1)") = '\0';
    char changed[512];
    snprintf(changed, sizeof changed, "%sdense(1, \"tanh\") },\n}\n", text);
    free(text);
    snprintf(path, sizeof path, "%s/tiny.lua", dir);
    write_text(path, changed);
    code = tune(RNNC, "--no-search", &out);
    write_text(path, SPEC);
    ck_assert_msg(code == 0 && measured(out.text) == 1, "exit %d:\n%s", code, test_tail(out.text, 2000));
    /* The generator changes (one comment in a module): an rnnc built from the changed sources
     * measures again; the original still finds its results. */
    char command[4096];
    snprintf(command, sizeof command,
             "cd %s && mkdir -p gen/build && cp -r %s/generator %s/templates gen/ && ln -sf %s/runtime gen/runtime && "
             "ln -sf %s/libnnrt.a gen/build/libnnrt.a && echo '-- changed' >> gen/generator/tune.lua && cd gen && "
             "%s/embed build/embedded.c generator/*.lua generator/backend/*.lua templates/* && "
             "cc -std=c11 -O1 $(pkg-config --cflags lua5.4) -Igenerator generator/rnnc.c build/embedded.c "
             "$(pkg-config --libs lua5.4) -o build/rnnc",
             dir, RNNC_SOURCE_DIR, RNNC_SOURCE_DIR, RNNC_SOURCE_DIR, RNNC_BUILD_DIR, RNNC_BUILD_DIR);
    code = test_run(command, &out);
    ck_assert_msg(code == 0, "building the changed rnnc: exit %d:\n%s", code, test_tail(out.text, 2000));
    char changed_rnnc[128];
    snprintf(changed_rnnc, sizeof changed_rnnc, "%s/gen/build/rnnc", dir);
    code = tune(changed_rnnc, "--no-search", &out);
    ck_assert_msg(code == 0 && measured(out.text) == 1, "exit %d:\n%s", code, test_tail(out.text, 2000));
    ck_assert_int_eq(tune(RNNC, "--no-search", &out), 0);
    ck_assert_msg(measured(out.text) == 0, "%s", test_tail(out.text, 2000));
}
END_TEST

/* Ctrl-C once the first result is in: exit 130, the children stopped, no spec written, what was
 * measured cached for the next run. The signal follows an event of the output, not a clock. */
START_TEST(interrupt_keeps_what_was_measured)
{
    char command[1024];
    snprintf(command, sizeof command,
             ENV "exec %s tune %s/tiny.lua -o %s/int " FAST " --vary recurrent.1.size=3,5,7,9 2>&1", RNNC, dir, dir);
    char spec_out[256];
    snprintf(spec_out, sizeof spec_out, "%s/tiny.tuned.lua", dir);
    unlink(spec_out); /* an earlier test's */
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *fp = fdopen(fds[0], "r");
    char line[1024], text[16384] = "";
    int signalled = 0;
    while (fgets(line, sizeof line, fp)) {
        strncat(text, line, sizeof text - strlen(text) - 1);
        if (!signalled && strstr(line, ": measured ")) {
            kill(pid, SIGINT);
            signalled = 1;
        }
    }
    fclose(fp);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(signalled, "never measured:\n%s", test_tail(text, 2000));
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 130, "status %d:\n%s", status, test_tail(text, 2000));
    ck_assert_msg(strstr(text, "interrupted: no spec written"), "%s", test_tail(text, 2000));
    ck_assert_msg(access(spec_out, F_OK) != 0, "an interrupted run wrote %s", spec_out);
    snprintf(command, sizeof command, ENV "%s tune %s/tiny.lua -o %s/int " FAST " --vary recurrent.1.size=3 --no-search",
             RNNC, dir, dir);
    test_output out;
    ck_assert_int_eq(test_run(command, &out), 0);
    ck_assert_msg(strstr(out.text, "recurrent.1.size=3: cached"), "%s", test_tail(out.text, 2000));
}
END_TEST

Suite *tune_suite(void)
{
    Suite *s = suite_create("tune");
    TCase *tc = tcase_create("tune");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, bad_vary_is_a_usage_error);
    tcase_add_test(tc, grid_end_to_end);
    tcase_add_test(tc, rerun_is_cached_and_tuned_spec_regenerates);
    tcase_add_test(tc, knobs_change_no_result);
    tcase_add_test(tc, cache_follows_spec_and_generator);
    tcase_add_test(tc, interrupt_keeps_what_was_measured);
    tcase_set_timeout(tc, 600); /* a safety net for a hung build, not a measure of speed */
    suite_add_tcase(s, tc);
    return s;
}
