/* test_runtime.c — Check suites for the runtime (runtime/nnrt_*.c).
 *
 * Suites: runtime_suite (result codes, memory, RNG, dtypes, atomic writes), safetensors_suite,
 * npy_suite, model_io_suite. Hostile files are built byte by byte inside each test, in a fresh
 * directory from mkdtemp that the fixture removes afterwards. */
#define _POSIX_C_SOURCE 200809L

#include "nnrt.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

Suite *runtime_suite(void);
Suite *safetensors_suite(void);
Suite *npy_suite(void);
Suite *model_io_suite(void);

/* ======================================= Helpers ============================================ */

/* Asserts a runtime call fails with code and a message containing text. */
#define ASSERT_FAILS(expr, code, text)                                                                  \
    do {                                                                                                \
        int rc_ = (expr);                                                                               \
        ck_assert_msg(rc_ == (code), "%s returned %d (%s), expected %s; message: %s", #expr, rc_,       \
                      nnrt_strerror(rc_), #code, nnrt_last_error());                                    \
        ck_assert_msg(strstr(nnrt_last_error(), (text)) != NULL, "message \"%s\" lacks \"%s\"",        \
                      nnrt_last_error(), (text));                                                       \
    } while (0)

#define ASSERT_OK(expr)                                                                                 \
    do {                                                                                                \
        int rc_ = (expr);                                                                               \
        ck_assert_msg(rc_ == NNRT_OK, "%s returned %d (%s): %s", #expr, rc_, nnrt_strerror(rc_),        \
                      nnrt_last_error());                                                               \
    } while (0)

static char tmp_dir[256];

static void tmp_dir_setup(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/nnrt_test.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            chmod(path, 0700);
            remove_tree(path);
        } else {
            unlink(path);
        }
    }
    closedir(d);
    rmdir(dir);
}

static void tmp_dir_teardown(void) { remove_tree(tmp_dir); }

/* "<tmp_dir>/name" in the caller's buffer. */
static const char *path_in(const char *name, char *buf) {
    snprintf(buf, 512, "%s/%s", tmp_dir, name);
    return buf;
}
#define TMP(name) path_in((name), (char[512]){0})

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL)
        n += strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(data, 1, len, fp), len);
    ck_assert_int_eq(fclose(fp), 0);
}

/* Whole file in a malloc'd buffer (NUL-terminated for convenience). */
static char *read_file(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)size, fp), (size_t)size);
    buf[size] = '\0';
    fclose(fp);
    *len = (size_t)size;
    return buf;
}

static void put_le(unsigned char *dst, uint64_t value, int bytes) {
    for (int i = 0; i < bytes; i++)
        dst[i] = (unsigned char)(value >> (8 * i));
}

/* ================================ Result codes and messages ================================= */

START_TEST(test_strerror_covers_every_code) {
    static const char *const expected[] = {"success", "out of memory", "input/output error", "malformed file",
                                           "wrong element type", "wrong shape",
                                           "missing, unexpected or duplicated tensor", "argument out of range",
                                           "non-finite number"};
    for (int code = NNRT_OK; code <= NNRT_ERR_NUMERIC; code++)
        ck_assert_str_eq(nnrt_strerror(code), expected[code]);
    ck_assert_str_eq(nnrt_strerror(-1), "unknown error");
    ck_assert_str_eq(nnrt_strerror(9999), "unknown error");
}
END_TEST

START_TEST(test_fail_formats_and_returns_code) {
    ck_assert_int_eq(nnrt_fail(NNRT_ERR_SHAPE, "%s: tensor %s: expected %d", "w.safetensors", "x", 3), NNRT_ERR_SHAPE);
    ck_assert_str_eq(nnrt_last_error(), "w.safetensors: tensor x: expected 3");
    /* Wrapping the previous message in context must not read what is being written. */
    nnrt_fail(NNRT_ERR_IO, "outer: %s", nnrt_last_error());
    ck_assert_str_eq(nnrt_last_error(), "outer: w.safetensors: tensor x: expected 3");
}
END_TEST

START_TEST(test_fail_truncates_long_messages) {
    char big[4000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    nnrt_fail(NNRT_ERR_ARG, "%s", big);
    ck_assert_uint_eq(strlen(nnrt_last_error()), 1023);
}
END_TEST

static void *fail_in_thread(void *saw_own_message) {
    nnrt_fail(NNRT_ERR_IO, "thread message");
    *(int *)saw_own_message = strcmp(nnrt_last_error(), "thread message") == 0;
    return NULL;
}

START_TEST(test_last_error_is_per_thread) {
    nnrt_fail(NNRT_ERR_ARG, "main message");
    pthread_t thread;
    int saw_own_message = 0;
    ck_assert_int_eq(pthread_create(&thread, NULL, fail_in_thread, &saw_own_message), 0);
    ck_assert_int_eq(pthread_join(thread, NULL), 0);
    ck_assert_int_eq(saw_own_message, 1);
    ck_assert_str_eq(nnrt_last_error(), "main message");
}
END_TEST

/* ========================================= Memory =========================================== */

START_TEST(test_alloc_is_aligned_and_zeroed) {
    static const size_t sizes[] = {0, 1, 7, 63, 64, 65, 1000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *p = nnrt_alloc(sizes[i]);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % NNRT_ALIGN, 0);
        for (size_t k = 0; k < sizes[i]; k++)
            ck_assert_uint_eq(p[k], 0);
        memset(p, 0xff, sizes[i]); /* the whole block is ours (ASan checks) */
        nnrt_free(p);
    }
    nnrt_free(NULL);
}
END_TEST

START_TEST(test_alloc_refuses_impossible_sizes) {
    ck_assert_ptr_null(nnrt_alloc(SIZE_MAX));
    ck_assert_ptr_null(nnrt_alloc(SIZE_MAX - 10));
    ck_assert_ptr_nonnull(strstr(nnrt_last_error(), "allocate"));
}
END_TEST

/* ====================================== Random numbers ====================================== */

START_TEST(test_rng_known_first_values) {
    /* Reference: splitmix64 and xoshiro256** as published by Vigna, run independently. */
    nnrt_rng rng;
    nnrt_rng_seed(&rng, 0);
    ck_assert_uint_eq(rng.s[0], 0xe220a8397b1dcdafu);
    ck_assert_uint_eq(rng.s[3], 0xf88bb8a8724c81ecu);
    ck_assert_uint_eq(nnrt_rng_u64(&rng), 0x99ec5f36cb75f2b4u);
    ck_assert_uint_eq(nnrt_rng_u64(&rng), 0xbf6e1f784956452au);
    ck_assert_uint_eq(nnrt_rng_u64(&rng), 0x1a5f849d4933e6e0u);
    ck_assert_uint_eq(nnrt_rng_u64(&rng), 0x6aa594f1262d2d2cu);
    nnrt_rng_seed(&rng, 42);
    ck_assert_uint_eq(nnrt_rng_u64(&rng), 0x15780b2e0c2ec716u);
    ck_assert_uint_eq(nnrt_rng_u64(&rng), 0x6104d9866d113a7eu);
    nnrt_rng_seed(&rng, 42);
    ck_assert(nnrt_rng_uniform(&rng) == 0.08386297105988216);
}
END_TEST

START_TEST(test_rng_is_deterministic) {
    nnrt_rng a, b, c;
    nnrt_rng_seed(&a, 12345);
    nnrt_rng_seed(&b, 12345);
    nnrt_rng_seed(&c, 12346);
    int differs = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = nnrt_rng_u64(&a);
        ck_assert_uint_eq(x, nnrt_rng_u64(&b));
        differs += x != nnrt_rng_u64(&c);
    }
    ck_assert_int_ge(differs, 999);
    ck_assert(nnrt_rng_normal(&a) == nnrt_rng_normal(&b));
}
END_TEST

START_TEST(test_rng_uniform_and_normal_moments) {
    nnrt_rng rng;
    nnrt_rng_seed(&rng, 7);
    const int n = 200000;
    double usum = 0, nsum = 0, nsq = 0;
    for (int i = 0; i < n; i++) {
        double u = nnrt_rng_uniform(&rng);
        ck_assert(u >= 0.0 && u < 1.0);
        usum += u;
        double z = nnrt_rng_normal(&rng);
        ck_assert(isfinite(z));
        nsum += z;
        nsq += z * z;
    }
    ck_assert_double_eq_tol(usum / n, 0.5, 0.005);
    ck_assert_double_eq_tol(nsum / n, 0.0, 0.01);
    ck_assert_double_eq_tol(nsq / n, 1.0, 0.02);
}
END_TEST

