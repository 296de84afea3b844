/* test_hostile.c — rnnc check against what an attacker (or an unlucky user) feeds it: spec files
 * that are not regular files or are huge, paths and specs full of control characters, model names
 * whose generated files would clash with the system's, the sandbox's own versions of Lua's
 * library, and a bounded fuzz of mutated specs. Every run must end (a generous timeout turns a
 * hang into a failure, never a pass/fail on speed) with exit 0, or exit 1 and a FILE:LINE message
 * without a traceback, and print nothing that drives the terminal. */
#define _DEFAULT_SOURCE
#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

#define RNNC RNNC_BUILD_DIR "/rnnc"
#define TIMEOUT "timeout -k 5 30 " /* a hang fails the test; 30 s is far beyond any limit of rnnc */

/* The first byte of text that a terminal could act on (control characters but the line break), or
 * NULL. rnnc prints UTF-8 unchanged, so bytes >= 0x80 are fine here. */
static const char *control_byte(const char *text)
{
    for (const char *p = text; *p; p++)
        if (((unsigned char)*p < 0x20 && *p != '\n') || *p == 0x7f) return p;
    return NULL;
}

static void assert_printable(const char *what, const char *text)
{
    const char *p = control_byte(text);
    ck_assert_msg(p == NULL, "%s: output holds control byte 0x%02x at offset %td:\n%s", what, (unsigned char)*p,
                  p - text, test_tail(text, 2000));
}

/* Runs rnnc check on path (quoted for the shell) under the timeout; returns the exit status. */
static int check_spec(const char *path, test_output *out)
{
    char command[4096];
    snprintf(command, sizeof command, TIMEOUT "%s check '%s'", RNNC, path);
    return test_run(command, out);
}

static void make_temp_dir(char *dir)
{
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(const char *dir)
{
    char command[1024];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(command), 0);
}

static void write_text(const char *path, const char *text, size_t size)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(text, 1, size, fp), size);
    ck_assert_int_eq(fclose(fp), 0);
}

/* A spec file is a regular file of at most 1 MiB: a device, a FIFO, a directory or a huge file
 * is refused at once (a FIFO without anyone writing to it must not block). */
START_TEST(spec_file_is_bounded)
{
    char dir[] = "/tmp/rnnc_files_XXXXXX";
    make_temp_dir(dir);
    char fifo[600], big[600];
    snprintf(fifo, sizeof fifo, "%s/fifo.lua", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    snprintf(big, sizeof big, "%s/big.lua", dir);
    size_t size = (1u << 20) + 1;
    char *text = malloc(size);
    ck_assert_ptr_nonnull(text);
    memset(text, ' ', size);
    write_text(big, text, size);
    free(text);
    struct {
        const char *path, *message;
    } cases[] = {
        {"/dev/zero", "/dev/zero: not a regular file"},
        {"/dev/null", "/dev/null: not a regular file"},
        {fifo, "fifo.lua: not a regular file"},
        {dir, ": not a regular file"},
        {big, "big.lua: larger than 1048576 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        test_output out;
        int code = check_spec(cases[i].path, &out);
        ck_assert_msg(code == 1, "%s: expected exit 1, got %d:\n%s", cases[i].path, code, test_tail(out.text, 2000));
        ck_assert_msg(strstr(out.text, "cannot read spec: ") && strstr(out.text, cases[i].message),
                      "%s: expected '%s' in:\n%s", cases[i].path, cases[i].message, test_tail(out.text, 2000));
    }
    remove_dir(dir);
}
END_TEST

/* A path with an escape sequence, a carriage return and a line break reaches the terminal
 * without them, in the error and in the success message alike. */
START_TEST(paths_are_printed_clean)
{
    char dir[] = "/tmp/rnnc_ctl_XXXXXX";
    make_temp_dir(dir);
    char sub[600], bad[700], command[2048];
    snprintf(sub, sizeof sub, "%s/x\033[2J\r\n\033]0;title\007", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    snprintf(bad, sizeof bad, "%s/bad.lua", sub);
    const char *spec = "return model { name = \"m\", input = 3, seq_len = 8, recurrent = { lstm(0) } }\n";
    write_text(bad, spec, strlen(spec));
    /* The shell sees the path through a glob: it holds bytes no quoting here could carry. */
    snprintf(command, sizeof command, TIMEOUT "%s check %s/x*/bad.lua", RNNC, dir);
    test_output out;
    ck_assert_int_eq(test_run(command, &out), 1);
    ck_assert_msg(strstr(out.text, ":1: error: layer 1 (lstm): size must be a positive integer, got 0"), "%s", out.text);
    assert_printable("bad spec under a hostile directory", out.text);
    char good[700];
    snprintf(good, sizeof good, "%s/good.lua", sub);
    const char *fine = "return model { name = \"m\", input = 3, seq_len = 8, recurrent = { lstm(2) } }\n";
    write_text(good, fine, strlen(fine));
    snprintf(command, sizeof command, TIMEOUT "%s check %s/x*/good.lua", RNNC, dir);
    ck_assert_int_eq(test_run(command, &out), 0);
    ck_assert_msg(strstr(out.text, "good.lua: ok (model m)"), "%s", out.text);
    assert_printable("good spec under a hostile directory", out.text);
    snprintf(command, sizeof command, TIMEOUT "%s check %s/x*/nothing.lua", RNNC, dir);
    ck_assert_int_eq(test_run(command, &out), 1);
    ck_assert_msg(strstr(out.text, "cannot read spec: "), "%s", out.text);
    assert_printable("missing spec under a hostile directory", out.text);
    remove_dir(dir);
}
END_TEST

/* Every spec in tests/specs/bad prints nothing a terminal could act on (one of them holds ESC,
 * CR and a line break in a field name). */
START_TEST(bad_spec_messages_are_printable)
{
    DIR *d = opendir(RNNC_SOURCE_DIR "/tests/specs/bad");
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int seen = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".lua") != 0) continue;
        if (strncmp(e->d_name, "limit_", 6) == 0) continue; /* slow, and their messages are fixed text */
        char path[1024];
        snprintf(path, sizeof path, "%s/tests/specs/bad/%s", RNNC_SOURCE_DIR, e->d_name);
        test_output out;
        ck_assert_int_eq(check_spec(path, &out), 1);
        assert_printable(e->d_name, out.text);
        seen++;
    }
    closedir(d);
    ck_assert_int_gt(seen, 10);
}
END_TEST

