/* test_driver_train.c — the driver's training commands, grad and train, against real
 * generated models of the test registry, checked against the descriptor driven by hand. */
#define _XOPEN_SOURCE 700 /* posix_openpt */
#include "driver_test.h"
#include "isa_models.h"

#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Suite *driver_train_suite(void);

/* grad's gradient file and printed loss against the descriptor, for T steps. */
static void check_grad(const char *name, int64_t T, nnrt_dtype cdt, uint64_t seed) {
    const nnrt_model *m = model_named(name);
    char seedtext[24];
    snprintf(seedtext, sizeof seedtext, "%llu", (unsigned long long)seed);
    init_weights(m, "w.safetensors", seedtext);
    write_model_x(m, P("x.npy"), T, seed * 3 + 1);
    write_model_target(m, P("t.npy"), T, cdt, seed * 5 + 2);
    ck_assert_msg(GRAD(m, "w.safetensors", "x.npy", "t.npy", "g.safetensors") == 0, "%s T=%lld: %s",
                  name, (long long)T, g_err);
    ck_assert_str_eq(g_err, "");

    void *params = read_params(m, P("w.safetensors")), *got = read_params(m, P("g.safetensors"));
    nnrt_array x = read_npy(P("x.npy")), t = read_npy(P("t.npy"));
    void *target = loss_target(m, &t);
    hand h = hand_open(m, T);
    m->reset(h.state);
    double loss = hand_chunk(&h, params, x.data, target, 0, 1, NULL);
    ck_assert_msg(memcmp(got, h.grads, m->params_bytes) == 0, "%s T=%lld: gradients differ", name,
                  (long long)T);
    ck_assert_str_eq(g_out, loss_line("loss ", loss));
    /* and the descriptor's loss is nnrt_loss's over the rows of y */
    double direct;
    size_t rows = (m->output_last ? 1 : (size_t)T) * (size_t)m->batch;
    ck_assert_int_eq(nnrt_loss(m->loss_kind, m->dtype, rows, m->output, h.y, target, &direct, NULL),
                     NNRT_OK);
    ck_assert_str_eq(g_out, loss_line("loss ", direct));
    ck_assert(loss > 0);
    hand_close(&h);
    nnrt_free(target);
    nnrt_array_free(&t);
    nnrt_array_free(&x);
    nnrt_free(got);
    nnrt_free(params);
}

START_TEST(test_grad_matches_descriptor) {
    static const char *const names[] = {
        "grad_lstm_mse_all",      "grad_gru_ce_last", "grad_rnn_tanh_bce_all", "grad_lstm_ce_all",
        "grad_rnn_relu_mse_last", "fwd_lstm_all_f32", "fwd_gru_last_f32"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const nnrt_model *m = model_named(names[k]);
        check_grad(names[k], 1, NNRT_I32, k + 1);
        check_grad(names[k], m->seq_len, NNRT_I64, k + 11);
        check_grad(names[k], (m->seq_len + 1) / 2, NNRT_I32, k + 21);
    }
    ck_assert_str_eq(listing(), "g.safetensors t.npy w.safetensors x.npy");
}
END_TEST

START_TEST(test_grad_int64_equals_int32) {
    static const char *const names[] = {"grad_gru_ce_last", "grad_lstm_ce_all", "fwd_gru_last_f32"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const nnrt_model *m = model_named(names[k]);
        init_weights(m, "w.safetensors", "4");
        write_model_x(m, P("x.npy"), m->seq_len, 99);
        write_model_target(m, P("t32.npy"), m->seq_len, NNRT_I32, 7);
        write_model_target(m, P("t64.npy"), m->seq_len, NNRT_I64, 7);
        ck_assert_int_eq(GRAD(m, "w.safetensors", "x.npy", "t32.npy", "g32.safetensors"), 0);
        char out32[256];
        snprintf(out32, sizeof out32, "%.200s", g_out);
        ck_assert_int_eq(GRAD(m, "w.safetensors", "x.npy", "t64.npy", "g64.safetensors"), 0);
        ck_assert_str_eq(g_out, out32);
        ck_assert(same_bytes(P("g32.safetensors"), P("g64.safetensors")));
    }
}
END_TEST

/* Expects exit code want and an error line containing text, and no output file. */
#define ASSERT_FAILS(want, text, call)                                                             \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        ck_assert_msg(rc_ == (want), "exit %d, stderr: %s", rc_, g_err);                           \
        ASSERT_ERR_HAS(": error: ");                                                               \
        ASSERT_ERR_HAS(text);                                                                      \
        ck_assert_str_eq(g_out, "");                                                               \
    } while (0)