START_TEST(test_fill_uniform_range_mean_and_stream) {
    const size_t n = 100000;
    float *f = nnrt_alloc(n * sizeof *f);
    double *d = nnrt_alloc(n * sizeof *d);
    nnrt_rng rng, twin;
    nnrt_rng_seed(&rng, 99);
    nnrt_rng_seed(&twin, 99);
    nnrt_fill_uniform_f32(f, n, -0.25, 0.75, &rng);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert(f[i] >= -0.25f && f[i] <= 0.75f);
        sum += f[i];
        double expected = -0.25 + 1.0 * nnrt_rng_uniform(&twin); /* one draw per value, in order */
        ck_assert(f[i] == (float)expected);
    }
    ck_assert_double_eq_tol(sum / (double)n, 0.25, 0.01);
    nnrt_fill_uniform_f64(d, n, 2.0, 3.0, &rng);
    sum = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert(d[i] >= 2.0 && d[i] < 3.0);
        sum += d[i];
    }
    ck_assert_double_eq_tol(sum / (double)n, 2.5, 0.01);
    nnrt_fill_uniform_f64(d, n, 0, 1, &twin); /* the same number of draws leaves the same state */
    ck_assert_uint_eq(nnrt_rng_u64(&rng), nnrt_rng_u64(&twin));
    nnrt_free(f);
    nnrt_free(d);
}
END_TEST

START_TEST(test_dtype_helpers) {
    ck_assert_uint_eq(nnrt_dtype_size(NNRT_F32), 4);
    ck_assert_uint_eq(nnrt_dtype_size(NNRT_F64), 8);
    ck_assert_uint_eq(nnrt_dtype_size(NNRT_I32), 4);
    ck_assert_uint_eq(nnrt_dtype_size(NNRT_I64), 8);
    ck_assert_str_eq(nnrt_dtype_name(NNRT_F32), "float32");
    ck_assert_str_eq(nnrt_dtype_name(NNRT_F64), "float64");
    ck_assert_str_eq(nnrt_dtype_name(NNRT_I32), "int32");
    ck_assert_str_eq(nnrt_dtype_name(NNRT_I64), "int64");
}
END_TEST

/* ===================================== Atomic writes ======================================== */

static void assert_file_is(const char *path, const char *content) {
    size_t len;
    char *got = read_file(path, &len);
    ck_assert_uint_eq(len, strlen(content));
    ck_assert_str_eq(got, content);
    free(got);
}

START_TEST(test_atomic_write_commit_replaces) {
    const char *target = TMP("out.bin");
    nnrt_atomic_file f;
    ASSERT_OK(nnrt_atomic_open(&f, target));
    ASSERT_OK(nnrt_atomic_write(&f, "hello ", 6));
    ASSERT_OK(nnrt_atomic_write(&f, "world", 5));
    /* only the temporary so far, and it has no name where O_TMPFILE works */
    ck_assert_int_eq(count_files(tmp_dir), f.unnamed ? 0 : 1);
    ck_assert_int_eq(access(target, F_OK), -1);
    ASSERT_OK(nnrt_atomic_commit(&f));
    assert_file_is(target, "hello world");
    ASSERT_OK(nnrt_atomic_open(&f, target));
    ASSERT_OK(nnrt_atomic_write(&f, "new", 3));
    ASSERT_OK(nnrt_atomic_commit(&f));
    assert_file_is(target, "new");
    ck_assert_int_eq(count_files(tmp_dir), 1);
    ck_assert_ptr_null(f.path);
    ck_assert_ptr_null(f.tmp_path);
}
END_TEST

