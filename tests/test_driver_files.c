/* test_driver_files.c — the driver never destroys what the user had, and its command line
 * follows the conventions users have (issue 11): one file in two roles, outputs that are not
 * regular files or cannot be written, FIFOs as inputs, sparse and mistaken input files,
 * temporaries of killed writers, non-finite values in forward, getopt_long forms, --version,
 * --threads on forward and grad, and the eval command with the --json outputs tune reads. */
#define _GNU_SOURCE /* mknod, makedev, mkfifo, link, symlink */
#include "driver_test.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nnrt_internal.h"

Suite *driver_files_suite(void);

/* Known weights and two steps of input for the tiny model in the test directory. */
static void tiny_files(void) {
    write_known_weights(P("w.safetensors"), NNRT_F32);
    write_npy(P("x.npy"), NNRT_F32, 3, (int64_t[]){2, TINY_B, TINY_I},
              (double[]){1, 0, 0, 1, 1, 1, 0, 0});
}

/* A registry model with weights w.safetensors, X x.npy and TARGET t.npy of T steps (T <= 0:
 * seq_len - T). */
static const nnrt_model *model_files(const char *name, int64_t T) {
    const nnrt_model *m = model_named(name);
    if (T <= 0) T = m->seq_len - T;
    init_weights(m, "w.safetensors", "3");
    write_model_x(m, P("x.npy"), T, 11);
    write_model_target(m, P("t.npy"), T, NNRT_I32, 12);
    return m;
}

#define ASSERT_EXIT(want, call)                                                                    \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        ck_assert_msg(rc_ == (want), "exit %d, want %d; stderr: %s", rc_, (want), g_err);          \
    } while (0)

/* ---- One file in two roles: exit 2 before any work --------------------------------------- */

START_TEST(test_same_file_refused) {
    tiny_files();
    ck_assert_int_eq(link(P("x.npy"), P("x_link.npy")), 0);
    ck_assert_int_eq(symlink(P("w.safetensors"), P("w_sym.safetensors")), 0);
    char dotted[600];
    snprintf(dotted, sizeof dotted, "%s/./x.npy", tmpdir);
    /* the same spelling, a hard link, a symbolic link, "./" */
    ASSERT_EXIT(2, FORWARD(&tiny, "w.safetensors", "x.npy", "x.npy"));
    ASSERT_ERR_STARTS("forward: -o and -i name the same file");
    ASSERT_EXIT(2, FORWARD(&tiny, "w.safetensors", "x.npy", "x_link.npy"));
    ASSERT_ERR_HAS("-o and -i name the same file");
    ASSERT_EXIT(2, FORWARD(&tiny, "w.safetensors", "x.npy", "w_sym.safetensors"));
    ASSERT_ERR_HAS("-o and -w name the same file");
    ASSERT_EXIT(2, run(&tiny, "forward", "-w", P("w.safetensors"), "-i", P("x.npy"), "-o", dotted,
                       NULL));
    ck_assert_int_eq(fwd_ncalls, 0); /* refused before any work */
    check_npy(P("x.npy"), NNRT_F32, 3, (int64_t[]){2, TINY_B, TINY_I},
              (double[]){1, 0, 0, 1, 1, 1, 0, 0}, 0, 0);
    ck_assert_str_eq(listing(), "w.safetensors w_sym.safetensors x.npy x_link.npy");
}
END_TEST