/* The sandbox's find, match, gmatch, gsub (in Lua) and its table functions give what Lua's C
 * library gives: the spec compares hundreds of calls with results computed by Lua 5.4 itself. */
START_TEST(sandbox_library_agrees_with_lua)
{
    test_output out;
    int code = check_spec(RNNC_SOURCE_DIR "/tests/specs/good/patterns.lua", &out);
    ck_assert_msg(code == 0, "exit %d:\n%s", code, test_tail(out.text, 2000));
}
END_TEST

/* Every name whose generated files would clash with a header, a macro or a Python module, as
 * tests/clashing_names.sh derives them from the sources and the compiler, is refused by rnnc
 * check with a message naming it, or builds on every backend that could clash (scalar and
 * multi compile every header the others include). A header added to a template or a backend
 * later shows up here. */
START_TEST(clashing_names_are_refused)
{
    char dir[] = "/tmp/rnnc_clash_XXXXXX";
    make_temp_dir(dir);
    char command[2048], list[700];
    snprintf(list, sizeof list, "%s/names", dir);
    snprintf(command, sizeof command, "sh %s/tests/clashing_names.sh %s %s %s/work | sort -u > %s", RNNC_SOURCE_DIR,
             RNNC, RNNC_SOURCE_DIR, dir, list);
    test_output out;
    ck_assert_msg(test_run(command, &out) == 0, "clashing_names.sh failed:\n%s", test_tail(out.text, 2000));
    FILE *fp = fopen(list, "r");
    ck_assert_ptr_nonnull(fp);
    char line[512], previous[256] = "";
    int refused = 0, built = 0;
    int saw_string = 0, saw_smmintrin = 0, saw_atomic = 0, saw_arm_neon = 0, saw_torch = 0;
    while (fgets(line, sizeof line, fp)) {
        char name[256], why[256];
        if (sscanf(line, "%255s %255s", name, why) != 2) continue;
        int valid = islower((unsigned char)name[0]) && strlen(name) <= 48;
        for (const char *p = name; *p; p++) valid = valid && (islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_');
        if (!valid || strcmp(name, previous) == 0 || strcmp(name, "zzprobe") == 0) continue; /* not a model name */
        snprintf(previous, sizeof previous, "%s", name);
        saw_string |= strcmp(name, "string") == 0;
        saw_smmintrin |= strcmp(name, "smmintrin") == 0;
        saw_atomic |= strcmp(name, "atomic") == 0;
        saw_arm_neon |= strcmp(name, "arm_neon") == 0;
        saw_torch |= strcmp(name, "torch") == 0;
        char spec[700];
        snprintf(spec, sizeof spec, "%s/%s.lua", dir, name);
        char text[512];
        int n = snprintf(text, sizeof text,
                         "return model { name = \"%s\", input = 3, seq_len = 4, recurrent = { lstm(4) }, head = { dense(2) } }\n",
                         name);
        write_text(spec, text, (size_t)n);
        int code = check_spec(spec, &out);
        char quoted[300];
        snprintf(quoted, sizeof quoted, "name \"%s\"", name);
        if (code == 1) {
            ck_assert_msg(strstr(out.text, quoted) != NULL, "%s (%s): refused without naming it:\n%s", name, why, out.text);
            refused++;
            continue;
        }
        ck_assert_msg(code == 0, "%s (%s): rnnc check exit %d:\n%s", name, why, code, test_tail(out.text, 2000));
        /* Accepted: then it must build. */
        for (int k = 0; k < 2; k++) {
            const char *isa = k == 0 ? "scalar" : "multi";
            snprintf(command, sizeof command, "cd %s && %s build %s.lua --isa %s -o %s/b_%s_%s >/dev/null", dir, RNNC, name,
                     isa, dir, name, isa);
            int status = test_run(command, &out);
            ck_assert_msg(status == 0, "%s (%s) passes rnnc check but does not build for %s:\n%s", name, why, isa,
                          test_tail(out.text, 2000));
        }
        built++;
    }
    fclose(fp);
    ck_assert_msg(saw_string && saw_smmintrin && saw_atomic && saw_arm_neon && saw_torch,
                  "the derived list misses a known clash (string %d, smmintrin %d, atomic %d, arm_neon %d, torch %d)",
                  saw_string, saw_smmintrin, saw_atomic, saw_arm_neon, saw_torch);
    ck_assert_int_gt(refused, 20);
    remove_dir(dir);
    (void)built;
}
END_TEST

/* ---- Fuzz --------------------------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static size_t pick(size_t n) { return n ? (size_t)(rng() % n) : 0; }

/* Pieces a mutation inserts: Lua syntax, the constructors, hostile values and text. */
static const char *const TOKENS[] = {
    "nil", "{", "}", "(", ")", ",", "=", "\"", "'", "[[", "]]", "--", "..", "#", ";", ".", ":",
    "[\"[%\"] = 1,", "[\"%f[\"] = 2,", "\"\\27[2J\"", "\033[31m", "\r", "\n", "\t", "\001", "\377\376", "\xe2\x80\xae",
    "0", "-1", "1e308", "-0.0", "0/0", "1/0", "math.maxinteger", "math.mininteger", "1 << 62", "2^53", "3.5",
    "lstm(", "gru(", "rnn(", "dense(", "model {", "model(", "return ", "local x = ", "function() end", "_ENV",
    "lstm(8)", "dense(2, \"relu\")", "rnn(4, \"sigmoid\")", "{ lstm(4), nil, lstm(2) }", "{ [3] = gru(2) }",
    "{ kind = \"recurrent\", constructor = {}, args = 5 }", "embedding(50, 3)", "hiden", "x.y.z", "error()",
    "error({})", "error(nil)", "setmetatable", "string.rep(\"ab\", 1 << 20)", "(\"a*\"):rep(25) .. \"b\"",
    "(\"a\"):rep(25)", "string.find(", "string.gsub(", "table.unpack({}, 1, 1e6)", "table.concat({1, {}})",
    "table.sort({3, 1, 2}, function(a, b) return true end)", "utf8.char(0x10FFFF)", "string.pack(\"i16\", 1)",
    "string.format(\"%99.99f\", 1e308)", "tuning = { layers = { { recurrent = { rb = 1 } } } },",
    "head = {},", "recurrent = {},", "name = \"string\",", "name = \"x\",", "seq_len = 0,", "batch = 1e9,",
    "for i = 1, 1e5 do end", "select(\"#\")", "tostring(nil)", "tonumber(\"0x\")",
};

static const char *const SEEDS[] = {
    "examples/sine/sine.lua", "tests/specs/good/helpers.lua", "tests/specs/good/defaults.lua",
    "tests/specs/good/tuned.lua", "tests/specs/bad/bad_multiple_errors.lua", "tests/specs/bad/bad_tuning_knobs.lua",
    "tests/specs/bad/bad_unknown_function.lua", "tests/specs/bad/bad_hole_misspelt.lua",
};

/* Appends bytes to a growing buffer, bounded. */
typedef struct {
    char data[16384];
    size_t size;
} text_buffer;

static void put(text_buffer *b, const char *p, size_t n)
{
    if (n > sizeof b->data - b->size) n = sizeof b->data - b->size;
    memcpy(b->data + b->size, p, n);
    b->size += n;
}

/* One mutation of src into dst. */
static void mutate(const text_buffer *src, text_buffer *dst, const char *other, size_t other_size)
{
    dst->size = 0;
    size_t at = pick(src->size + 1);
    switch (rng() % 6) {
    case 0: { /* replace one byte by any byte */
        put(dst, src->data, src->size);
        if (dst->size) dst->data[pick(dst->size)] = (char)(rng() & 0xff);
        break;
    }
    case 1: /* delete a span */
    {
        size_t n = pick(40) + 1;
        put(dst, src->data, at);
        if (at + n < src->size) put(dst, src->data + at + n, src->size - at - n);
        break;
    }
    case 2: /* duplicate a span */
    {
        size_t n = pick(60) + 1;
        if (at + n > src->size) n = src->size - at;
        put(dst, src->data, at + n);
        put(dst, src->data + at, src->size - at);
        break;
    }
    case 3: /* splice in a piece of another seed */
    {
        size_t from = pick(other_size), n = pick(120) + 1;
        if (from + n > other_size) n = other_size - from;
        put(dst, src->data, at);
        put(dst, other + from, n);
        put(dst, src->data + at, src->size - at);
        break;
    }
    default: /* insert a token */
    {
        const char *t = TOKENS[pick(sizeof TOKENS / sizeof TOKENS[0])];
        put(dst, src->data, at);
        put(dst, t, strlen(t));
        put(dst, src->data + at, src->size - at);
        break;
    }
    }
}

/* A bounded randomized run: RNNC_FUZZ_COUNT inputs (default 100) from seed RNNC_FUZZ_SEED (default
 * 1), each a few mutations of a seed spec, each checked as the file header says. */
START_TEST(fuzz_check_ends_cleanly)
{
    const char *count_text = getenv("RNNC_FUZZ_COUNT"), *seed_text = getenv("RNNC_FUZZ_SEED");
    long count = count_text ? strtol(count_text, NULL, 10) : 100;
    rng_state = seed_text ? strtoull(seed_text, NULL, 10) * 0x9e3779b97f4a7c15ULL + 1 : 0x2545f4914f6cdd1dULL;
    enum { NSEEDS = sizeof SEEDS / sizeof SEEDS[0] };
    static text_buffer seeds[NSEEDS];
    for (int i = 0; i < NSEEDS; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", RNNC_SOURCE_DIR, SEEDS[i]);
        char *text = test_read_file(path);
        ck_assert_msg(text != NULL, "cannot read %s", path);
        seeds[i].size = 0;
        put(&seeds[i], text, strlen(text));
        free(text);
    }
    char dir[] = "/tmp/rnnc_fuzz_XXXXXX";
    make_temp_dir(dir);
    char path[600];
    snprintf(path, sizeof path, "%s/fuzz.lua", dir);
    long ok = 0, rejected = 0;
    for (long k = 0; k < count; k++) {
        static text_buffer a, b;
        a = seeds[pick(NSEEDS)];
        int rounds = 1 + (int)pick(4);
        for (int r = 0; r < rounds; r++) {
            const text_buffer *other = &seeds[pick(NSEEDS)];
            mutate(&a, &b, other->data, other->size);
            a = b;
        }
        write_text(path, a.data, a.size);
        test_output out;
        int code = check_spec(path, &out);
        if (code != 0 && code != 1) { /* keep the input for the report */
            char kept[700];
            snprintf(kept, sizeof kept, "%s/failed_%ld.lua", dir, k);
            rename(path, kept);
            ck_abort_msg("input %ld (kept as %s): exit %d (124: a hang):\n%s", k, kept, code, test_tail(out.text, 2000));
        }
        ck_assert_msg(strstr(out.text, "traceback") == NULL && strstr(out.text, "internal error") == NULL,
                      "input %ld: internal error:\n%s", k, test_tail(out.text, 2000));
        assert_printable("fuzz", out.text);
        if (code == 1) {
            char where[700];
            snprintf(where, sizeof where, "%s:", path);
            ck_assert_msg(strstr(out.text, where) != NULL && strstr(out.text, " error") != NULL,
                          "input %ld: exit 1 without a FILE:LINE message:\n%s", k, test_tail(out.text, 2000));
            rejected++;
        } else {
            ok++;
        }
    }
    remove_dir(dir);
    ck_assert_int_eq(ok + rejected, count);
}
END_TEST

Suite *hostile_suite(void)
{
    Suite *s = suite_create("hostile");
    TCase *files = tcase_create("files");
    tcase_add_test(files, spec_file_is_bounded);
    tcase_add_test(files, paths_are_printed_clean);
    tcase_add_test(files, bad_spec_messages_are_printable);
    tcase_add_test(files, sandbox_library_agrees_with_lua);
    tcase_set_timeout(files, 300);
    suite_add_tcase(s, files);
    TCase *names = tcase_create("names");
    tcase_add_test(names, clashing_names_are_refused);
    tcase_set_timeout(names, 600);
    suite_add_tcase(s, names);
    TCase *fuzz = tcase_create("fuzz");
    tcase_add_test(fuzz, fuzz_check_ends_cleanly);
    tcase_set_timeout(fuzz, 3600); /* bounded by the count and each run's timeout */
    suite_add_tcase(s, fuzz);
    return s;
}