START_TEST(test_atomic_mode_follows_umask) {
    mode_t old = umask(022);
    const char *target = TMP("mode.bin");
    nnrt_atomic_file f;
    ASSERT_OK(nnrt_atomic_open(&f, target));
    ASSERT_OK(nnrt_atomic_commit(&f));
    umask(old);
    struct stat st;
    ck_assert_int_eq(stat(target, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0644);
}
END_TEST

START_TEST(test_atomic_abort_leaves_target) {
    const char *target = TMP("keep.bin");
    write_file(target, "old", 3);
    nnrt_atomic_file f;
    ASSERT_OK(nnrt_atomic_open(&f, target));
    ASSERT_OK(nnrt_atomic_write(&f, "partial", 7));
    nnrt_atomic_abort(&f);
    assert_file_is(target, "old");
    ck_assert_int_eq(count_files(tmp_dir), 1);
    nnrt_atomic_abort(&f); /* released state: a second abort is harmless */
}
END_TEST

START_TEST(test_atomic_open_failures) {
    nnrt_atomic_file f;
    ASSERT_FAILS(nnrt_atomic_open(&f, TMP("no/such/dir/x.bin")), NNRT_ERR_IO, "cannot create temporary file");
    nnrt_atomic_abort(&f); /* safe after a failed open */
    ASSERT_FAILS(nnrt_atomic_open(&f, tmp_dir), NNRT_ERR_IO, "is a directory");
    ASSERT_FAILS(nnrt_atomic_commit(&f), NNRT_ERR_IO, "not open");
    ck_assert_int_eq(count_files(tmp_dir), 0);
}
END_TEST

START_TEST(test_atomic_read_only_dir) {
    if (geteuid() == 0)
        return; /* root writes anywhere; the write-failure and rename-failure tests cover this path */
    char dir[512], target[600];
    path_in("ro", dir);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    snprintf(target, sizeof target, "%s/w.bin", dir);
    write_file(target, "old", 3);
    ck_assert_int_eq(chmod(dir, 0500), 0);
    nnrt_atomic_file f;
    ASSERT_FAILS(nnrt_atomic_open(&f, target), NNRT_ERR_IO, "cannot create temporary file");
    chmod(dir, 0700);
    assert_file_is(target, "old");
    ck_assert_int_eq(count_files(dir), 1);
}
END_TEST

/* A write that fails for real (the file size limit makes write() return EFBIG): the target keeps
 * its old content and no temporary remains. Runs in a child so the limit stays there. */
START_TEST(test_atomic_write_failure_keeps_target) {
    const char *target = TMP("big.bin");
    write_file(target, "old", 3);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit limit = {.rlim_cur = 4096, .rlim_max = 4096};
        setrlimit(RLIMIT_FSIZE, &limit);
        static char block[1 << 16];
        nnrt_atomic_file f;
        int rc = nnrt_atomic_open(&f, target);
        for (int i = 0; i < 16 && rc == NNRT_OK; i++)
            rc = nnrt_atomic_write(&f, block, sizeof block);
        int commit_rc = nnrt_atomic_commit(&f); /* refuses after a failed write, keeping its message */
        int failed_cleanly = (rc == NNRT_ERR_IO || commit_rc == NNRT_ERR_IO) &&
                             strstr(nnrt_last_error(), "write failed") != NULL;
        _exit(failed_cleanly ? 0 : 1);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    assert_file_is(target, "old");
    ck_assert_int_eq(count_files(tmp_dir), 1);
}
END_TEST

START_TEST(test_atomic_rename_failure_removes_temp) {
    const char *target = TMP("became_dir");
    nnrt_atomic_file f;
    ASSERT_OK(nnrt_atomic_open(&f, target));
    ASSERT_OK(nnrt_atomic_write(&f, "data", 4));
    char inner[600];
    ck_assert_int_eq(mkdir(target, 0700), 0); /* someone else takes the name meanwhile */
    snprintf(inner, sizeof inner, "%s/keep", target);
    write_file(inner, "x", 1);
    ASSERT_FAILS(nnrt_atomic_commit(&f), NNRT_ERR_IO, "cannot rename");
    ck_assert_int_eq(count_files(tmp_dir), 1);
    assert_file_is(inner, "x");
}
END_TEST

Suite *runtime_suite(void) {
    Suite *s = suite_create("runtime");
    TCase *tc = tcase_create("errors");
    tcase_add_test(tc, test_strerror_covers_every_code);
    tcase_add_test(tc, test_fail_formats_and_returns_code);
    tcase_add_test(tc, test_fail_truncates_long_messages);
    tcase_add_test(tc, test_last_error_is_per_thread);
    suite_add_tcase(s, tc);
    tc = tcase_create("memory");
    tcase_add_test(tc, test_alloc_is_aligned_and_zeroed);
    tcase_add_test(tc, test_alloc_refuses_impossible_sizes);
    suite_add_tcase(s, tc);
    tc = tcase_create("rng");
    tcase_add_test(tc, test_rng_known_first_values);
    tcase_add_test(tc, test_rng_is_deterministic);
    tcase_add_test(tc, test_rng_uniform_and_normal_moments);
    tcase_add_test(tc, test_fill_uniform_range_mean_and_stream);
    tcase_add_test(tc, test_dtype_helpers);
    suite_add_tcase(s, tc);
    tc = tcase_create("atomic");
    tcase_add_checked_fixture(tc, tmp_dir_setup, tmp_dir_teardown);
    tcase_add_test(tc, test_atomic_write_commit_replaces);
    tcase_add_test(tc, test_atomic_mode_follows_umask);
    tcase_add_test(tc, test_atomic_abort_leaves_target);
    tcase_add_test(tc, test_atomic_open_failures);
    tcase_add_test(tc, test_atomic_read_only_dir);
    tcase_add_test(tc, test_atomic_write_failure_keeps_target);
    tcase_add_test(tc, test_atomic_rename_failure_removes_temp);
    suite_add_tcase(s, tc);
    return s;
}

/* ====================================== safetensors ========================================= */

/* The file most hostile cases start from: "a" F32 [2, 3] at [0, 24], "b" F32 [4] at [24, 40]. */
#define ST_A "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"
#define ST_B "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[24,40]}"

static float st_a[6], st_b[4];

static void st_expect_ab(nnrt_tensor t[2]) {
    t[0] = (nnrt_tensor){.name = "a", .dtype = NNRT_F32, .ndim = 2, .shape = {2, 3}, .data = st_a};
    t[1] = (nnrt_tensor){.name = "b", .dtype = NNRT_F32, .ndim = 1, .shape = {4}, .data = st_b};
}

/* An 8-byte length (declared), the header text, then data_len bytes counting up from 0. */
static void st_write_raw(const char *path, uint64_t declared, const char *header, size_t data_len) {
    size_t header_len = strlen(header);
    unsigned char *bytes = malloc(8 + header_len + data_len);
    ck_assert_ptr_nonnull(bytes);
    put_le(bytes, declared, 8);
    memcpy(bytes + 8, header, header_len);
    for (size_t i = 0; i < data_len; i++)
        bytes[8 + header_len + i] = (unsigned char)i;
    write_file(path, bytes, 8 + header_len + data_len);
    free(bytes);
}

static void st_write(const char *path, const char *header, size_t data_len) {
    st_write_raw(path, strlen(header), header, data_len);
}

START_TEST(test_st_round_trip_f32) {
    float w[3][2] = {{1, 2}, {3, 4}, {5, 6}}, bias[3] = {-1.5f, 0.25f, 1e-30f}, scalar = 42.0f;
    nnrt_tensor out[3] = {
        {.name = "rnn.weight_ih_l0", .dtype = NNRT_F32, .ndim = 2, .shape = {3, 2}, .data = w},
        {.name = "rnn.bias_ih_l0", .dtype = NNRT_F32, .ndim = 1, .shape = {3}, .data = bias},
        {.name = "scale", .dtype = NNRT_F32, .ndim = 0, .data = &scalar},
    };
    const char *path = TMP("w.safetensors");
    ASSERT_OK(nnrt_safetensors_write(path, out, 3));
    float w2[3][2], bias2[3], scalar2;
    nnrt_tensor in[3] = {out[2], out[0], out[1]}; /* any order */
    in[0].data = &scalar2;
    in[1].data = w2;
    in[2].data = bias2;
    ASSERT_OK(nnrt_safetensors_read(path, in, 3));
    ck_assert_mem_eq(w2, w, sizeof w);
    ck_assert_mem_eq(bias2, bias, sizeof bias);
    ck_assert(scalar2 == 42.0f);

    /* Layout: LE header length, header padded to 8, tensors contiguous in the given order. */
    size_t len;
    char *bytes = read_file(path, &len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | (unsigned char)bytes[i];
    ck_assert_uint_eq(n % 8, 0);
    ck_assert_uint_eq(len, 8 + n + sizeof w + sizeof bias + sizeof scalar);
    ck_assert_int_eq(bytes[8], '{');
    ck_assert_ptr_nonnull(strstr(bytes + 8, "\"rnn.weight_ih_l0\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]}"));
    ck_assert_ptr_nonnull(strstr(bytes + 8, "\"scale\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[36,40]}"));
    ck_assert_mem_eq(bytes + 8 + n, w, sizeof w);
    ck_assert_mem_eq(bytes + 8 + n + sizeof w, bias, sizeof bias);
    free(bytes);
}
END_TEST

START_TEST(test_st_round_trip_f64_and_ints) {
    double d[2][2] = {{1e300, -2}, {3.5, 4}}, d2[2][2];
    int32_t i32[3] = {-7, 0, 2147483647}, i32b[3];
    int64_t i64[2] = {INT64_MIN, 5}, i64b[2];
    float empty[1], empty2[1];
    nnrt_tensor out[4] = {
        {.name = "d", .dtype = NNRT_F64, .ndim = 2, .shape = {2, 2}, .data = d},
        {.name = "i", .dtype = NNRT_I32, .ndim = 1, .shape = {3}, .data = i32},
        {.name = "l", .dtype = NNRT_I64, .ndim = 1, .shape = {2}, .data = i64},
        {.name = "e", .dtype = NNRT_F32, .ndim = 2, .shape = {0, 5}, .data = empty},
    };
    const char *path = TMP("d.safetensors");
    ASSERT_OK(nnrt_safetensors_write(path, out, 4));
    nnrt_tensor in[4];
    memcpy(in, out, sizeof in);
    in[0].data = d2;
    in[1].data = i32b;
    in[2].data = i64b;
    in[3].data = empty2;
    ASSERT_OK(nnrt_safetensors_read(path, in, 4));
    ck_assert_mem_eq(d2, d, sizeof d);
    ck_assert_mem_eq(i32b, i32, sizeof i32);
    ck_assert_mem_eq(i64b, i64, sizeof i64);
}
END_TEST

START_TEST(test_st_reads_foreign_layout) {
    /* Metadata, whitespace, another key order and tensors stored out of order are all fine. */
    const char *path = TMP("f.safetensors");
    st_write(path,
             "{ \"__metadata__\": {\"format\": \"pt\"},\n \"b\": {\"data_offsets\": [0, 16], \"shape\": [4], "
             "\"dtype\": \"F32\"},\n \"a\": {\"shape\": [2, 3], \"dtype\": \"F32\", \"data_offsets\": [16, 40]} }   ",
             40);
    nnrt_tensor t[2];
    st_expect_ab(t);
    ASSERT_OK(nnrt_safetensors_read(path, t, 2));
    unsigned char expected[40];
    for (int i = 0; i < 40; i++)
        expected[i] = (unsigned char)i;
    ck_assert_mem_eq(st_b, expected, 16);
    ck_assert_mem_eq(st_a, expected + 16, 24);
}
END_TEST

START_TEST(test_st_empty_file_of_tensors) {
    const char *path = TMP("none.safetensors");
    ASSERT_OK(nnrt_safetensors_write(path, NULL, 0));
    ASSERT_OK(nnrt_safetensors_read(path, NULL, 0));
}
END_TEST

typedef struct st_case {
    const char *label;
    const char *header;
    size_t data_len;
    int code;
    const char *message;
} st_case;

static const st_case st_cases[] = {
    {"invalid JSON", "{\"a\": ", 40, NNRT_ERR_FORMAT, "header is not valid JSON"},
    {"JSON with garbage after it", "{" ST_A "," ST_B "} x", 40, NNRT_ERR_FORMAT, "header is not valid JSON"},
    {"not an object", "[1, 2]", 40, NNRT_ERR_FORMAT, "header is not a JSON object"},
    {"entry not an object", "{\"a\": [1], " ST_B "}", 40, NNRT_ERR_FORMAT, "tensor a: entry is not a JSON object"},
    {"dtype unknown", "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,24]}," ST_B "}", 40,
     NNRT_ERR_DTYPE, "tensor a: dtype \"BF16\" is not supported; expected F32, F64, I32 or I64"},
    {"dtype missing", "{\"a\":{\"shape\":[2,3],\"data_offsets\":[0,24]}," ST_B "}", 40, NNRT_ERR_FORMAT,
     "tensor a: \"dtype\" is missing or not a string"},
    {"dtype not a string", "{\"a\":{\"dtype\":4,\"shape\":[2,3],\"data_offsets\":[0,24]}," ST_B "}", 40,
     NNRT_ERR_FORMAT, "tensor a: \"dtype\" is missing"},
    {"shape not a list", "{\"a\":{\"dtype\":\"F32\",\"shape\":6,\"data_offsets\":[0,24]}," ST_B "}", 40,
     NNRT_ERR_FORMAT, "tensor a: \"shape\" is missing or not a list"},
    {"shape negative", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2,-3],\"data_offsets\":[0,24]}," ST_B "}", 40,
     NNRT_ERR_FORMAT, "tensor a: shape entry 0 is not a non-negative integer"},
    {"shape not ints", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3.0],\"data_offsets\":[0,24]}," ST_B "}", 40,
     NNRT_ERR_FORMAT, "tensor a: shape entry 1 is not a non-negative integer"},
    {"shape too many dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,6],\"data_offsets\":[0,24]}," ST_B "}",
     40, NNRT_ERR_FORMAT, "tensor a: shape has 9 dimensions; at most 8 are supported"},
    {"shape overflowing",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,24]}," ST_B "}", 40,
     NNRT_ERR_FORMAT, "tensor a: shape [4294967296, 4294967296, 4294967296] is too large"},
    {"shape overflowing by dtype size",
     "{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,24]}," ST_B "}", 40,
     NNRT_ERR_FORMAT, "too large"},
    {"integer too big for JSON", "{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,24]}}",
     24, NNRT_ERR_FORMAT, "too big integer"},
    {"offsets missing", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3]}," ST_B "}", 40, NNRT_ERR_FORMAT,
     "tensor a: \"data_offsets\" is missing or not a list of two non-negative integers"},
    {"offsets one int", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[24]}," ST_B "}", 40,
     NNRT_ERR_FORMAT, "tensor a: \"data_offsets\" is missing"},
    {"offsets three ints", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24,40]}," ST_B "}", 40,
     NNRT_ERR_FORMAT, "tensor a: \"data_offsets\" is missing"},
    {"offsets strings", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[\"0\",\"24\"]}," ST_B "}", 40,
     NNRT_ERR_FORMAT, "tensor a: \"data_offsets\" is missing"},
    {"offsets negative", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[-24,0]}," ST_B "}", 40,
     NNRT_ERR_FORMAT, "tensor a: \"data_offsets\" is missing"},
    {"offsets backwards", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[24,0]}," ST_B "}", 40,
     NNRT_ERR_FORMAT, "tensor a: data_offsets [24, 0] run backwards"},
    {"offsets past the data", "{" ST_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[24,1099511627776]}}",
     40, NNRT_ERR_FORMAT, "tensor b: data_offsets [24, 1099511627776] run past the end of the data (40 bytes)"},
    {"size disagrees with shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}," ST_B "}", 40,
     NNRT_ERR_FORMAT, "tensor a: data_offsets [0, 20] hold 20 bytes, but shape [2, 3] of F32 needs 24"},
    {"overlap", "{" ST_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}", 40, NNRT_ERR_FORMAT,
     "tensors a and b overlap (data_offsets [0, 24] and [16, 32])"},
    {"same bytes twice", "{" ST_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]}}", 24,
     NNRT_ERR_FORMAT, "overlap"},
    {"hole between tensors", "{" ST_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[28,44]}}", 44,
     NNRT_ERR_FORMAT, "data bytes [24, 28) belong to no tensor (a hole before tensor b)"},
    {"hole at the start", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]}}", 32,
     NNRT_ERR_FORMAT, "data bytes [0, 8) belong to no tensor"},
    {"trailing data", "{" ST_A "," ST_B "}", 48, NNRT_ERR_FORMAT,
     "data bytes [40, 48) at the end of the file belong to no tensor"},
    {"duplicate name", "{" ST_A "," ST_A "," ST_B "}", 40, NNRT_ERR_NAME, "names a tensor or field twice"},
    {"missing tensor", "{" ST_A "}", 24, NNRT_ERR_NAME, "missing tensor b"},
    {"misspelt tensor", "{" ST_A ",\"bb\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[24,40]}}", 40,
     NNRT_ERR_NAME, "missing tensor b (the file has unexpected tensor bb)"},
    {"extra tensor", "{" ST_A "," ST_B ",\"foo\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[40,48]}}", 48,
     NNRT_ERR_NAME, "unexpected tensor foo"},
    {"wrong dtype", "{" ST_A ",\"b\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[24,40]}}", 40, NNRT_ERR_DTYPE,
     "tensor b: expected dtype F32, found F64"},
    {"wrong shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]}," ST_B "}", 40,
     NNRT_ERR_SHAPE, "tensor a: expected shape [2, 3], found [3, 2]"},
    {"wrong rank", "{\"a\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]}," ST_B "}", 40, NNRT_ERR_SHAPE,
     "tensor a: expected shape [2, 3], found [6]"},
    {"metadata not strings", "{\"__metadata__\":{\"format\":1}," ST_A "," ST_B "}", 40, NNRT_ERR_FORMAT,
     "__metadata__ is not an object of strings"},
    {"unknown field", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24],\"x\":1}," ST_B "}", 40,
     NNRT_ERR_FORMAT, "tensor a: unexpected field \"x\""},
    {"NUL in a name", "{\"a\\u0000\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}," ST_B "}", 40,
     NNRT_ERR_FORMAT, "header is not valid JSON"},
    {"control bytes in a name are not echoed",
     "{" ST_A "," ST_B ",\"x\\ny\\u001b[31m\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[40,44]}}", 44,
     NNRT_ERR_NAME, "unexpected tensor x?y?[31m"},
};