START_TEST(test_same_file_refused_training) {
    const nnrt_model *m = model_files("grad_gru_ce_all", 4);
    size_t wsize;
    char *w = read_bytes(P("w.safetensors"), &wsize);
    ASSERT_EXIT(2, GRAD(m, "w.safetensors", "x.npy", "t.npy", "w.safetensors"));
    ASSERT_ERR_HAS("-o and -w name the same file");
    ASSERT_EXIT(2, GRAD(m, "w.safetensors", "x.npy", "t.npy", "t.npy"));
    ASSERT_ERR_HAS("-o and -t name the same file");
    ASSERT_EXIT(2, run(m, "train", "-w", P("w.safetensors"), "-i", P("x.npy"), "-t", P("t.npy"),
                       "--checkpoint", P("w.safetensors"), "-o", P("w2.safetensors"), NULL));
    ASSERT_ERR_HAS("--checkpoint and -w name the same file");
    ASSERT_EXIT(2, run(m, "train", "-w", P("w.safetensors"), "-i", P("x.npy"), "-t", P("t.npy"),
                       "--checkpoint", P("x.npy"), "-o", P("w2.safetensors"), NULL));
    ASSERT_ERR_HAS("--checkpoint and -i name the same file");
    ASSERT_EXIT(2, run(m, "train", "-w", P("w.safetensors"), "-i", P("x.npy"), "-t", P("t.npy"),
                       "--checkpoint", P("c.safetensors"), "-o", P("c.safetensors"), NULL));
    ASSERT_ERR_HAS("-o and --checkpoint name the same file");
    char dotted[600]; /* files still to be created: the same name in the same directory */
    snprintf(dotted, sizeof dotted, "%s/./c.safetensors", tmpdir);
    ASSERT_EXIT(2, run(m, "train", "-w", P("w.safetensors"), "-i", P("x.npy"), "-t", P("t.npy"),
                       "--checkpoint", dotted, "-o", P("c.safetensors"), NULL));
    ASSERT_ERR_HAS("-o and --checkpoint name the same file");
    ASSERT_EXIT(2, run(m, "train", "-w", P("w.safetensors"), "-i", P("x.npy"), "-t", P("t.npy"),
                       "--checkpoint", P("c.safetensors"), "-o", P("c.safetensors.stream"), NULL));
    ASSERT_ERR_HAS("-o and --checkpoint's .stream name the same file");
    /* inputs may repeat: -i X -t X fails on the target's dtype, not as one file in two roles */
    ASSERT_EXIT(1, run(m, "eval", "-w", P("w.safetensors"), "-i", P("x.npy"), "-t", P("x.npy"),
                       NULL));
    ck_assert_ptr_null(strstr(g_err, "name the same file"));
    size_t now;
    char *after = read_bytes(P("w.safetensors"), &now);
    ck_assert(now == wsize && memcmp(w, after, wsize) == 0);
    free(after);
    /* train -w W -o W updates W in place, atomically: as -o W2 would have written it */
    ck_assert_int_eq(run(m, "train", "-w", P("w.safetensors"), "-i", P("x.npy"), "-t", P("t.npy"),
                         "--steps", "3", "-o", P("w2.safetensors"), NULL),
                     0);
    ck_assert_int_eq(run(m, "train", "-w", P("w.safetensors"), "-i", P("x.npy"), "-t", P("t.npy"),
                         "--steps", "3", "-o", P("w.safetensors"), NULL),
                     0);
    ck_assert(same_bytes(P("w.safetensors"), P("w2.safetensors")));
    ck_assert_str_eq(listing(), "t.npy w.safetensors w2.safetensors x.npy");
    free(w);
}
END_TEST

/* ---- Outputs: regular files in writable places, checked first ------------------------------ */

/* A character device like /dev/null (a FIFO when mknod is not allowed) at path. */
static void make_node(const char *path) {
    if (mknod(path, S_IFCHR | 0666, makedev(1, 3)) != 0) ck_assert_int_eq(mkfifo(path, 0666), 0);
}

static int is_node(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode));
}