START_TEST(test_grad_bad_input) {
    const nnrt_model *mse = model_named("grad_lstm_mse_all");    /* f64, [T][B][O] = [T][2][2] */
    const nnrt_model *ce_last = model_named("grad_gru_ce_last"); /* [B] = [2], 3 classes */
    const nnrt_model *ce_all = model_named("grad_lstm_ce_all");
    init_weights(mse, "mse.safetensors", "1");
    init_weights(ce_last, "cel.safetensors", "1");
    init_weights(ce_all, "cea.safetensors", "1");
    write_model_x(mse, P("x3.npy"), 3, 1);
    write_model_x(mse, P("x6.npy"), 6, 1);
    write_model_target(mse, P("t6.npy"), 6, NNRT_I32, 1);
    static const double vals[64];

    /* wrong dtype */
    write_npy(P("t.npy"), NNRT_F32, 3, (int64_t[]){3, 2, 2}, vals);
    ASSERT_FAILS(1, "t.npy: expected dtype float64, the model's (loss mse), found float32",
                 GRAD(mse, "mse.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    write_npy(P("t.npy"), NNRT_I64, 3, (int64_t[]){3, 2, 2}, vals);
    ASSERT_FAILS(1, "found int64",
                 GRAD(mse, "mse.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    write_npy(P("t.npy"), NNRT_F64, 1, (int64_t[]){2}, vals);
    ASSERT_FAILS(
        1, "t.npy: expected class indices, int32 or int64 (loss cross_entropy), found float64",
        GRAD(ce_last, "cel.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    /* wrong shape */
    write_npy(P("t.npy"), NNRT_F64, 3, (int64_t[]){4, 2, 2}, vals);
    ASSERT_FAILS(1, "t.npy: expected shape [3, 2, 2] ([T, batch, output] with T = 3 as in ",
                 GRAD(mse, "mse.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    ASSERT_ERR_HAS("x3.npy), found [4, 2, 2]");
    write_npy(P("t.npy"), NNRT_F64, 3, (int64_t[]){3, 2, 3}, vals);
    ASSERT_FAILS(1, "found [3, 2, 3]",
                 GRAD(mse, "mse.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    write_npy(P("t.npy"), NNRT_F64, 2, (int64_t[]){6, 2}, vals);
    ASSERT_FAILS(1, "found [6, 2]",
                 GRAD(mse, "mse.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    write_npy(P("t.npy"), NNRT_I32, 2, (int64_t[]){3, 2}, vals);
    ASSERT_FAILS(1,
                 "t.npy: expected shape [2] ([batch] class indices: output at the last step only), "
                 "found [3, 2]",
                 GRAD(ce_last, "cel.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    write_npy(P("t.npy"), NNRT_I32, 1, (int64_t[]){2}, vals);
    ASSERT_FAILS(1, "expected shape [3, 2] ([T, batch] class indices with T = 3 as in",
                 GRAD(ce_all, "cea.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    /* class index out of range, named */
    write_npy(P("t.npy"), NNRT_I32, 1, (int64_t[]){2}, (double[]){0, -1});
    ASSERT_FAILS(1, "t.npy: target[1] = -1 is not a class index in 0..2",
                 GRAD(ce_last, "cel.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    write_npy(P("t.npy"), NNRT_I64, 1, (int64_t[]){2}, (double[]){3, 0});
    ASSERT_FAILS(1, "t.npy: target[0] = 3 is not a class index in 0..2",
                 GRAD(ce_last, "cel.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    /* int64 beyond int32 must not wrap around into a valid class */
    write_npy(P("t.npy"), NNRT_I64, 2, (int64_t[]){3, 2}, (double[]){0, 1, 2, 0, 1, 4294967297.0});
    ASSERT_FAILS(1, "t.npy: target[2][1] = 4294967297 is not a class index in 0..",
                 GRAD(ce_all, "cea.safetensors", "x3.npy", "t.npy", "g.safetensors"));
    /* T larger than seq_len: suggests train */
    ASSERT_FAILS(1, "x6.npy: T = 6 steps is more than seq_len 5: grad takes one sequence",
                 GRAD(mse, "mse.safetensors", "x6.npy", "t6.npy", "g.safetensors"));
    ASSERT_ERR_HAS("use 'train' for truncated BPTT");
    /* X of the wrong dtype, weights of another model */
    write_npy(P("x32.npy"), NNRT_F32, 3, (int64_t[]){3, 2, 3}, vals);
    ASSERT_FAILS(1, "x32.npy: expected dtype float64, found float32",
                 GRAD(mse, "mse.safetensors", "x32.npy", "t6.npy", "g.safetensors"));
    write_model_target(mse, P("t3.npy"), 3, NNRT_I32, 1);
    ASSERT_FAILS(1, "cel.safetensors",
                 GRAD(mse, "cel.safetensors", "x3.npy", "t3.npy", "g.safetensors"));
    /* NaN in the data: in the target, the loss is nan */
    double tnan[3 * 2 * 2] = {0};
    tnan[5] = NAN;
    write_npy(P("tnan.npy"), NNRT_F64, 3, (int64_t[]){3, 2, 2}, tnan);
    ASSERT_FAILS(1, "error: loss is nan",
                 GRAD(mse, "mse.safetensors", "x3.npy", "tnan.npy", "g.safetensors"));
    /* in X, the relu of the first head layer hides it from the loss, not from the gradient,
     * which names the first bad element */
    double xnan[3 * 2 * 3] = {0};
    xnan[4] = NAN; /* x[0][1][1] */
    write_npy(P("xnan.npy"), NNRT_F64, 3, (int64_t[]){3, 2, 3}, xnan);
    ASSERT_FAILS(1, "error: the gradient of rnn.weight_ih_l0 is nan at [0, 0] (loss ",
                 GRAD(mse, "mse.safetensors", "xnan.npy", "t3.npy", "g.safetensors"));
    /* usage */
    ck_assert_int_eq(run(mse, "grad", "-w", P("mse.safetensors"), "-i", P("x3.npy"), "-o",
                         P("g.safetensors"), NULL),
                     2);
    ASSERT_ERR_HAS("grad: missing -t TARGET.npy");
    /* a model without training entry points (the hand-written tiny one) */
    write_known_weights(P("tiny.safetensors"), NNRT_F32);
    write_npy(P("tx.npy"), NNRT_F32, 3, (int64_t[]){2, TINY_B, TINY_I}, known_x);
    write_npy(P("ty.npy"), NNRT_F32, 3, (int64_t[]){2, TINY_B, TINY_O}, known_y);
    ASSERT_FAILS(2, "model tiny has no training entry points",
                 GRAD(&tiny, "tiny.safetensors", "tx.npy", "ty.npy", "g.safetensors"));
    ck_assert(!exists(P("g.safetensors")));
}
END_TEST

/* ---- train ---------------------------------------------------------------------------------- */

/* `M train -w W -i X -t T -o OUT [more options...]`: up to 12 more arguments, NULL-terminated. */
#define TRAIN(m, w, x, t, out, ...)                                                                \
    run(m, "train", "-w", P(w), "-i", P(x), "-t", P(t), "-o", P(out), __VA_ARGS__)

START_TEST(test_train_reduces_loss) {
    /* Learnable: the target at each step is half the first two input features. */
    const nnrt_model *m =
        model_named("fwd_gru_all_f32"); /* input 5, output 2, seq_len 9, batch 2 */
    enum { T = 9 };
    double x[T * 2 * 5], t[T * 2 * 2];
    lcg = 12345;
    for (int i = 0; i < T * 2 * 5; i++) x[i] = urand() * 2 - 1;
    for (int r = 0; r < T * 2; r++)
        for (int o = 0; o < 2; o++) t[r * 2 + o] = (float)(0.5 * (float)x[r * 5 + o]);
    write_npy(P("x.npy"), NNRT_F32, 3, (int64_t[]){T, 2, 5}, x);
    write_npy(P("t.npy"), NNRT_F32, 3, (int64_t[]){T, 2, 2}, t);
    init_weights(m, "w.safetensors", "5");
    ck_assert_int_eq(GRAD(m, "w.safetensors", "x.npy", "t.npy", "g.safetensors"), 0);
    double before = strtod(g_out + strlen("loss "), NULL);
    ck_assert_int_eq(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "w2.safetensors", "--steps", "300",
                           "--lr", "0.01", NULL),
                     0);
    ck_assert_msg(strncmp(g_out, "final loss ", 11) == 0, "stdout: %s", g_out);
    double after = strtod(g_out + strlen("final loss "), NULL);
    ck_assert_msg(after < 0.1 * before, "loss %g -> %g", before, after);
    /* the final loss is the trained weights' loss over X: what grad reports for them */
    char final[128];
    snprintf(final, sizeof final, "%.100s", g_out + strlen("final "));
    ck_assert_int_eq(GRAD(m, "w2.safetensors", "x.npy", "t.npy", "g2.safetensors"), 0);
    ck_assert_str_eq(g_out, final);
    /* and the run equals training by hand through the descriptor */
    void *params = read_params(m, P("w.safetensors")), *got = read_params(m, P("w2.safetensors"));
    nnrt_optim_config cfg = nnrt_optim_defaults(NNRT_OPT_ADAM);
    cfg.lr = 0.01;
    double hand_loss = hand_train(m, params, P("x.npy"), P("t.npy"), 300, &cfg, 0);
    ck_assert_str_eq(final, loss_line("loss ", hand_loss));
    ck_assert(memcmp(params, got, m->params_bytes) == 0);
    nnrt_free(got);
    nnrt_free(params);
}
END_TEST

/* train with the given options (NULL-terminated) against hand_train with cfg and clip. */
static void check_train_by_hand(const char *name, int64_t T, nnrt_dtype cdt, int64_t steps,
                                const nnrt_optim_config *cfg, double clip, ...) {
    const nnrt_model *m = model_named(name);
    init_weights(m, "w.safetensors", "9");
    write_model_x(m, P("x.npy"), T, 77);
    write_model_target(m, P("t.npy"), T, cdt, 78);
    char *argv_extra[16] = {0};
    int n = 0;
    va_list ap;
    va_start(ap, clip);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 15) argv_extra[n++] = (char *)a;
    va_end(ap);
    argv_extra[n] = NULL;
    char steps_text[24];
    snprintf(steps_text, sizeof steps_text, "%lld", (long long)steps);
    ck_assert_int_le(n, 12);
    int rc = run(m, "train", "-w", P("w.safetensors"), "-i", P("x.npy"), "-t", P("t.npy"), "-o",
                 P("w2.safetensors"), "--steps", steps_text, argv_extra[0], argv_extra[1],
                 argv_extra[2], argv_extra[3], argv_extra[4], argv_extra[5], argv_extra[6],
                 argv_extra[7], argv_extra[8], argv_extra[9], argv_extra[10], argv_extra[11], NULL);
    ck_assert_msg(rc == 0, "%s: %s", name, g_err);
    void *params = read_params(m, P("w.safetensors")), *got = read_params(m, P("w2.safetensors"));
    double final = hand_train(m, params, P("x.npy"), P("t.npy"), steps, cfg, clip);
    ck_assert_str_eq(g_out, loss_line("final loss ", final));
    ck_assert_msg(memcmp(params, got, m->params_bytes) == 0, "%s: parameters differ", name);
    nnrt_free(got);
    nnrt_free(params);
}

START_TEST(test_train_tbptt_by_hand) {
    nnrt_optim_config adam = nnrt_optim_defaults(NNRT_OPT_ADAM);
    adam.lr = 0.01;
    /* seq_len 5, T 13: chunks of 5, 5 and 3; 8 steps wrap the stream twice */
    check_train_by_hand("grad_rnn_tanh_bce_all", 13, NNRT_I32, 8, &adam, 0, "--lr", "0.01", NULL);
    check_train_by_hand("grad_lstm_ce_all", 11, NNRT_I64, 7, &adam, 0, "--lr", "0.01", NULL);
    /* f32, seq_len 9, T 20: chunks of 9, 9 and 2; SGD with Nesterov, weight decay and clipping */
    nnrt_optim_config sgd = nnrt_optim_defaults(NNRT_OPT_SGD);
    sgd.lr = 0.05, sgd.momentum = 0.9, sgd.nesterov = 1, sgd.weight_decay = 0.01;
    check_train_by_hand("fwd_lstm_all_f32", 20, NNRT_I32, 7, &sgd, 0.5, "--optim", "sgd", "--lr",
                        "0.05", "--momentum", "0.9", "--nesterov", "--weight-decay", "0.01",
                        "--clip", "0.5", NULL);
    /* T a multiple of seq_len: chunks of 5 and 5 */
    nnrt_optim_config adamw = nnrt_optim_defaults(NNRT_OPT_ADAMW);
    check_train_by_hand("grad_gru_mse_all", 10, NNRT_I32, 5, &adamw, 0, "--optim", "adamw", NULL);
    /* T <= seq_len: every step on the whole sequence from the zero state, output_last too */
    check_train_by_hand("grad_gru_ce_last", 4, NNRT_I64, 6, &adam, 0, "--lr", "0.01", NULL);
    check_train_by_hand("fwd_gru_last_f32", 9, NNRT_I32, 3, &adam, 1e-3, "--clip", "1e-3", "--lr",
                        "0.01", NULL);
}
END_TEST

/* Runs `train --steps N` straight and split at `split` with --resume, for the given extra
 * options (at most 6), and checks both end bit for bit the same. */
static void check_resume(const char *name, int64_t T, int64_t split, int64_t steps,
                         const char *const *opts) {
    const nnrt_model *m = model_named(name);
    init_weights(m, "w.safetensors", "3");
    write_model_x(m, P("x.npy"), T, 5);
    write_model_target(m, P("t.npy"), T, NNRT_I64, 6);
    char s_split[24], s_steps[24];
    snprintf(s_split, sizeof s_split, "%lld", (long long)split);
    snprintf(s_steps, sizeof s_steps, "%lld", (long long)steps);
    const char *o[6] = {0};
    for (int k = 0; k < 6 && opts[k]; k++) o[k] = opts[k];

    unlink(P("c.safetensors"));
    unlink(P("c.safetensors.stream"));
    ck_assert_msg(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "full.safetensors", "--steps",
                        s_steps, "--checkpoint", P("full_ckpt.safetensors"), o[0], o[1], o[2], o[3],
                        o[4], o[5], NULL) == 0,
                  "%s", g_err);
    char full_out[128];
    snprintf(full_out, sizeof full_out, "%.100s", g_out);
    ck_assert_msg(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "a.safetensors", "--steps", s_split,
                        "--checkpoint", P("c.safetensors"), o[0], o[1], o[2], o[3], o[4], o[5],
                        NULL) == 0,
                  "%s", g_err);
    ck_assert_msg(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "b.safetensors", "--steps", s_steps,
                        "--checkpoint", P("c.safetensors"), "--resume", o[0], o[1], o[2], o[3],
                        o[4], o[5], NULL) == 0,
                  "%s", g_err);
    ck_assert_str_eq(g_out, full_out);
    ck_assert_msg(same_bytes(P("full.safetensors"), P("b.safetensors")), "%s: weights differ",
                  name);
    ck_assert_msg(same_bytes(P("full_ckpt.safetensors"), P("c.safetensors")),
                  "%s: checkpoints differ", name);
    /* the resumed run started from the checkpoint, not from -w: a's weights differ from b's */
    ck_assert(!same_bytes(P("a.safetensors"), P("b.safetensors")));
}

START_TEST(test_train_resume_bitwise) {
    /* whole sequences */
    check_resume("grad_lstm_mse_all", 4, 6, 10, (const char *const[]){NULL});
    check_resume("fwd_lstm_all_f32", 9, 3, 7,
                 (const char *const[]){"--optim", "sgd", "--momentum", "0.9", "--clip", "0.1"});
    check_resume("grad_gru_ce_last", 5, 2, 5, (const char *const[]){"--optim", "adamw", NULL});
    /* a stream of 12 steps in chunks of 5, 5, 2: stopped inside the stream, at a wrap, and
     * with checkpoints along the way */
    check_resume("grad_gru_mse_all", 12, 4, 7, (const char *const[]){"--lr", "0.01", NULL});
    check_resume("grad_gru_mse_all", 12, 3, 7, (const char *const[]){"--lr", "0.01", NULL});
    check_resume("grad_rnn_tanh_ce_all", 12, 5, 11,
                 (const char *const[]){"--every", "2", "--optim", "sgd", "--momentum", "0.5"});
    ck_assert(exists(P("c.safetensors.stream")));
}
END_TEST

START_TEST(test_train_resume_at_end) {
    /* resuming a finished run trains no further: same weights, same final loss */
    const nnrt_model *m = model_named("grad_rnn_relu_mse_all");
    init_weights(m, "w.safetensors", "1");
    write_model_x(m, P("x.npy"), 4, 1);
    write_model_target(m, P("t.npy"), 4, NNRT_I32, 2);
    ck_assert_int_eq(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "a.safetensors", "--steps", "3",
                           "--checkpoint", P("c.safetensors"), NULL),
                     0);
    char out[128];
    snprintf(out, sizeof out, "%.100s", g_out);
    size_t n;
    char *before = read_bytes(P("c.safetensors"), &n);
    ck_assert_int_eq(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "b.safetensors", "--steps", "3",
                           "--checkpoint", P("c.safetensors"), "--resume", NULL),
                     0);
    ck_assert_str_eq(g_out, out);
    ck_assert_str_eq(g_err, "");
    ck_assert(same_bytes(P("a.safetensors"), P("b.safetensors")));
    size_t n2;
    char *after = read_bytes(P("c.safetensors"), &n2);
    ck_assert(n == n2 && memcmp(before, after, n) == 0);
    free(before);
    free(after);
    /* past the end: an error naming the step */
    ASSERT_FAILS(1, "c.safetensors: the checkpoint is at step 3, past --steps 2",
                 TRAIN(m, "w.safetensors", "x.npy", "t.npy", "d.safetensors", "--steps", "2",
                       "--checkpoint", P("c.safetensors"), "--resume", NULL));
    ASSERT_ERR_HAS("--steps counts all the steps");
    ck_assert(!exists(P("d.safetensors")));
}
END_TEST

/* train --threads N trains bit for bit as one thread: a model generated with parallel = "split"
 * (every layer-step shared), one with "wavefront", and one left to auto. */
START_TEST(test_train_threads_bitwise) {
    const char *names[] = {"isa_threads_lstm_gru_f32", "isa_lstm_ce_all_f64", "grad_gru_mse_all"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const nnrt_model *m = NULL;
        for (int k = 0; k < rnnc_isa_pair_count; k++)
            if (strcmp(rnnc_isa_pairs[k].scalar->name, names[i]) == 0) m = rnnc_isa_pairs[k].scalar;
        if (!m) m = model_named(names[i]);
        ck_assert_ptr_nonnull(m);
        init_weights(m, "w.safetensors", "3");
        write_model_x(m, P("x.npy"), m->seq_len, 5);
        write_model_target(m, P("t.npy"), m->seq_len, NNRT_I32, 6);
        ck_assert_int_eq(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "one.safetensors", "--steps", "3", NULL), 0);
        ck_assert_int_eq(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "two.safetensors", "--steps", "3", "--threads", "2",
                               NULL),
                         0);
        ck_assert_int_eq(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "three.safetensors", "--steps", "3", "--threads",
                               "3", NULL),
                         0);
        ck_assert_msg(same_bytes(P("one.safetensors"), P("two.safetensors")), "%s: 2 threads", m->name);
        ck_assert_msg(same_bytes(P("one.safetensors"), P("three.safetensors")), "%s: 3 threads", m->name);
    }
    ASSERT_FAILS(2, "option --threads: 65 threads requested, at most 64",
                 TRAIN(model_named("grad_gru_mse_all"), "w.safetensors", "x.npy", "t.npy", "z.safetensors", "--threads",
                       "65", NULL));
}
END_TEST

/* A stream of 12 steps in chunks of 5 (grad_gru_mse_all) whose second chunk holds a NaN. */
START_TEST(test_train_nan_stops) {
    const nnrt_model *m = model_named("grad_gru_mse_all");
    init_weights(m, "w.safetensors", "2");
    write_model_target(m, P("t.npy"), 12, NNRT_I32, 3);
    nnrt_array t;
    write_model_x(m, P("x.npy"), 12, 4);
    t = read_npy(P("t.npy"));
    ((double *)t.data)[7 * 2 * 2 + 3] = NAN; /* t 7, b 1, o 1: chunk 2 */
    ck_assert_int_eq(nnrt_npy_write(P("tnan.npy"), &t), NNRT_OK);
    nnrt_array_free(&t);

    int rc = TRAIN(m, "w.safetensors", "x.npy", "tnan.npy", "w2.safetensors", "--steps", "5",
                   "--checkpoint", P("c.safetensors"), "--every", "1", NULL);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(g_err, "step 1/5 loss ") == g_err, "stderr: %s", g_err);
    ck_assert_msg(strstr(g_err, "\ngrad_gru_mse_all: error: step 2: loss is nan\n") != NULL,
                  "stderr: %s", g_err);
    ck_assert_str_eq(g_out, "");
    ck_assert(!exists(P("w2.safetensors")));
    /* the checkpoint is step 1's, as training by hand gives it */
    nnrt_optim o;
    nnrt_optim_config cfg = nnrt_optim_defaults(NNRT_OPT_ADAM);
    ck_assert_int_eq(nnrt_optim_init(&o, &cfg, m->dtype, m->num_params), NNRT_OK);
    void *ckpt = nnrt_alloc(m->params_bytes), *params = read_params(m, P("w.safetensors"));
    ck_assert_msg(nnrt_checkpoint_load(P("c.safetensors"), m, ckpt, &o) == NNRT_OK, "%s",
                  nnrt_last_error());
    ck_assert_int_eq(o.step, 1);
    hand_train(m, params, P("x.npy"), P("tnan.npy"), 1, &cfg, 0);
    ck_assert(memcmp(params, ckpt, m->params_bytes) == 0);
    nnrt_optim_free(&o);
    nnrt_free(ckpt);
    nnrt_free(params);

    /* resuming on the bad data fails at once and leaves the last good checkpoint as it was */
    size_t n, n2;
    char *before = read_bytes(P("c.safetensors"), &n);
    ASSERT_FAILS(1, "error: step 2: loss is nan",
                 TRAIN(m, "w.safetensors", "x.npy", "tnan.npy", "w2.safetensors", "--steps", "5",
                       "--checkpoint", P("c.safetensors"), "--resume", NULL));
    char *after = read_bytes(P("c.safetensors"), &n2);
    ck_assert(n == n2 && memcmp(before, after, n) == 0);
    free(after);
    ck_assert(!exists(P("w2.safetensors")));

    /* NaN in X, hidden from the loss by a relu in the head, not from the gradient */
    nnrt_array x = read_npy(P("x.npy"));
    ((double *)x.data)[7 * 2 * 3 + 4] = NAN; /* t 7, b 1, i 1: chunk 2 */
    ck_assert_int_eq(nnrt_npy_write(P("xnan.npy"), &x), NNRT_OK);
    nnrt_array_free(&x);
    ASSERT_FAILS(1, "error: step 2: the gradient of rnn.weight_ih_l0 is nan at [0, 0] (loss ",
                 TRAIN(m, "w.safetensors", "xnan.npy", "t.npy", "w2.safetensors", "--steps", "5",
                       "--checkpoint", P("c.safetensors"), "--resume", NULL));
    after = read_bytes(P("c.safetensors"), &n2);
    ck_assert(n == n2 && memcmp(before, after, n) == 0);
    free(after);
    free(before);

    /* an infinite target on a whole sequence: step 1 */
    write_model_x(m, P("x5.npy"), 5, 4);
    write_model_target(m, P("t5.npy"), 5, NNRT_I32, 3);
    double tv[5 * 2 * 2] = {0};
    tv[3] = INFINITY;
    write_npy(P("tinf.npy"), NNRT_F64, 3, (int64_t[]){5, 2, 2}, tv);
    ASSERT_FAILS(
        1, "error: step 1: loss is inf",
        TRAIN(m, "w.safetensors", "x5.npy", "tinf.npy", "w2.safetensors", "--steps", "5", NULL));
    /* a learning rate that blows the parameters up */
    ASSERT_FAILS(
        1, "error: step 1: the update made the parameters non-finite (lower --lr",
        TRAIN(m, "w.safetensors", "x5.npy", "t5.npy", "w2.safetensors", "--lr", "1e308", NULL));
    ck_assert(!exists(P("w2.safetensors")));
    ck_assert_str_eq(listing(), "c.safetensors c.safetensors.stream t.npy t5.npy tinf.npy "
                                "tnan.npy w.safetensors x.npy x5.npy xnan.npy");
}
END_TEST

START_TEST(test_train_bad_options) {
    const nnrt_model *m = model_named("grad_lstm_mse_all");
    init_weights(m, "w.safetensors", "1");
    write_model_x(m, P("x.npy"), 3, 1);
    write_model_target(m, P("t.npy"), 3, NNRT_I32, 1);
#define BAD(text, ...)                                                                             \
    ASSERT_FAILS(2, text,                                                                          \
                 TRAIN(m, "w.safetensors", "x.npy", "t.npy", "w2.safetensors", __VA_ARGS__, NULL))
    BAD("option --optim: expected adam, adamw or sgd, found 'rmsprop'", "--optim", "rmsprop");
    BAD("option --optim: expected adam, adamw or sgd, found 'Adam'", "--optim", "Adam");
    static const char *const bad_counts[] = {"0",   "-1", "+1",  "1.5",  "",
                                             "abc", " 1", "1e3", "0x10", "9223372036854775808"};
    for (size_t k = 0; k < sizeof bad_counts / sizeof bad_counts[0]; k++) {
        BAD("option --steps: expected a positive integer, found '", "--steps", bad_counts[k]);
        BAD("option --log-every: expected a positive integer", "--log-every", bad_counts[k]);
        BAD("option --every: expected a positive integer", "--every", bad_counts[k], "--checkpoint",
            P("c.safetensors"));
    }
    static const char *const bad_reals[] = {"-1",    "-0.1", "+1", "",      "nan",  "inf", "1e",
                                            "0x1p3", " 1",   "1 ", "1e999", "1..2", "e5",  "1,5"};
    for (size_t k = 0; k < sizeof bad_reals / sizeof bad_reals[0]; k++) {
        BAD("option --lr: expected a finite number >= 0, found '", "--lr", bad_reals[k]);
        BAD("option --weight-decay: expected a finite number >= 0", "--weight-decay", bad_reals[k]);
        BAD("option --clip: expected a finite number > 0", "--clip", bad_reals[k]);
        BAD("option --momentum: expected a finite number >= 0", "--optim", "sgd", "--momentum",
            bad_reals[k]);
    }
    BAD("option --clip: expected a finite number > 0, found '0'", "--clip", "0");
    BAD("option --momentum applies to --optim sgd only", "--momentum", "0.9");
    BAD("option --nesterov applies to --optim sgd only", "--optim", "adamw", "--nesterov");
    BAD("option --nesterov needs --momentum > 0", "--optim", "sgd", "--nesterov");
    BAD("option --nesterov needs --momentum > 0", "--optim", "sgd", "--nesterov", "--momentum",
        "0");
    BAD("option --every needs --checkpoint", "--every", "2");
    BAD("option --resume needs --checkpoint", "--resume");
    BAD("-o and --checkpoint name the same file", "--checkpoint", P("w2.safetensors"));
    BAD("train: unexpected argument '1'", "--nesterov", "1");
    BAD("train: option --steps given twice", "--steps", "1", "--steps", "2");
    BAD("train: unknown option '--epochs'", "--epochs", "3");
    BAD("train: option --lr needs a value", "--lr");
#undef BAD
    ck_assert_int_eq(run(m, "train", "-w", P("w.safetensors"), "-i", P("x.npy"), "-o",
                         P("w2.safetensors"), NULL),
                     2);
    ASSERT_ERR_HAS("train: missing -t TARGET.npy");
    ASSERT_ERR_HAS(
        "usage: grad_lstm_mse_all train -w W.safetensors -i X.npy -t TARGET.npy [--steps N]");
    ck_assert_str_eq(listing(), "t.npy w.safetensors x.npy");
}
END_TEST

START_TEST(test_train_bad_input) {
    const nnrt_model *last = model_named("grad_lstm_mse_last"); /* seq_len 5 */
    init_weights(last, "wl.safetensors", "1");
    write_model_x(last, P("xl.npy"), 6, 1);
    write_model_target(last, P("tl.npy"), 6, NNRT_I32, 1);
    ASSERT_FAILS(1,
                 "xl.npy: T = 6 steps is more than seq_len 5, and this model's output is at the "
                 "last step only",
                 TRAIN(last, "wl.safetensors", "xl.npy", "tl.npy", "w2.safetensors", NULL));
    ASSERT_ERR_HAS("needs output_at = \"all\"");

    const nnrt_model *m = model_named("grad_gru_mse_all"); /* seq_len 5 */
    init_weights(m, "w.safetensors", "1");
    write_model_x(m, P("x.npy"), 12, 1);
    write_model_target(m, P("t.npy"), 12, NNRT_I32, 1);
    write_model_target(m, P("t11.npy"), 11, NNRT_I32, 1);
    ASSERT_FAILS(1, "t11.npy: expected shape [12, 2, 2]",
                 TRAIN(m, "w.safetensors", "x.npy", "t11.npy", "w2.safetensors", NULL));
    ASSERT_FAILS(1, "nope.safetensors",
                 TRAIN(m, "w.safetensors", "x.npy", "t.npy", "w2.safetensors", "--checkpoint",
                       P("nope.safetensors"), "--resume", NULL));
    /* an Adam checkpoint resumed with SGD */
    ck_assert_int_eq(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "w2.safetensors", "--steps", "2",
                           "--checkpoint", P("c.safetensors"), NULL),
                     0);
    ASSERT_FAILS(1, "c.safetensors: the checkpoint holds the state of Adam",
                 TRAIN(m, "w.safetensors", "x.npy", "t.npy", "w3.safetensors", "--steps", "4",
                       "--checkpoint", P("c.safetensors"), "--resume", "--optim", "sgd", NULL));
    /* step 2 is inside the stream: resuming needs the carried state, for this stream */
    ck_assert_int_eq(rename(P("c.safetensors.stream"), P("saved.stream")), 0);
    ASSERT_FAILS(1, "resuming at step 2, inside the stream, needs the carried state",
                 TRAIN(m, "w.safetensors", "x.npy", "t.npy", "w3.safetensors", "--steps", "4",
                       "--checkpoint", P("c.safetensors"), "--resume", NULL));
    ASSERT_ERR_HAS("c.safetensors.stream");
    ck_assert_int_eq(rename(P("saved.stream"), P("c.safetensors.stream")), 0);
    write_model_x(m, P("x13.npy"), 13, 1);
    write_model_target(m, P("t13.npy"), 13, NNRT_I32, 1);
    ASSERT_FAILS(1, "c.safetensors.stream: saved for a stream of 12 steps, but ",
                 TRAIN(m, "w.safetensors", "x13.npy", "t13.npy", "w3.safetensors", "--steps", "4",
                       "--checkpoint", P("c.safetensors"), "--resume", NULL));
    ASSERT_ERR_HAS("x13.npy has 13");
    ck_assert(!exists(P("w3.safetensors")));
    /* a checkpoint of another model */
    write_model_x(last, P("xl5.npy"), 5, 1);
    write_model_target(last, P("tl5.npy"), 5, NNRT_I32, 1);
    ASSERT_FAILS(1, "c.safetensors",
                 TRAIN(last, "wl.safetensors", "xl5.npy", "tl5.npy", "w3.safetensors",
                       "--checkpoint", P("c.safetensors"), "--resume", NULL));
    ck_assert(!exists(P("w3.safetensors")));
}
END_TEST

/* The progress lines on a non-terminal stderr, and stdout holding the final loss only. */
START_TEST(test_train_progress) {
    const nnrt_model *m = model_named("grad_rnn_tanh_mse_all");
    init_weights(m, "w.safetensors", "1");
    write_model_x(m, P("x.npy"), 5, 1);
    write_model_target(m, P("t.npy"), 5, NNRT_I32, 1);
    ck_assert_int_eq(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "w2.safetensors", "--steps", "7",
                           "--log-every", "3", NULL),
                     0);
    const char *want[] = {"step 3/7 loss ", "step 6/7 loss ", "step 7/7 loss "};
    const char *line = g_err;
    for (int k = 0; k < 3; k++) {
        ck_assert_msg(strncmp(line, want[k], strlen(want[k])) == 0, "stderr: %s", g_err);
        const char *end = strchr(line, '\n');
        ck_assert_ptr_nonnull(end);
        ck_assert_msg(end - line > 9 && strncmp(end - 8, " steps/s", 8) == 0, "stderr: %s", g_err);
        line = end + 1;
    }
    ck_assert_str_eq(line, "");
    ck_assert_msg(strncmp(g_out, "final loss ", 11) == 0 &&
                      strchr(g_out, '\n') == g_out + strlen(g_out) - 1,
                  "stdout: %s", g_out);
    /* default: about 20 lines */
    ck_assert_int_eq(
        TRAIN(m, "w.safetensors", "x.npy", "t.npy", "w2.safetensors", "--steps", "50", NULL), 0);
    int lines = 0;
    for (const char *p = g_err; *p; p++) lines += *p == '\n';
    ck_assert_int_eq(lines, 17); /* every 3 steps, and at step 50 */
    ck_assert_ptr_nonnull(strstr(g_err, "step 3/50 loss "));
    ck_assert_ptr_nonnull(strstr(g_err, "step 48/50 loss "));
    ck_assert_ptr_nonnull(strstr(g_err, "step 50/50 loss "));
}
END_TEST

/* On a terminal: one line redrawn in place, finished by a newline; an error starts on a line of
 * its own. The terminal turns each "\n" into "\r\n". */
START_TEST(test_train_progress_terminal) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        if (master >= 0) close(master);
        return; /* no pseudo-terminals here: nothing to test */
    }
    int hold = open(ptsname(master), O_RDWR | O_NOCTTY); /* keeps the terminal open between runs */
    ck_assert_int_ge(hold, 0);
    ck_assert_int_eq(fcntl(master, F_SETFL, O_NONBLOCK), 0);
    g_pty = master;

    const nnrt_model *m = model_named("grad_gru_mse_all"); /* seq_len 5 */
    init_weights(m, "w.safetensors", "1");
    write_model_x(m, P("x.npy"), 5, 1);
    write_model_target(m, P("t.npy"), 5, NNRT_I32, 1);
    ck_assert_int_eq(TRAIN(m, "w.safetensors", "x.npy", "t.npy", "w2.safetensors", "--steps", "3",
                           "--log-every", "1", NULL),
                     0);
    ck_assert_msg(strncmp(g_err, "\rstep 1/3 [", 11) == 0, "terminal: %s", g_err);
    const char *last = strstr(g_err, "\rstep 3/3 [####################] loss ");
    ck_assert_msg(last != NULL, "terminal: %s", g_err);
    ck_assert_ptr_nonnull(strstr(last, " steps/s  ETA "));
    ck_assert_msg(strstr(last, "\033[K\r\n") == last + strlen(last) - 5, "terminal: %s", g_err);
    ck_assert_ptr_eq(strchr(g_err, '\n'), g_err + strlen(g_err) - 1); /* one line */
    ck_assert_ptr_null(strstr(g_err, "step 1/3 loss"));               /* no plain lines */
    ck_assert_msg(strncmp(g_out, "final loss ", 11) == 0, "stdout: %s", g_out);

    /* a NaN at step 2 of a stream: the error follows the progress line on a new line */
    write_model_x(m, P("x12.npy"), 12, 1);
    nnrt_array t;
    write_model_target(m, P("t12.npy"), 12, NNRT_I32, 1);
    t = read_npy(P("t12.npy"));
    ((double *)t.data)[6 * 2 * 2] = NAN;
    ck_assert_int_eq(nnrt_npy_write(P("t12.npy"), &t), NNRT_OK);
    nnrt_array_free(&t);
    ck_assert_int_eq(
        TRAIN(m, "w.safetensors", "x12.npy", "t12.npy", "w2.safetensors", "--steps", "3", NULL), 1);
    ck_assert_msg(strncmp(g_err, "\rstep 1/3 [", 11) == 0, "terminal: %s", g_err);
    ck_assert_msg(strstr(g_err, "\033[K\r\ngrad_gru_mse_all: error: step 2: loss is nan\r\n") !=
                      NULL,
                  "terminal: %s", g_err);

    g_pty = -1;
    close(hold);
    close(master);
}
END_TEST

START_TEST(test_train_help) {
    const nnrt_model *m = model_named("grad_lstm_mse_all");
    ck_assert_int_eq(run(m, "--help", NULL), 0);
    ck_assert_ptr_nonnull(strstr(g_out, "grad_lstm_mse_all grad -w W.safetensors -i X.npy -t "
                                        "TARGET.npy -o G.safetensors"));
    ck_assert_ptr_nonnull(strstr(
        g_out,
        "grad_lstm_mse_all train -w W.safetensors -i X.npy -t TARGET.npy [--steps N] [--lr R] "
        "[--optim adam|adamw|sgd] [--momentum M] [--nesterov] [--weight-decay D] [--clip NORM] "
        "[--checkpoint C.safetensors] [--every K] [--resume] [--log-every K] [--threads N] -o W2.safetensors"));
    ck_assert_int_eq(run(m, "train", "--help", NULL), 0);
    ck_assert_ptr_nonnull(strstr(g_out, "TARGET is float64 [T, 2, 2], loss mse."));
    ck_assert_ptr_nonnull(strstr(g_out, "--steps is the total"));
    ck_assert_ptr_nonnull(
        strstr(g_out, "T > 5: X is one long stream, trained with truncated BPTT"));
    ck_assert_int_eq(run(model_named("grad_gru_ce_last"), "grad", "-h", NULL), 0);
    ck_assert_ptr_nonnull(strstr(g_out, "X is float64 [T, 2, 3] with 1 <= T <= 5"));
    ck_assert_ptr_nonnull(strstr(
        g_out, "TARGET is int32 or int64 class indices [2] in 0..2 (output at the last step)."));
    ck_assert_int_eq(run(model_named("grad_gru_ce_last"), "train", "-h", NULL), 0);
    ck_assert_ptr_nonnull(
        strstr(g_out, "T > 5 is an error: this model's output is at the last step only."));
    ck_assert_str_eq(listing(), "");
}
END_TEST


/* ---- suite ----------------------------------------------------------------------------------- */

Suite *driver_train_suite(void) {
    Suite *s = suite_create("driver_train");
    TCase *tc;

    tc = tcase("grad");
    tcase_add_test(tc, test_grad_matches_descriptor);
    tcase_add_test(tc, test_grad_int64_equals_int32);
    tcase_add_test(tc, test_grad_bad_input);
    suite_add_tcase(s, tc);

    tc = tcase("train");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_train_reduces_loss);
    tcase_add_test(tc, test_train_tbptt_by_hand);
    tcase_add_test(tc, test_train_resume_bitwise);
    tcase_add_test(tc, test_train_resume_at_end);
    tcase_add_test(tc, test_train_threads_bitwise);
    tcase_add_test(tc, test_train_nan_stops);
    tcase_add_test(tc, test_train_progress);
    tcase_add_test(tc, test_train_progress_terminal);
    suite_add_tcase(s, tc);

    tc = tcase("train_errors");
    tcase_add_test(tc, test_train_bad_options);
    tcase_add_test(tc, test_train_bad_input);
    tcase_add_test(tc, test_train_help);
    suite_add_tcase(s, tc);

    return s;
}