START_TEST(test_st_hostile_header) {
    const st_case *c = &st_cases[_i];
    const char *path = TMP("w.safetensors");
    st_write(path, c->header, c->data_len);
    nnrt_tensor t[2];
    st_expect_ab(t);
    int rc = nnrt_safetensors_read(path, t, 2);
    ck_assert_msg(rc == c->code, "case '%s': code %d, expected %d; message: %s", c->label, rc, c->code,
                  nnrt_last_error());
    ck_assert_msg(strstr(nnrt_last_error(), c->message) != NULL, "case '%s': message \"%s\" lacks \"%s\"", c->label,
                  nnrt_last_error(), c->message);
    ck_assert_msg(strncmp(nnrt_last_error(), path, strlen(path)) == 0, "case '%s': message does not name the file",
                  c->label);
}
END_TEST

START_TEST(test_st_header_length_lies) {
    const char *path = TMP("w.safetensors");
    const char *header = "{" ST_A "," ST_B "}";
    nnrt_tensor t[2];
    st_expect_ab(t);
    st_write_raw(path, strlen(header) + 1000, header, 40);
    ASSERT_FAILS(nnrt_safetensors_read(path, t, 2), NNRT_ERR_FORMAT, "runs past the end of the file");
    st_write_raw(path, 200ull * 1000 * 1000, header, 40);
    ASSERT_FAILS(nnrt_safetensors_read(path, t, 2), NNRT_ERR_FORMAT, "exceeds the 100 MB limit");
    st_write_raw(path, UINT64_MAX, header, 40);
    ASSERT_FAILS(nnrt_safetensors_read(path, t, 2), NNRT_ERR_FORMAT, "exceeds the 100 MB limit");
    st_write_raw(path, strlen(header) + 40, header, 40); /* the data read as JSON */
    ASSERT_FAILS(nnrt_safetensors_read(path, t, 2), NNRT_ERR_FORMAT, "not valid JSON");
    write_file(path, "\x10\0\0", 3);
    ASSERT_FAILS(nnrt_safetensors_read(path, t, 2), NNRT_ERR_FORMAT, "file is 3 bytes, too short");
    write_file(path, "", 0);
    ASSERT_FAILS(nnrt_safetensors_read(path, t, 2), NNRT_ERR_FORMAT, "too short");
    st_write_raw(path, 0, "", 0);
    ASSERT_FAILS(nnrt_safetensors_read(path, t, 2), NNRT_ERR_FORMAT, "not valid JSON");
}
END_TEST

