/* test_spec.c — the rnnc command: every bad spec in tests/specs/bad gives its expected message
 * and exit 1, sandbox escapes fail and touch nothing, good specs pass, the CLI's usage errors,
 * info's report, deterministic output, and an installed rnnc that works from anywhere. */
#define _DEFAULT_SOURCE
#include <check.h>
#include <dirent.h>
#include <math.h>
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
#define BAD_DIR RNNC_SOURCE_DIR "/tests/specs/bad"

static char bad_specs[128][256];
static int bad_spec_count;

static int compare_names(const void *a, const void *b) { return strcmp(a, b); }

static void list_bad_specs(void)
{
    DIR *dir = opendir(BAD_DIR);
    if (!dir) return;
    struct dirent *e;
    while ((e = readdir(dir)) && bad_spec_count < 128) {
        size_t n = strlen(e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".lua") == 0)
            snprintf(bad_specs[bad_spec_count++], sizeof bad_specs[0], "%s", e->d_name);
    }
    closedir(dir);
    qsort(bad_specs, (size_t)bad_spec_count, sizeof bad_specs[0], compare_names);
}

/* Each file's leading "-- expect: TEXT" lines must all appear in rnnc check's output. */
START_TEST(bad_spec_is_rejected)
{
    char path[512], command[1024];
    snprintf(path, sizeof path, "%s/%s", BAD_DIR, bad_specs[_i]);
    snprintf(command, sizeof command, "%s check %s", RNNC, path);
    test_output out;
    int code = test_run(command, &out);
    ck_assert_msg(code == 1, "%s: expected exit 1, got %d; output:\n%s", bad_specs[_i], code, test_tail(out.text, 2000));
    FILE *fp = fopen(path, "r");
    ck_assert_ptr_nonnull(fp);
    char line[512];
    int expectations = 0;
    while (fgets(line, sizeof line, fp) && strncmp(line, "-- expect: ", 11) == 0) {
        line[strcspn(line, "\n")] = '\0';
        expectations++;
        ck_assert_msg(strstr(out.text, line + 11) != NULL, "%s: expected\n  %s\nin the output:\n%s",
                      bad_specs[_i], line + 11, out.text);
    }
    fclose(fp);
    ck_assert_msg(expectations > 0, "%s: no '-- expect: ' line", bad_specs[_i]);
    /* Messages name the spec file. */
    ck_assert_msg(strstr(out.text, path) != NULL, "%s: message does not name the file:\n%s", bad_specs[_i], test_tail(out.text, 2000));
}
END_TEST

/* Lua shortens long chunk names ("...dir/x.lua:4:"); the message must still carry the whole path
 * and the line, wherever the checkout lives. */
START_TEST(long_path_keeps_file_and_line)
{
    char dir[] = "/tmp/rnnc_a_directory_name_long_enough_to_pass_lua_idsize_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char command[1024];
    snprintf(command, sizeof command, "cp %s/escape_string_metatable.lua %s/ && %s check %s/escape_string_metatable.lua",
             BAD_DIR, dir, RNNC, dir);
    test_output out;
    ck_assert_int_eq(test_run(command, &out), 1);
    char expected[512];
    snprintf(expected, sizeof expected, "%s/escape_string_metatable.lua:4: error: attempt to call a nil value", dir);
    ck_assert_msg(strstr(out.text, expected) != NULL, "expected\n  %s\nin:\n%s", expected, out.text);
    snprintf(command, sizeof command, "rm -rf %s", dir);
    ck_assert_int_eq(system(command), 0);
}
END_TEST

START_TEST(sandbox_escape_touches_nothing)
{
    const char *victim = "/tmp/rnnc_sandbox_escape";
    unlink(victim);
    test_output out;
    ck_assert_int_eq(test_run(RNNC " check " BAD_DIR "/escape_os.lua", &out), 1);
    ck_assert_int_eq(test_run(RNNC " generate " BAD_DIR "/escape_io.lua -o /tmp/rnnc_escape_dir", &out), 1);
    ck_assert_msg(access(victim, F_OK) != 0, "the sandboxed spec created %s", victim);
    ck_assert_msg(access("/tmp/rnnc_escape_dir", F_OK) != 0, "a rejected spec created its output directory");
}
END_TEST

START_TEST(good_specs_pass)
{
    const char *specs[] = {RNNC_SOURCE_DIR "/examples/sine/sine.lua", RNNC_SOURCE_DIR "/tests/specs/good/helpers.lua",
                           RNNC_SOURCE_DIR "/tests/specs/good/defaults.lua", RNNC_SOURCE_DIR "/tests/specs/good/tuned.lua"};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        char command[1024];
        snprintf(command, sizeof command, "%s check %s", RNNC, specs[i]);
        test_output out;
        int code = test_run(command, &out);
        ck_assert_msg(code == 0, "%s: exit %d:\n%s", specs[i], code, test_tail(out.text, 2000));
        ck_assert_msg(strstr(out.text, ": ok (model ") != NULL, "%s:\n%s", specs[i], test_tail(out.text, 2000));
    }
}
END_TEST