START_TEST(test_nonregular_output_refused) {
    tiny_files();
    make_node(P("null"));
    ASSERT_EXIT(1, FORWARD(&tiny, "w.safetensors", "x.npy", "null"));
    ASSERT_ERR_HAS("not a regular file");
    ck_assert_int_eq(fwd_ncalls, 0);
    ASSERT_EXIT(1, run(&tiny, "init", "-o", P("null"), NULL));
    ASSERT_ERR_HAS("null: cannot write:");
    ck_assert(is_node(P("null")));
    /* the runtime refuses it too, whoever calls it */
    nnrt_atomic_file f;
    ck_assert_int_eq(nnrt_atomic_open(&f, P("null")), NNRT_ERR_IO);
    ck_assert_ptr_nonnull(strstr(nnrt_last_error(), "not a regular file"));
    ck_assert(is_node(P("null")));
    /* a symbolic link to a regular file is written through, and stays a link */
    ck_assert_int_eq(symlink(P("y.npy"), P("y_link.npy")), 0);
    write_text(P("y.npy"), "old");
    ck_assert_int_eq(FORWARD(&tiny, "w.safetensors", "x.npy", "y_link.npy"), 0);
    struct stat st;
    ck_assert_int_eq(lstat(P("y_link.npy"), &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    ck_assert(!file_equals(P("y.npy"), "old"));
    ck_assert_str_eq(listing(), "null w.safetensors x.npy y.npy y_link.npy");
    /* a replaced file keeps its permissions: a private one stays private */
    ck_assert_int_eq(chmod(P("y.npy"), 0600), 0);
    ck_assert_int_eq(FORWARD(&tiny, "w.safetensors", "x.npy", "y.npy"), 0);
    ck_assert_int_eq(stat(P("y.npy"), &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
}
END_TEST

START_TEST(test_outputs_checked_before_training) {
    const nnrt_model *m = model_files("grad_gru_ce_all", 4);
    make_node(P("null"));
    const char *bad[][2] = {
        {"--checkpoint", "nodir/c.safetensors"}, {"-o", "nodir/w2.safetensors"},
        {"--checkpoint", "null"}, {"-o", "null"}};
    for (int k = 0; k < 4; k++) {
        const char *ck = strcmp(bad[k][0], "--checkpoint") == 0 ? P(bad[k][1]) : P("c.safetensors");
        const char *out = strcmp(bad[k][0], "-o") == 0 ? P(bad[k][1]) : P("w2.safetensors");
        ASSERT_EXIT(1, run(m, "train", "-w", P("w.safetensors"), "-i", P("x.npy"), "-t",
                           P("t.npy"), "--steps", "300", "--log-every", "1", "--checkpoint", ck,
                           "-o", out, NULL));
        ASSERT_ERR_HAS(bad[k][1]);
        ck_assert_msg(strstr(g_err, "step 1/300") == NULL, "trained first: %s", g_err);
    }
    ASSERT_EXIT(1, GRAD(m, "w.safetensors", "x.npy", "t.npy", "nodir/g.safetensors"));
    ASSERT_ERR_HAS("nodir/g.safetensors");
    ck_assert_str_eq(g_out, ""); /* no loss printed: nothing ran */
    ck_assert(is_node(P("null")));
    ck_assert_str_eq(listing(), "null t.npy w.safetensors x.npy");
}
END_TEST

/* ---- Inputs: FIFOs, sparse and mistaken files ------------------------------------------------ */

START_TEST(test_fifo_input_does_not_block) {
    tiny_files();
    ck_assert_int_eq(mkfifo(P("fifo"), 0666), 0);
    /* Were the FIFO opened for reading, the test would block until Check's timeout. */
    ASSERT_EXIT(1, FORWARD(&tiny, "fifo", "x.npy", "y.npy"));
    ASSERT_ERR_HAS("fifo: not a regular file (a FIFO)");
    ASSERT_EXIT(1, FORWARD(&tiny, "w.safetensors", "fifo", "y.npy"));
    ASSERT_ERR_HAS("fifo: not a regular file (a FIFO)");
    const nnrt_model *m = model_files("grad_gru_ce_all", 4);
    ASSERT_EXIT(1, GRAD(m, "w.safetensors", "x.npy", "fifo", "g.safetensors"));
    ASSERT_ERR_HAS("fifo: not a regular file (a FIFO)");
    ck_assert(!exists(P("y.npy")) && !exists(P("g.safetensors")));
}
END_TEST

START_TEST(test_sparse_npy_is_input_error) {
    tiny_files();
    /* float32 (13e9,): 52 GB of data after a 128-byte header, a hole on disk */
    const char *path = P("big.npy");
    char header[128];
    int n = snprintf(header, sizeof header,
                     "\x93NUMPY\x01%c%c%c{'descr': '<f4', 'fortran_order': False, 'shape': "
                     "(13000000000, 2, 2), }",
                     0, 118, 0);
    memset(header + n, ' ', sizeof header - (size_t)n - 1);
    header[sizeof header - 1] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, header, sizeof header), (ssize_t)sizeof header);
    ck_assert_int_eq(ftruncate(fd, (off_t)(sizeof header + 13000000000ull * 16)), 0);
    close(fd);
    ASSERT_EXIT(1, FORWARD(&tiny, "w.safetensors", "big.npy", "y.npy"));
    ASSERT_ERR_HAS("big.npy: shape (13000000000, 2, 2) of float32 claims 208000000000 bytes");
    ASSERT_ERR_HAS("(208.0 GB)");
    ASSERT_ERR_HAS("sparse");
    unlink(path);
}
END_TEST

START_TEST(test_wrong_kind_of_file) {
    tiny_files();
    write_text(P("notes.txt"), "these are not weights, just some text in a file\n");
    ASSERT_EXIT(1, FORWARD(&tiny, "x.npy", "w.safetensors", "y.npy"));
    ASSERT_ERR_HAS("x.npy: not a safetensors file: it is a .npy file");
    ck_assert_ptr_null(strstr(g_err, "exceeds"));
    ASSERT_EXIT(1, FORWARD(&tiny, "notes.txt", "x.npy", "y.npy"));
    ASSERT_ERR_HAS("notes.txt: not a safetensors file: it looks like text");
    ASSERT_EXIT(1, FORWARD(&tiny, "w.safetensors", "w.safetensors", "y.npy"));
    ASSERT_ERR_HAS("w.safetensors: not a .npy file");
    ASSERT_ERR_HAS("it is a safetensors file");
    ASSERT_EXIT(1, FORWARD(&tiny, "w.safetensors", "notes.txt", "y.npy"));
    ASSERT_ERR_HAS("it looks like text");
}
END_TEST

/* ---- Temporaries of a writer killed mid-write ------------------------------------------------ */

/* Forks a child that opens the atomic file path, writes into it and is killed by SIGKILL. */
static void killed_writer(const char *path) {
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        nnrt_atomic_file f;
        static char data[1 << 16];
        if (nnrt_atomic_open(&f, path) != NNRT_OK) _exit(3);
        nnrt_atomic_write(&f, data, sizeof data);
        fflush(f.fp);
        kill(getpid(), SIGKILL);
        _exit(4);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

START_TEST(test_killed_writer_leaves_nothing) {
    write_text(P("out.bin"), "before");
    killed_writer(P("out.bin"));
    ck_assert_str_eq(listing(), "out.bin"); /* O_TMPFILE: the data never had a name */
    ck_assert(file_equals(P("out.bin"), "before"));
    /* where O_TMPFILE is missing: a named temporary, which the next writer of out.bin removes */
    nnrt__atomic_no_tmpfile = 1;
    killed_writer(P("out.bin"));
    nnrt__atomic_no_tmpfile = 0;
    ck_assert_msg(strncmp(listing(), "out.bin out.bin.tmp.", 20) == 0, "%s", listing());
    char live[64]; /* a live process's temporary (pid 1's) stays */
    snprintf(live, sizeof live, "out.bin.tmp.%d.abcdef", 1);
    write_text(P(live), "live");
    write_text(P("other.bin.tmp.999999999.abcdef"), "another file's");
    nnrt_atomic_file f;
    ck_assert_int_eq(nnrt_atomic_open(&f, P("out.bin")), NNRT_OK);
    nnrt_atomic_abort(&f);
    ck_assert_str_eq(listing(), "other.bin.tmp.999999999.abcdef out.bin out.bin.tmp.1.abcdef");
    ck_assert(file_equals(P("out.bin"), "before"));
}
END_TEST

/* ---- forward and non-finite values ----------------------------------------------------------- */

START_TEST(test_forward_check_finite) {
    float w[TINY_NPARAMS] = {1, 2, 3, 4, 0.5f, -0.5f};
    w[1] = NAN;
    nnrt_tensor t[2] = {{"rnn.weight_ih_l0", NNRT_F32, 2, {TINY_O, TINY_I}, w},
                        {"rnn.bias_ih_l0", NNRT_F32, 1, {TINY_O}, w + TINY_BIAS}};
    ck_assert_int_eq(nnrt_safetensors_write(P("nan.safetensors"), t, 2), NNRT_OK);
    tiny_files();
    /* by default NaN goes through: the outputs it reaches are NaN, exit 0 */
    ck_assert_int_eq(FORWARD(&tiny, "nan.safetensors", "x.npy", "y.npy"), 0);
    nnrt_array y = read_npy(P("y.npy"));
    ck_assert(isnan(((float *)y.data)[0]));
    nnrt_array_free(&y);
    unlink(P("y.npy"));
    fwd_ncalls = 0;
    ASSERT_EXIT(1, run(&tiny, "forward", "-w", P("nan.safetensors"), "-i", P("x.npy"), "-o",
                       P("y.npy"), "--check-finite", NULL));
    ASSERT_ERR_HAS("nan.safetensors: weight rnn.weight_ih_l0 is nan at [0, 1]");
    ck_assert_int_eq(fwd_ncalls, 0);
    /* an infinite input, named by timestep, row and feature */
    write_npy(P("xinf.npy"), NNRT_F32, 3, (int64_t[]){2, TINY_B, TINY_I},
              (double[]){1, 0, 0, 1, 1, 1, 0, -INFINITY});
    ASSERT_EXIT(1, run(&tiny, "forward", "-w", P("w.safetensors"), "-i", P("xinf.npy"), "-o",
                       P("y.npy"), "--check-finite", NULL));
    ASSERT_ERR_HAS("xinf.npy: x[1][1][1] is -inf");
    /* outputs that overflow, named by timestep */
    write_npy(P("xbig.npy"), NNRT_F32, 3, (int64_t[]){2, TINY_B, TINY_I},
              (double[]){1, 0, 0, 1, 3e38, 3e38, 0, 0});
    ASSERT_EXIT(1, run(&tiny, "forward", "-w", P("w.safetensors"), "-i", P("xbig.npy"), "-o",
                       P("y.npy"), "--check-finite", NULL));
    ASSERT_ERR_HAS("the output at step 1 (of 2) is inf at [0, 0]");
    ck_assert(!exists(P("y.npy")));
}
END_TEST

/* ---- The command line ------------------------------------------------------------------------- */

START_TEST(test_getopt_forms) {
    ck_assert_int_eq(run(&tiny, "init", "--seed=7", "-o", P("a.safetensors"), NULL), 0);
    ASSERT_EXIT(2, run(&tiny, "init", "--seed", "7", NULL));
    ASSERT_ERR_STARTS("init: missing -o W.safetensors");
    char attached[600];
    snprintf(attached, sizeof attached, "-o%s", P("b.safetensors"));
    ck_assert_int_eq(run(&tiny, "init", "--seed", "7", attached, NULL), 0);
    ck_assert(same_bytes(P("a.safetensors"), P("b.safetensors")));
    /* what the driver rejected before, it still rejects */
    static const char *const bad_numbers[] = {" 5", "+5", "0x10", "1e3", "-1", "5 ", ""};
    for (size_t k = 0; k < sizeof bad_numbers / sizeof *bad_numbers; k++) {
        char opt[32];
        snprintf(opt, sizeof opt, "--seed=%s", bad_numbers[k]);
        ASSERT_EXIT(2, run(&tiny, "init", opt, "-o", P("c.safetensors"), NULL));
        ASSERT_ERR_HAS("option --seed: expected an unsigned 64-bit integer");
        ASSERT_EXIT(2, run(&tiny, "init", "--seed", bad_numbers[k], "-o", P("c.safetensors"), NULL));
    }
    ASSERT_EXIT(2, run(&tiny, "init", "--seed=1", "--seed", "1", "-o", P("c.safetensors"), NULL));
    ASSERT_ERR_STARTS("init: option --seed given twice");
    ASSERT_EXIT(2, run(&tiny, "init", "-o", P("c.safetensors"), "stray", NULL));
    ASSERT_ERR_STARTS("init: unexpected argument 'stray'");
    ASSERT_EXIT(2, run(&tiny, "init", "-o", P("c.safetensors"), "--", "stray", NULL));
    ASSERT_ERR_STARTS("init: unexpected argument 'stray'");
    ASSERT_EXIT(2, run(&tiny, "init", "--se", "1", "-o", P("c.safetensors"), NULL));
    ASSERT_ERR_STARTS("init: unknown option '--se' (did you mean --seed?)");
    ASSERT_EXIT(2, run(&tiny, "init", "--seed", "1", "--help=yes", NULL));
    ASSERT_ERR_STARTS("init: option --help takes no value");
    ASSERT_EXIT(2, run(&tiny, "init", "-o=x.safetensors", NULL));
    ASSERT_ERR_HAS("starts with '='");
    ASSERT_EXIT(2, run(&tiny, "init", "-x", NULL));
    ASSERT_ERR_STARTS("init: unknown option '-x'");
    ASSERT_EXIT(2, run(&tiny, "init", "--seed", NULL));
    ASSERT_ERR_STARTS("init: option --seed needs a value (N)");
    ASSERT_EXIT(2, run(&tiny, "init", "--bogus\033[2J", NULL));
    ck_assert_msg(strchr(g_err, '\033') == NULL, "a control character reached stderr: %s", g_err);
    ck_assert_str_eq(listing(), "a.safetensors b.safetensors");
}
END_TEST

START_TEST(test_version_and_help) {
    ck_assert_int_eq(run(&tiny, "--version", NULL), 0);
    ck_assert_msg(strncmp(g_out, "tiny (rnnc ", 11) == 0 && strstr(g_out, "runtime ABI") != NULL,
                  "%s", g_out);
    ck_assert_str_eq(g_err, "");
    static const char *const commands[] = {"init", "forward", "grad", "eval", "train", "bench"};
    for (size_t k = 0; k < sizeof commands / sizeof *commands; k++) {
        ck_assert_int_eq(run(&tiny, commands[k], "--help", NULL), 0);
        char usage[64];
        snprintf(usage, sizeof usage, "usage: tiny %s", commands[k]);
        ck_assert_msg(strncmp(g_out, usage, strlen(usage)) == 0, "%s", g_out);
        ck_assert_ptr_nonnull(strstr(g_out, "-h, --help"));
    }
    ck_assert_int_eq(run(&tiny, "--help", NULL), 0);
    ck_assert_ptr_nonnull(strstr(g_out, "tiny eval -w W.safetensors -i X.npy -t TARGET.npy"));
    ck_assert_ptr_nonnull(strstr(g_out, "--version"));
    ck_assert_ptr_nonnull(strstr(g_out, "'--opt=value'"));
}
END_TEST

/* ---- --threads on forward and grad: the same bits as one thread ------------------------------ */

START_TEST(test_forward_grad_threads_bitwise) {
    static const char *const names[] = {"fwd_gru_last_f32", "grad_lstm_mse_all"};
    for (int k = 0; k < 2; k++) {
        const nnrt_model *m = model_named(names[k]);
        init_weights(m, "w.safetensors", "4");
        write_model_x(m, P("x.npy"), 2 * m->seq_len + 1, 21);
        ck_assert_int_eq(run(m, "forward", "-w", P("w.safetensors"), "-i", P("x.npy"), "-o",
                             P("y1.npy"), NULL),
                         0);
        ck_assert_int_eq(run(m, "forward", "-w", P("w.safetensors"), "-i", P("x.npy"), "-o",
                             P("y3.npy"), "--threads", "3", NULL),
                         0);
        ck_assert_msg(same_bytes(P("y1.npy"), P("y3.npy")), "%s: forward differs", names[k]);
        write_model_x(m, P("xs.npy"), m->seq_len, 22);
        write_model_target(m, P("t.npy"), m->seq_len, NNRT_I32, 23);
        ck_assert_int_eq(GRAD(m, "w.safetensors", "xs.npy", "t.npy", "g1.safetensors"), 0);
        char loss1[128];
        snprintf(loss1, sizeof loss1, "%.100s", g_out);
        ck_assert_int_eq(run(m, "grad", "-w", P("w.safetensors"), "-i", P("xs.npy"), "-t",
                             P("t.npy"), "-o", P("g2.safetensors"), "--threads=2", NULL),
                         0);
        ck_assert_str_eq(g_out, loss1);
        ck_assert_msg(same_bytes(P("g1.safetensors"), P("g2.safetensors")), "%s: grad differs",
                      names[k]);
    }
    ASSERT_EXIT(2, run(&tiny, "forward", "-w", P("w.safetensors"), "-i", P("x.npy"), "-o",
                       P("y.npy"), "--threads", "0", NULL));
    ASSERT_ERR_HAS("option --threads: expected a positive integer, found '0'");
}
END_TEST

/* ---- eval, and the --json outputs ---------------------------------------------------------- */

/* The number member key of o, which must be there. */
static double json_number(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    ck_assert_msg(json_is_number(v), "%s: missing or not a number in %s", key, g_out);
    return json_number_value(v);
}

static json_t *parse_out(void) {
    json_error_t e;
    json_t *o = json_loads(g_out, 0, &e);
    ck_assert_msg(json_is_object(o), "not one JSON object: %s (%s)", g_out, e.text);
    return o;
}

START_TEST(test_eval_equals_train_final_loss) {
    /* a stream of 2.5 chunks: eval's loss is train's final loss, over the chunks */
    const nnrt_model *m = model_named("grad_gru_ce_all");
    int64_t T = 2 * m->seq_len + 2;
    model_files("grad_gru_ce_all", -(m->seq_len + 2));
    ck_assert_int_eq(run(m, "train", "-w", P("w.safetensors"), "-i", P("x.npy"), "-t", P("t.npy"),
                         "--steps", "4", "-o", P("w2.safetensors"), NULL),
                     0);
    char final[128];
    snprintf(final, sizeof final, "%.100s", g_out + strlen("final "));
    ck_assert_int_eq(run(m, "eval", "-w", P("w2.safetensors"), "-i", P("x.npy"), "-t", P("t.npy"),
                         NULL),
                     0);
    ck_assert_str_eq(g_out, final);
    ck_assert_str_eq(g_err, "");
    double loss = strtod(g_out + strlen("loss "), NULL);
    ck_assert_int_eq(run(m, "eval", "-w", P("w2.safetensors"), "-i", P("x.npy"), "-t", P("t.npy"),
                         "--json", "--threads", "2", NULL),
                     0);
    json_t *o = parse_out();
    ck_assert_str_eq(json_string_value(json_object_get(o, "model")), m->name);
    ck_assert_double_eq_tol(json_number(o, "loss"), loss, 1e-8 * fabs(loss));
    ck_assert_int_eq((int64_t)json_number(o, "T"), T);
    json_t *chunks = json_object_get(o, "chunks");
    ck_assert_int_eq(json_array_size(chunks), 3);
    double sum = 0;
    for (size_t c = 0; c < 3; c++) {
        json_t *e = json_array_get(chunks, c);
        sum += json_number(e, "loss") * json_number(e, "steps");
        ck_assert_int_eq((int64_t)json_number(e, "steps"), c < 2 ? m->seq_len : 2);
    }
    ck_assert_double_eq_tol(sum / (double)T, loss, 1e-8 * fabs(loss));
    json_decref(o);
    /* train --json: the loss of every step and the final loss */
    ck_assert_int_eq(run(m, "train", "-w", P("w.safetensors"), "-i", P("x.npy"), "-t", P("t.npy"),
                         "--steps", "4", "--json", "-o", P("w3.safetensors"), NULL),
                     0);
    o = parse_out();
    ck_assert_double_eq_tol(json_number(o, "final_loss"), loss, 1e-8 * fabs(loss));
    ck_assert_int_eq((int64_t)json_number(o, "steps"), 4);
    ck_assert_int_eq((int64_t)json_number(o, "first_step"), 0);
    ck_assert_int_eq(json_array_size(json_object_get(o, "losses")), 4);
    json_decref(o);
    ck_assert(same_bytes(P("w2.safetensors"), P("w3.safetensors")));
    /* eval writes nothing, and takes no -o */
    ASSERT_EXIT(2, run(m, "eval", "-w", P("w2.safetensors"), "-i", P("x.npy"), "-t", P("t.npy"),
                       "-o", P("e.safetensors"), NULL));
    ck_assert_str_eq(listing(), "t.npy w.safetensors w2.safetensors w3.safetensors x.npy");
}
END_TEST

START_TEST(test_eval_bad_input) {
    const nnrt_model *m = model_files("grad_gru_ce_last", -1); /* T = seq_len + 1 */
    ASSERT_EXIT(1, run(m, "eval", "-w", P("w.safetensors"), "-i", P("x.npy"), "-t", P("t.npy"),
                       NULL));
    ASSERT_ERR_HAS("output is at the last step only");
    ASSERT_EXIT(1, run(m, "eval", "-w", P("x.npy"), "-i", P("x.npy"), "-t", P("t.npy"), NULL));
    ASSERT_ERR_HAS("not a safetensors file");
    ck_assert_str_eq(g_out, "");
}
END_TEST

/* ---- suite ----------------------------------------------------------------------------------- */

Suite *driver_files_suite(void) {
    Suite *s = suite_create("driver_files");
    TCase *tc;

    tc = tcase("two_roles");
    tcase_add_test(tc, test_same_file_refused);
    tcase_add_test(tc, test_same_file_refused_training);
    suite_add_tcase(s, tc);

    tc = tcase("outputs");
    tcase_add_test(tc, test_nonregular_output_refused);
    tcase_add_test(tc, test_outputs_checked_before_training);
    tcase_add_test(tc, test_killed_writer_leaves_nothing);
    suite_add_tcase(s, tc);

    tc = tcase("inputs");
    tcase_add_test(tc, test_fifo_input_does_not_block);
    tcase_add_test(tc, test_sparse_npy_is_input_error);
    tcase_add_test(tc, test_wrong_kind_of_file);
    tcase_add_test(tc, test_forward_check_finite);
    suite_add_tcase(s, tc);

    tc = tcase("command_line");
    tcase_add_test(tc, test_getopt_forms);
    tcase_add_test(tc, test_version_and_help);
    suite_add_tcase(s, tc);

    tc = tcase("threads_eval");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_forward_grad_threads_bitwise);
    tcase_add_test(tc, test_eval_equals_train_final_loss);
    tcase_add_test(tc, test_eval_bad_input);
    suite_add_tcase(s, tc);

    return s;
}