START_TEST(test_st_exact_messages) {
    char expected[1024];
    const char *path = TMP("w.safetensors");
    float weights[128 * 32], bias[4];
    nnrt_tensor t[2] = {
        {.name = "rnn.weight_hh_l0", .dtype = NNRT_F32, .ndim = 2, .shape = {128, 32}, .data = weights},
        {.name = "head.0.bias", .dtype = NNRT_F32, .ndim = 1, .shape = {4}, .data = bias},
    };
    st_write(path, "{\"rnn.weight_hh_l0\":{\"dtype\":\"F32\",\"shape\":[128,16],\"data_offsets\":[0,8192]}}", 8192);
    ASSERT_FAILS(nnrt_safetensors_read(path, t, 2), NNRT_ERR_SHAPE, "");
    snprintf(expected, sizeof expected, "%s: tensor rnn.weight_hh_l0: expected shape [128, 32], found [128, 16]", path);
    ck_assert_str_eq(nnrt_last_error(), expected);

    st_write(path, "{\"rnn.weight_hh_l0\":{\"dtype\":\"F32\",\"shape\":[128,32],\"data_offsets\":[0,16384]}}", 16384);
    ASSERT_FAILS(nnrt_safetensors_read(path, t, 2), NNRT_ERR_NAME, "");
    snprintf(expected, sizeof expected, "%s: missing tensor head.0.bias", path);
    ck_assert_str_eq(nnrt_last_error(), expected);

    /* The hint names only a tensor no request matches: head.0.bias is requested, later. */
    st_write(path, "{\"head.0.bias\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16);
    ASSERT_FAILS(nnrt_safetensors_read(path, t, 2), NNRT_ERR_NAME, "");
    snprintf(expected, sizeof expected, "%s: missing tensor rnn.weight_hh_l0", path);
    ck_assert_str_eq(nnrt_last_error(), expected);

    st_write(path, "{\"rnn.weight_hh_l0\":{\"dtype\":\"F32\",\"shape\":[128,32],\"data_offsets\":[0,16384]},"
                   "\"head.0.bias\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16384,16400]},"
                   "\"foo\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16400,16400]}}", 16400);
    ASSERT_FAILS(nnrt_safetensors_read(path, t, 2), NNRT_ERR_NAME, "");
    snprintf(expected, sizeof expected, "%s: unexpected tensor foo", path);
    ck_assert_str_eq(nnrt_last_error(), expected);
}
END_TEST

START_TEST(test_st_checks_everything_before_copying) {
    const char *path = TMP("w.safetensors");
    st_write(path, "{" ST_A ",\"b\":{\"dtype\":\"I32\",\"shape\":[4],\"data_offsets\":[24,40]}}", 40);
    nnrt_tensor t[2];
    st_expect_ab(t);
    for (int i = 0; i < 6; i++)
        st_a[i] = -1.0f;
    ASSERT_FAILS(nnrt_safetensors_read(path, t, 2), NNRT_ERR_DTYPE, "tensor b: expected dtype F32, found I32");
    for (int i = 0; i < 6; i++)
        ck_assert(st_a[i] == -1.0f);
}
END_TEST

START_TEST(test_st_not_a_file) {
    nnrt_tensor t[2];
    st_expect_ab(t);
    ASSERT_FAILS(nnrt_safetensors_read(TMP("absent.safetensors"), t, 2), NNRT_ERR_IO, "absent.safetensors: cannot open");
    ASSERT_FAILS(nnrt_safetensors_read(tmp_dir, t, 2), NNRT_ERR_IO, "not a regular file");
}
END_TEST

START_TEST(test_st_writer_rejects_bad_tensors) {
    const char *path = TMP("bad.safetensors");
    write_file(path, "old", 3);
    float x[2] = {1, 2};
    nnrt_tensor twice[2] = {
        {.name = "x", .dtype = NNRT_F32, .ndim = 1, .shape = {2}, .data = x},
        {.name = "x", .dtype = NNRT_F32, .ndim = 1, .shape = {2}, .data = x},
    };
    ASSERT_FAILS(nnrt_safetensors_write(path, twice, 2), NNRT_ERR_NAME, "tensor x is given twice");
    nnrt_tensor no_data = {.name = "y", .dtype = NNRT_F32, .ndim = 1, .shape = {2}, .data = NULL};
    ASSERT_FAILS(nnrt_safetensors_write(path, &no_data, 1), NNRT_ERR_ARG, "tensor y: data is NULL");
    nnrt_tensor negative = {.name = "z", .dtype = NNRT_F32, .ndim = 1, .shape = {-2}, .data = x};
    ASSERT_FAILS(nnrt_safetensors_write(path, &negative, 1), NNRT_ERR_ARG, "tensor z: negative");
    nnrt_tensor reserved = {.name = "__metadata__", .dtype = NNRT_F32, .ndim = 1, .shape = {2}, .data = x};
    ASSERT_FAILS(nnrt_safetensors_write(path, &reserved, 1), NNRT_ERR_ARG, "reserved");
    nnrt_tensor deep = {.name = "d", .dtype = NNRT_F32, .ndim = 9, .data = x};
    ASSERT_FAILS(nnrt_safetensors_write(path, &deep, 1), NNRT_ERR_ARG, "ndim 9");
    assert_file_is(path, "old");
    ck_assert_int_eq(count_files(tmp_dir), 1);
}
END_TEST

START_TEST(test_st_reader_rejects_bad_requests) {
    const char *path = TMP("w.safetensors");
    st_write(path, "{" ST_A "," ST_B "}", 40);
    nnrt_tensor t[3];
    st_expect_ab(t);
    t[2] = t[1];
    ASSERT_FAILS(nnrt_safetensors_read(path, t, 3), NNRT_ERR_ARG, "tensor b is requested twice");
    st_expect_ab(t);
    t[1].data = NULL;
    ASSERT_FAILS(nnrt_safetensors_read(path, t, 2), NNRT_ERR_ARG, "invalid tensor description for b");
}
END_TEST

Suite *safetensors_suite(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("round_trip");
    tcase_add_checked_fixture(tc, tmp_dir_setup, tmp_dir_teardown);
    tcase_add_test(tc, test_st_round_trip_f32);
    tcase_add_test(tc, test_st_round_trip_f64_and_ints);
    tcase_add_test(tc, test_st_reads_foreign_layout);
    tcase_add_test(tc, test_st_empty_file_of_tensors);
    suite_add_tcase(s, tc);
    tc = tcase_create("hostile");
    tcase_add_checked_fixture(tc, tmp_dir_setup, tmp_dir_teardown);
    tcase_add_loop_test(tc, test_st_hostile_header, 0, (int)(sizeof st_cases / sizeof *st_cases));
    tcase_add_test(tc, test_st_header_length_lies);
    tcase_add_test(tc, test_st_exact_messages);
    tcase_add_test(tc, test_st_checks_everything_before_copying);
    tcase_add_test(tc, test_st_not_a_file);
    suite_add_tcase(s, tc);
    tc = tcase_create("arguments");
    tcase_add_checked_fixture(tc, tmp_dir_setup, tmp_dir_teardown);
    tcase_add_test(tc, test_st_writer_rejects_bad_tensors);
    tcase_add_test(tc, test_st_reader_rejects_bad_requests);
    suite_add_tcase(s, tc);
    return s;
}

/* ========================================== .npy ============================================ */

/* A .npy file from parts: version, declared header length (or the real one when declared < 0),
 * header text exactly as given, then data_len bytes counting up from 0. */
static void npy_write_raw(const char *path, int major, int minor, long long declared, const char *header,
                          size_t data_len) {
    size_t header_len = strlen(header), len_bytes = major == 1 ? 2 : 4;
    size_t total = 8 + len_bytes + header_len + data_len;
    unsigned char *bytes = malloc(total);
    ck_assert_ptr_nonnull(bytes);
    memcpy(bytes, "\x93NUMPY", 6);
    bytes[6] = (unsigned char)major;
    bytes[7] = (unsigned char)minor;
    put_le(bytes + 8, declared < 0 ? header_len : (uint64_t)declared, (int)len_bytes);
    memcpy(bytes + 8 + len_bytes, header, header_len);
    for (size_t i = 0; i < data_len; i++)
        bytes[8 + len_bytes + header_len + i] = (unsigned char)i;
    write_file(path, bytes, total);
    free(bytes);
}

static void npy_write(const char *path, const char *header, size_t data_len) {
    npy_write_raw(path, 1, 0, -1, header, data_len);
}

START_TEST(test_npy_round_trip_all_dtypes_and_ranks) {
    static const int64_t shapes[4][3] = {{0}, {5}, {2, 3}, {2, 1, 3}};
    for (int dtype = NNRT_F32; dtype <= NNRT_I64; dtype++) {
        for (int ndim = 0; ndim <= 3; ndim++) {
            nnrt_array a = {.dtype = (nnrt_dtype)dtype, .ndim = ndim, .count = 1};
            for (int k = 0; k < ndim; k++)
                a.count *= (size_t)(a.shape[k] = shapes[ndim][k]);
            size_t bytes = a.count * nnrt_dtype_size(a.dtype);
            unsigned char *data = malloc(bytes);
            for (size_t i = 0; i < bytes; i++)
                data[i] = (unsigned char)(i * 7 + (size_t)dtype);
            a.data = data;
            const char *path = TMP("x.npy");
            ASSERT_OK(nnrt_npy_write(path, &a));
            size_t len;
            char *file = read_file(path, &len);
            ck_assert_uint_eq((len - bytes) % 64, 0); /* data starts 64-byte aligned */
            ck_assert_int_eq(file[len - bytes - 1], '\n');
            free(file);
            nnrt_array b;
            ASSERT_OK(nnrt_npy_read(path, &b));
            ck_assert_int_eq(b.dtype, a.dtype);
            ck_assert_int_eq(b.ndim, ndim);
            ck_assert_uint_eq(b.count, a.count);
            for (int k = 0; k < ndim; k++)
                ck_assert_int_eq(b.shape[k], a.shape[k]);
            ck_assert_uint_eq((uintptr_t)b.data % NNRT_ALIGN, 0);
            ck_assert_mem_eq(b.data, data, bytes);
            nnrt_array_free(&b);
            ck_assert_ptr_null(b.data);
            free(data);
        }
    }
}
END_TEST

START_TEST(test_npy_writes_numpy_bytes) {
    /* np.save of np.zeros((2, 3), np.float32) starts with exactly these 128 bytes. */
    float zeros[6] = {0};
    nnrt_array a = {.dtype = NNRT_F32, .ndim = 2, .shape = {2, 3}, .count = 6, .data = zeros};
    const char *path = TMP("z.npy");
    ASSERT_OK(nnrt_npy_write(path, &a));
    size_t len;
    char *file = read_file(path, &len);
    ck_assert_uint_eq(len, 128 + sizeof zeros);
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    ck_assert_mem_eq(file, "\x93NUMPY\x01\x00\x76\x00", 10);
    ck_assert_mem_eq(file + 10, dict, strlen(dict));
    for (size_t i = 10 + strlen(dict); i < 127; i++)
        ck_assert_int_eq(file[i], ' ');
    ck_assert_int_eq(file[127], '\n');
    free(file);
    nnrt_array one = {.dtype = NNRT_I64, .ndim = 1, .shape = {3}, .count = 3, .data = zeros};
    ASSERT_OK(nnrt_npy_write(path, &one));
    file = read_file(path, &len);
    ck_assert_ptr_nonnull(strstr(file + 10, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }"));
    free(file);
}
END_TEST

START_TEST(test_npy_reads_numpy_variants) {
    const char *path = TMP("v.npy");
    nnrt_array a;
    /* Version 2.0, as numpy writes for huge headers. */
    npy_write_raw(path, 2, 0, -1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }          \n", 24);
    ASSERT_OK(nnrt_npy_read(path, &a));
    ck_assert_int_eq(a.dtype, NNRT_F64);
    ck_assert_int_eq(a.ndim, 1);
    ck_assert_int_eq(a.shape[0], 3);
    nnrt_array_free(&a);
    /* Version 3.0 (utf-8 header), keys in another order, double quotes, no trailing comma. */
    npy_write_raw(path, 3, 0, -1, "{\"shape\": (2, 2), \"fortran_order\": False, \"descr\": \"<i8\"}\n", 32);
    ASSERT_OK(nnrt_npy_read(path, &a));
    ck_assert_int_eq(a.dtype, NNRT_I64);
    ck_assert_int_eq(a.ndim, 2);
    ck_assert_uint_eq(a.count, 4);
    nnrt_array_free(&a);
    /* '|' and '=' byte orders; an unaligned header as numpy before 1.14 wrote (16-byte). */
    npy_write(path, "{'fortran_order': False, 'descr': '|i4', 'shape': (4, ), }  \n", 16);
    ASSERT_OK(nnrt_npy_read(path, &a));
    ck_assert_int_eq(a.dtype, NNRT_I32);
    ck_assert_uint_eq(a.count, 4);
    ck_assert_int_eq(((int32_t *)a.data)[1], 0x07060504);
    nnrt_array_free(&a);
    npy_write(path, "{'descr': '=f4', 'shape': (), 'fortran_order': False}\n", 4);
    ASSERT_OK(nnrt_npy_read(path, &a));
    ck_assert_int_eq(a.dtype, NNRT_F32);
    ck_assert_int_eq(a.ndim, 0);
    ck_assert_uint_eq(a.count, 1);
    nnrt_array_free(&a);
    /* An empty array has no data at all. */
    npy_write(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }\n", 0);
    ASSERT_OK(nnrt_npy_read(path, &a));
    ck_assert_uint_eq(a.count, 0);
    ck_assert_ptr_nonnull(a.data);
    nnrt_array_free(&a);
    nnrt_array_free(NULL);
}
END_TEST

typedef struct npy_case {
    const char *label;
    int major, minor;
    long long declared; /* header length in the prelude; -1: the real one */
    const char *header;
    size_t data_len;
    int code;
    const char *message;
} npy_case;

#define NPY_F4_23 "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n"

static const npy_case npy_cases[] = {
    {"big-endian", 1, 0, -1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }\n", 24, NNRT_ERR_DTYPE,
     "dtype '>f4' (big-endian) is not supported; expected little-endian float32, float64, int32 or int64"},
    {"big-endian int", 1, 0, -1, "{'descr': '>i8', 'fortran_order': False, 'shape': (3,), }\n", 24, NNRT_ERR_DTYPE,
     "dtype '>i8' (big-endian)"},
    {"float16", 1, 0, -1, "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }\n", 12, NNRT_ERR_DTYPE,
     "dtype '<f2' is not supported; expected little-endian float32"},
    {"uint8", 1, 0, -1, "{'descr': '|u1', 'fortran_order': False, 'shape': (6,), }\n", 6, NNRT_ERR_DTYPE,
     "dtype '|u1' is not supported"},
    {"complex", 1, 0, -1, "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }\n", 24, NNRT_ERR_DTYPE,
     "dtype '<c8' is not supported"},
    {"object", 1, 0, -1, "{'descr': '|O', 'fortran_order': False, 'shape': (3,), }\n", 24, NNRT_ERR_DTYPE,
     "dtype '|O' is not supported"},
    {"structured", 1, 0, -1, "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (3,), }\n",
     24, NNRT_ERR_DTYPE, "structured dtype is not supported"},
    {"fortran order", 1, 0, -1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n", 24, NNRT_ERR_FORMAT,
     "fortran_order is True (column-major data); only C order is supported"},
    {"9 dimensions", 1, 0, -1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 6), }\n",
     24, NNRT_ERR_FORMAT, "array has 9 dimensions; at most 8 are supported"},
    {"truncated data", 1, 0, -1, NPY_F4_23, 20, NNRT_ERR_FORMAT,
     "truncated data: shape (2, 3) of float32 needs 24 bytes, found 20"},
    {"no data", 1, 0, -1, NPY_F4_23, 0, NNRT_ERR_FORMAT, "truncated data"},
    {"huge shape, small file", 1, 0, -1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }\n",
     24, NNRT_ERR_FORMAT, "truncated data: shape (1000000, 1000000) of float64 needs 8000000000000 bytes, found 24"},
    {"count overflows", 1, 0, -1,
     "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }\n", 24,
     NNRT_ERR_FORMAT, "shape (4294967296, 4294967296, 4294967296) is too large"},
    {"bytes overflow", 1, 0, -1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2147483648, 2147483648), }\n",
     24, NNRT_ERR_FORMAT, "shape (2147483648, 2147483648) is too large"},
    {"dimension overflows", 1, 0, -1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }\n",
     24, NNRT_ERR_FORMAT, "expected a dimension below 2^63"},
    {"trailing data", 1, 0, -1, NPY_F4_23, 28, NNRT_ERR_FORMAT, "4 bytes of trailing data"},
    {"garbage after dict", 1, 0, -1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } x\n", 24,
     NNRT_ERR_FORMAT, "malformed header: expected only padding after the header dictionary"},
    {"second dict", 1, 0, -1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }{}\n", 24,
     NNRT_ERR_FORMAT, "expected only padding"},
    {"header length past end", 1, 0, 5000, NPY_F4_23, 24, NNRT_ERR_FORMAT,
     "header length 5000 runs past the end of the file"},
    {"header length past end (v2)", 2, 0, 4000000000LL, NPY_F4_23, 24, NNRT_ERR_FORMAT,
     "header length 4000000000 exceeds the 65536-byte limit"},
    {"version 4.0", 4, 0, -1, NPY_F4_23, 24, NNRT_ERR_FORMAT,
     ".npy format version 4.0 is not supported; expected 1.0, 2.0 or 3.0"},
    {"version 1.1", 1, 1, -1, NPY_F4_23, 24, NNRT_ERR_FORMAT, "version 1.1 is not supported"},
    {"missing shape", 1, 0, -1, "{'descr': '<f4', 'fortran_order': False, }\n", 24, NNRT_ERR_FORMAT,
     "key 'shape' is missing"},
    {"missing descr", 1, 0, -1, "{'fortran_order': False, 'shape': (2, 3)}\n", 24, NNRT_ERR_FORMAT,
     "key 'descr' is missing"},
    {"duplicate key", 1, 0, -1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 24,
     NNRT_ERR_FORMAT, "key 'descr' appears twice"},
    {"unknown key", 1, 0, -1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'foo': 1}\n", 24,
     NNRT_ERR_FORMAT, "unexpected key 'foo'"},
    {"1-d shape without comma", 1, 0, -1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6), }\n", 24,
     NNRT_ERR_FORMAT, "a 1-d shape is written (n,)"},
    {"negative dimension", 1, 0, -1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 6), }\n", 24,
     NNRT_ERR_FORMAT, "expected a non-negative integer"},
    {"shape as list", 1, 0, -1, "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }\n", 24,
     NNRT_ERR_FORMAT, "expected '(' starting the shape tuple"},
    {"not a bool", 1, 0, -1, "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2, 3), }\n", 24, NNRT_ERR_FORMAT,
     "expected True or False"},
    {"unterminated string", 1, 0, -1, "{'descr: '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 24,
     NNRT_ERR_FORMAT, "malformed header"},
    {"escape in string", 1, 0, -1, "{'descr': '<f\\x34', 'fortran_order': False, 'shape': (2, 3), }\n", 24,
     NNRT_ERR_FORMAT, "closing quote of a string without escapes"},
    {"missing colon", 1, 0, -1, "{'descr' '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 24, NNRT_ERR_FORMAT,
     "expected ':' after a key"},
    {"missing comma", 1, 0, -1, "{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3), }\n", 24, NNRT_ERR_FORMAT,
     "expected ',' or '}'"},
    {"unclosed dict", 1, 0, -1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), \n", 24, NNRT_ERR_FORMAT,
     "found 'end of header'"},
    {"not a dict", 1, 0, -1, "('descr', '<f4')\n", 24, NNRT_ERR_FORMAT, "expected '{' starting the header dictionary"},
    {"empty header", 1, 0, -1, "", 24, NNRT_ERR_FORMAT, "expected '{'"},
    {"control bytes are not echoed", 1, 0, -1, "{'descr': '\x1b[2J\xff', 'fortran_order': False, 'shape': (6,), }\n", 24,
     NNRT_ERR_DTYPE, "dtype '?[2J?' is not supported"},
};