START_TEST(usage_errors_exit_2)
{
    struct {
        const char *args, *message;
    } cases[] = {
        {"", "usage: rnnc COMMAND SPEC"},
        {"frobnicate x.lua", "unknown command 'frobnicate'"},
        {"generate", "generate needs a SPEC file"},
        {"generate " RNNC_SOURCE_DIR "/examples/sine/sine.lua --isa vax", "unknown ISA 'vax'"},
        {"check " RNNC_SOURCE_DIR "/examples/sine/sine.lua --frob", "unknown option '--frob'"},
        {"info " RNNC_SOURCE_DIR "/examples/sine/sine.lua --dump=nothing", "unknown pass 'nothing'"},
        {"generate " RNNC_SOURCE_DIR "/examples/sine/sine.lua -o", "-o needs a value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char command[1024];
        snprintf(command, sizeof command, "%s %s", RNNC, cases[i].args);
        test_output out;
        int code = test_run(command, &out);
        ck_assert_msg(code == 2, "rnnc %s: expected exit 2, got %d:\n%s", cases[i].args, code, test_tail(out.text, 2000));
        ck_assert_msg(strstr(out.text, cases[i].message), "rnnc %s: expected '%s' in:\n%s", cases[i].args,
                      cases[i].message, out.text);
    }
}
END_TEST

START_TEST(missing_spec_exit_1)
{
    test_output out;
    ck_assert_int_eq(test_run(RNNC " check /nonexistent/spec.lua", &out), 1);
    ck_assert_ptr_nonnull(strstr(out.text, "cannot read spec: /nonexistent/spec.lua"));
}
END_TEST

START_TEST(help_and_version)
{
    test_output out;
    ck_assert_int_eq(test_run(RNNC " --help", &out), 0);
    ck_assert_ptr_nonnull(strstr(out.text, "build    SPEC"));
    ck_assert_int_eq(test_run(RNNC " --version", &out), 0);
    ck_assert_ptr_nonnull(strstr(out.text, "rnnc 0."));
}
END_TEST

START_TEST(info_reports_the_breakdown)
{
    test_output out;
    ck_assert_int_eq(test_run(RNNC " info " RNNC_SOURCE_DIR "/examples/sine/sine.lua --isa scalar", &out), 0);
    const char *expected[] = {"l0 lstm", "1 -> 32", "4480", "l1 lstm", "8448", "head0 tanh", "seq FLOP/t",
                              "batch FLOP/t", "parameters        13473", "critical path     128 layer-steps",
                              "65 with a layer wavefront", "code size"};
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        ck_assert_msg(strstr(out.text, expected[i]), "expected '%s' in:\n%s", expected[i], test_tail(out.text, 2000));
}
END_TEST

START_TEST(dump_passes)
{
    const char *passes[] = {"spec", "plan", "schedule", "emit"};
    const char *marks[] = {"recurrent = {", "num_params = 13473", "op = \"recurrence\"", "sine_forward("};
    for (int i = 0; i < 4; i++) {
        char command[1024];
        snprintf(command, sizeof command, "%s generate %s/examples/sine/sine.lua --isa scalar --dump=%s", RNNC,
                 RNNC_SOURCE_DIR, passes[i]);
        test_output out;
        ck_assert_int_eq(test_run(command, &out), 0);
        ck_assert_msg(strstr(out.text, marks[i]), "--dump=%s: expected '%s'", passes[i], marks[i]);
    }
}
END_TEST

/* Generating twice gives byte-identical files: no timestamps, stable order. */
START_TEST(output_is_deterministic)
{
    char dir[] = "/tmp/rnnc_det_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char command[1024], first[4096], second[4096];
    /* The same directory both times: the header records the compile command, which names it. */
    snprintf(command, sizeof command, "%s generate %s/examples/sine/sine.lua --isa scalar -o %s/a && cat %s/a/sine.c "
             "%s/a/sine.h | cksum > %s/1 && %s generate "
             "%s/examples/sine/sine.lua --isa scalar -o %s/a && cat %s/a/sine.c %s/a/sine.h | cksum > %s/2", RNNC,
             RNNC_SOURCE_DIR, dir, dir, dir, dir, RNNC, RNNC_SOURCE_DIR, dir, dir, dir, dir);
    test_output out;
    ck_assert_msg(test_run(command, &out) == 0, "%s", test_tail(out.text, 2000));
    snprintf(first, sizeof first, "%s/1", dir);
    snprintf(second, sizeof second, "%s/2", dir);
    char *a = test_read_file(first), *b = test_read_file(second);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    snprintf(command, sizeof command, "rm -rf %s", dir);
    ck_assert_int_eq(system(command), 0);
}
END_TEST

/* make install, then an installed rnnc builds and runs a model from another directory. */
START_TEST(installed_rnnc_works_anywhere)
{
    char dir[] = "/tmp/rnnc_install_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char command[2048];
    snprintf(command, sizeof command,
             "make -s -C %s install PREFIX=%s/prefix >/dev/null && cd / && %s/prefix/bin/rnnc build "
             "%s/examples/sine/sine.lua -o %s/model >/dev/null && %s/model/sine init -o %s/w.safetensors",
             RNNC_SOURCE_DIR, dir, dir, RNNC_SOURCE_DIR, dir, dir, dir);
    test_output out;
    int code = test_run(command, &out);
    ck_assert_msg(code == 0, "exit %d:\n%s", code, test_tail(out.text, 2000));
    snprintf(command, sizeof command, "%s/w.safetensors", dir);
    ck_assert_int_eq(access(command, F_OK), 0);
    snprintf(command, sizeof command, "rm -rf %s", dir);
    ck_assert_int_eq(system(command), 0);
}
END_TEST

/* --isa multi: one driver with every x86 variant gives, on whatever this CPU runs, what the
 * scalar build gives, within the cross-backend tolerance of tests/test_isa.c. */
START_TEST(multi_build_agrees_with_scalar)
{
    char dir[] = "/tmp/rnnc_multi_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char command[4096], path[600];
    const int T = 50;
    float x[50];
    for (int t = 0; t < T; t++) x[t] = (float)(t % 9) / 9.0f - 0.4f;
    nnrt_array a = {.dtype = NNRT_F32, .ndim = 3, .shape = {T, 1, 1}, .count = (size_t)T, .data = x};
    snprintf(path, sizeof path, "%s/x.npy", dir);
    ck_assert_int_eq(nnrt_npy_write(path, &a), NNRT_OK);
    /* A sanitizer build of rnnc links the sanitized runtime: its drivers need the same flags. */
    snprintf(command, sizeof command,
             "export CC='cc " RNNC_SANITIZE_FLAGS "' && "
             "%s build %s/examples/sine/sine.lua --isa multi -o %s/multi >/dev/null && "
             "%s build %s/examples/sine/sine.lua --isa scalar -o %s/scalar >/dev/null && "
             "%s/scalar/sine init --seed 3 -o %s/w.safetensors && "
             "%s/multi/sine forward -w %s/w.safetensors -i %s/x.npy -o %s/y_multi.npy && "
             "%s/scalar/sine forward -w %s/w.safetensors -i %s/x.npy -o %s/y_scalar.npy",
             RNNC, RNNC_SOURCE_DIR, dir, RNNC, RNNC_SOURCE_DIR, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir);
    test_output out;
    int code = test_run(command, &out);
    ck_assert_msg(code == 0, "exit %d:\n%s", code, test_tail(out.text, 2000));
    nnrt_array ym, ys;
    snprintf(path, sizeof path, "%s/y_multi.npy", dir);
    ck_assert_int_eq(nnrt_npy_read(path, &ym), NNRT_OK);
    snprintf(path, sizeof path, "%s/y_scalar.npy", dir);
    ck_assert_int_eq(nnrt_npy_read(path, &ys), NNRT_OK);
    ck_assert_uint_eq(ym.count, ys.count);
    const float *m = ym.data, *sc = ys.data;
    for (size_t i = 0; i < ym.count; i++)
        ck_assert_msg(fabsf(m[i] - sc[i]) <= 1e-5f + 1e-4f * fabsf(sc[i]), "y[%zu]: multi %g, scalar %g", i, m[i], sc[i]);
    nnrt_array_free(&ym);
    nnrt_array_free(&ys);
    snprintf(command, sizeof command, "rm -rf %s", dir);
    ck_assert_int_eq(system(command), 0);
}
END_TEST

Suite *spec_suite(void)
{
    Suite *s = suite_create("spec");
    list_bad_specs();
    TCase *bad = tcase_create("bad specs");
    tcase_add_loop_test(bad, bad_spec_is_rejected, 0, bad_spec_count);
    tcase_set_timeout(bad, 60);
    suite_add_tcase(s, bad);
    TCase *sandbox = tcase_create("sandbox");
    tcase_add_test(sandbox, sandbox_escape_touches_nothing);
    tcase_add_test(sandbox, long_path_keeps_file_and_line);
    suite_add_tcase(s, sandbox);
    TCase *cli = tcase_create("cli");
    tcase_add_test(cli, good_specs_pass);
    tcase_add_test(cli, usage_errors_exit_2);
    tcase_add_test(cli, missing_spec_exit_1);
    tcase_add_test(cli, help_and_version);
    tcase_add_test(cli, info_reports_the_breakdown);
    tcase_add_test(cli, dump_passes);
    tcase_add_test(cli, output_is_deterministic);
    tcase_set_timeout(cli, 60);
    suite_add_tcase(s, cli);
    TCase *multi = tcase_create("multi");
    tcase_add_test(multi, multi_build_agrees_with_scalar);
    tcase_set_timeout(multi, 300);
    suite_add_tcase(s, multi);
    TCase *install = tcase_create("install");
    tcase_add_test(install, installed_rnnc_works_anywhere);
    tcase_set_timeout(install, 300);
    suite_add_tcase(s, install);
    return s;
}