START_TEST(test_npy_malformed) {
    const npy_case *c = &npy_cases[_i];
    const char *path = TMP("x.npy");
    npy_write_raw(path, c->major, c->minor, c->declared, c->header, c->data_len);
    nnrt_array a;
    memset(&a, 0xab, sizeof a);
    int rc = nnrt_npy_read(path, &a);
    ck_assert_msg(rc == c->code, "case '%s': code %d, expected %d; message: %s", c->label, rc, c->code,
                  nnrt_last_error());
    ck_assert_msg(strstr(nnrt_last_error(), c->message) != NULL, "case '%s': message \"%s\" lacks \"%s\"", c->label,
                  nnrt_last_error(), c->message);
    ck_assert_msg(strncmp(nnrt_last_error(), path, strlen(path)) == 0, "case '%s': message does not name the file",
                  c->label);
    ck_assert_ptr_null(a.data); /* nothing to free after a failure */
}
END_TEST

START_TEST(test_npy_exact_big_endian_message) {
    const char *path = TMP("x.npy");
    npy_write(path, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }\n", 24);
    nnrt_array a;
    ASSERT_FAILS(nnrt_npy_read(path, &a), NNRT_ERR_DTYPE, "");
    char expected[1024];
    snprintf(expected, sizeof expected,
             "%s: dtype '>f4' (big-endian) is not supported; expected little-endian float32, float64, int32 or int64",
             path);
    ck_assert_str_eq(nnrt_last_error(), expected);
}
END_TEST

START_TEST(test_npy_bad_prelude) {
    const char *path = TMP("x.npy");
    nnrt_array a;
    write_file(path, "\x93NUMPY\x01", 7);
    ASSERT_FAILS(nnrt_npy_read(path, &a), NNRT_ERR_FORMAT, "file is 7 bytes, too short for a .npy file");
    write_file(path, "PK\x03\x04 this is a zip archive", 25);
    ASSERT_FAILS(nnrt_npy_read(path, &a), NNRT_ERR_FORMAT, "not a .npy file");
    write_file(path, "\x93NUMPY\x02\x00\x10\x00", 10); /* v2 needs a 4-byte length */
    ASSERT_FAILS(nnrt_npy_read(path, &a), NNRT_ERR_FORMAT, "truncated");
    ASSERT_FAILS(nnrt_npy_read(TMP("absent.npy"), &a), NNRT_ERR_IO, "absent.npy: cannot open");
    ASSERT_FAILS(nnrt_npy_read(tmp_dir, &a), NNRT_ERR_IO, "not a regular file");
}
END_TEST

START_TEST(test_npy_writer_rejects_bad_arrays) {
    const char *path = TMP("w.npy");
    float x[6] = {0};
    nnrt_array wrong_count = {.dtype = NNRT_F32, .ndim = 2, .shape = {2, 3}, .count = 5, .data = x};
    ASSERT_FAILS(nnrt_npy_write(path, &wrong_count), NNRT_ERR_ARG, "count 5 disagrees with the shape's 6 elements");
    nnrt_array deep = {.dtype = NNRT_F32, .ndim = 9, .count = 1, .data = x};
    ASSERT_FAILS(nnrt_npy_write(path, &deep), NNRT_ERR_ARG, "ndim 9 is outside 0..8");
    nnrt_array no_data = {.dtype = NNRT_F32, .ndim = 1, .shape = {6}, .count = 6};
    ASSERT_FAILS(nnrt_npy_write(path, &no_data), NNRT_ERR_ARG, "data is NULL");
    nnrt_array bad_dtype = {.dtype = (nnrt_dtype)9, .ndim = 1, .shape = {6}, .count = 6, .data = x};
    ASSERT_FAILS(nnrt_npy_write(path, &bad_dtype), NNRT_ERR_ARG, "invalid dtype 9");
    ck_assert_int_eq(count_files(tmp_dir), 0);
    nnrt_array max_dims = {.dtype = NNRT_I64, .ndim = 8, .shape = {1, 1, 1, 1, 1, 1, 1, 1}, .count = 1, .data = x};
    ASSERT_OK(nnrt_npy_write(path, &max_dims));
    nnrt_array back;
    ASSERT_OK(nnrt_npy_read(path, &back));
    ck_assert_int_eq(back.ndim, 8);
    nnrt_array_free(&back);
}
END_TEST

Suite *npy_suite(void) {
    Suite *s = suite_create("npy");
    TCase *tc = tcase_create("round_trip");
    tcase_add_checked_fixture(tc, tmp_dir_setup, tmp_dir_teardown);
    tcase_add_test(tc, test_npy_round_trip_all_dtypes_and_ranks);
    tcase_add_test(tc, test_npy_writes_numpy_bytes);
    tcase_add_test(tc, test_npy_reads_numpy_variants);
    suite_add_tcase(s, tc);
    tc = tcase_create("malformed");
    tcase_add_checked_fixture(tc, tmp_dir_setup, tmp_dir_teardown);
    tcase_add_loop_test(tc, test_npy_malformed, 0, (int)(sizeof npy_cases / sizeof *npy_cases));
    tcase_add_test(tc, test_npy_exact_big_endian_message);
    tcase_add_test(tc, test_npy_bad_prelude);
    tcase_add_test(tc, test_npy_writer_rejects_bad_arrays);
    suite_add_tcase(s, tc);
    return s;
}

/* ================================== Model parameter I/O ===================================== */

/* A descriptor as the generator would emit it for rnn(2) over 3 inputs, then dense(1). */
static const nnrt_layer_desc tiny_layers[] = {{NNRT_CELL_RNN_TANH, 3, 2}};
static const nnrt_head_desc tiny_heads[] = {{NNRT_ACT_LINEAR, 2, 1}};
static const nnrt_param_desc tiny_tensors[] = {
    {"rnn.weight_ih_l0", 2, {2, 3}, 0, 6, 0.7071067811865476},
    {"rnn.weight_hh_l0", 2, {2, 2}, 6, 4, 0.7071067811865476},
    {"rnn.bias_ih_l0", 1, {2, 0}, 10, 2, 0.7071067811865476},
    {"rnn.bias_hh_l0", 1, {2, 0}, 12, 2, 0.7071067811865476},
    {"head.0.weight", 2, {1, 2}, 14, 2, 0.7071067811865476},
    {"head.0.bias", 1, {1, 0}, 16, 1, 0.7071067811865476},
};

static nnrt_model tiny_model(nnrt_dtype dtype) {
    return (nnrt_model){
        .abi_version = NNRT_ABI_VERSION, .name = "tiny", .isa = "scalar", .dtype = dtype,
        .input = 3, .output = 1, .seq_len = 4, .batch = 1,
        .num_layers = 1, .layers = tiny_layers, .num_heads = 1, .heads = tiny_heads,
        .num_params = 17, .num_tensors = 6, .tensors = tiny_tensors,
        .params_bytes = 17 * nnrt_dtype_size(dtype),
    };
}

START_TEST(test_model_init_is_deterministic_and_bounded) {
    nnrt_model m = tiny_model(NNRT_F32);
    float p[17], q[17];
    nnrt_model_init(&m, p, 5);
    nnrt_model_init(&m, q, 5);
    ck_assert_mem_eq(p, q, sizeof p);
    nnrt_rng rng;
    nnrt_rng_seed(&rng, 5);
    const double bound = 0.7071067811865476;
    for (int i = 0; i < 17; i++) {
        ck_assert(fabs(p[i]) <= bound);
        ck_assert(p[i] == (float)(-bound + 2 * bound * nnrt_rng_uniform(&rng))); /* one stream, in order */
    }
    nnrt_model_init(&m, q, 6);
    ck_assert(memcmp(p, q, sizeof p) != 0);
    nnrt_model md = tiny_model(NNRT_F64);
    double d[17];
    nnrt_model_init(&md, d, 5);
    for (int i = 0; i < 17; i++)
        ck_assert(fabs(d[i]) <= bound);
}
END_TEST

START_TEST(test_model_save_load_round_trip) {
    nnrt_model m = tiny_model(NNRT_F64);
    double p[17], q[17] = {0};
    nnrt_model_init(&m, p, 1);
    const char *path = TMP("tiny.safetensors");
    ASSERT_OK(nnrt_model_save(&m, p, path));
    ASSERT_OK(nnrt_model_load(&m, q, path));
    ck_assert_mem_eq(p, q, sizeof p);
    /* The file holds PyTorch's names with the model's dtype. */
    size_t len;
    char *file = read_file(path, &len);
    ck_assert_ptr_nonnull(strstr(file + 8, "\"head.0.weight\":{\"dtype\":\"F64\",\"shape\":[1,2]"));
    ck_assert_ptr_nonnull(strstr(file + 8, "\"rnn.bias_hh_l0\":{\"dtype\":\"F64\",\"shape\":[2]"));
    free(file);
}
END_TEST

START_TEST(test_model_load_mismatches) {
    nnrt_model m64 = tiny_model(NNRT_F64), m32 = tiny_model(NNRT_F32);
    double p[17] = {0};
    float f[17];
    const char *path = TMP("tiny.safetensors");
    ASSERT_OK(nnrt_model_save(&m64, p, path));
    ASSERT_FAILS(nnrt_model_load(&m32, f, path), NNRT_ERR_DTYPE, "tensor rnn.weight_ih_l0: expected dtype F32, found F64");
    nnrt_param_desc bigger[6];
    memcpy(bigger, tiny_tensors, sizeof bigger);
    bigger[5] = (nnrt_param_desc){"head.0.bias", 1, {2, 0}, 16, 2, 1.0};
    nnrt_model other = tiny_model(NNRT_F64);
    other.tensors = bigger;
    other.num_params = 18;
    double r[18];
    ASSERT_FAILS(nnrt_model_load(&other, r, path), NNRT_ERR_SHAPE, "tensor head.0.bias: expected shape [2], found [1]");
    ASSERT_FAILS(nnrt_model_load(&m64, p, TMP("absent.safetensors")), NNRT_ERR_IO, "cannot open");
}
END_TEST

START_TEST(test_model_rejects_bad_descriptors) {
    double p[17];
    nnrt_model m = tiny_model(NNRT_F64);
    m.abi_version = NNRT_ABI_VERSION + 1;
    ASSERT_FAILS(nnrt_model_save(&m, p, TMP("x.safetensors")), NNRT_ERR_ARG, "generated for runtime ABI");
    m = tiny_model(NNRT_F64);
    m.num_params = 16; /* head.0.bias would fall outside the array */
    ASSERT_FAILS(nnrt_model_save(&m, p, TMP("x.safetensors")), NNRT_ERR_ARG, "descriptor entry 5 (head.0.bias)");
    m = tiny_model(NNRT_I32);
    ASSERT_FAILS(nnrt_model_load(&m, p, TMP("x.safetensors")), NNRT_ERR_ARG, "dtype must be float32 or float64");
    ASSERT_FAILS(nnrt_model_load(NULL, p, TMP("x.safetensors")), NNRT_ERR_ARG, "NULL");
    ck_assert_int_eq(count_files(tmp_dir), 0);
}
END_TEST

Suite *model_io_suite(void) {
    Suite *s = suite_create("model_io");
    TCase *tc = tcase_create("model_io");
    tcase_add_checked_fixture(tc, tmp_dir_setup, tmp_dir_teardown);
    tcase_add_test(tc, test_model_init_is_deterministic_and_bounded);
    tcase_add_test(tc, test_model_save_load_round_trip);
    tcase_add_test(tc, test_model_load_mismatches);
    tcase_add_test(tc, test_model_rejects_bad_descriptors);
    suite_add_tcase(s, tc);
    return s;
}
