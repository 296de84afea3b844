/* adding_train.c — the adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015), the
 * classic test of whether a recurrent cell can carry information over many steps.
 *
 * Each sequence has T steps of two channels: a value drawn from U(0, 1) and a marker that is 1 at
 * exactly two steps (one in the first half, one in the second) and 0 elsewhere. The target, read
 * after the last step, is the sum of the two marked values. Predicting 1 whatever the input
 * scores the variance of that sum, 1/6 = 0.1667 (Le et al. quote 0.1767); a model beats it only
 * by remembering the first marked value across up to T steps of distractors.
 *
 * For every cell (rnn, gru, lstm: adding_rnn.lua, adding_gru.lua, adding_lstm.lua, compiled
 * for seq_len 200) and every length T, this program trains a fresh model with Adam and reports
 * the test MSE. It drives all three through their model descriptors (nnrt_model: the same
 * generated entry points behind untyped pointers), so one training loop serves every cell:
 *
 *     m->reset(state)                                      each batch starts from h = c = 0
 *     m->forward_train(weights, state, tape, T, x, y)      x [T][B][2] -> y [B][1]
 *     m->loss(T, y, target, &loss, dy)                     MSE against target [B][1]
 *     m->backward(params, tape, x, dy, grads, NULL)        adds into grads
 *     nnrt_clip_grad_norm, nnrt_optim_step                 on the flat parameter arrays
 *     m->pack(params, weights)                             the forward reads the packed copy
 *
 * Deterministic: every model starts from the same seed, and every cell sees the same batches.
 *
 *   adding_train [--quick] [--seed N] [--steps N] [--lengths 10,25,50,100] [--cells rnn,gru,lstm]
 *
 * The default (T = 10, 25, 50, 100; 1000 updates) takes about 5 s with the AVX-512 backend, 50 s
 * with the scalar one; --quick trains 300 updates at T = 10 only. Longer: --lengths 100,200
 * --steps 2000.
 */
#define _DEFAULT_SOURCE /* clock_gettime */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adding_gru.h"
#include "adding_lstm.h"
#include "adding_rnn.h"

#define MAX_LENGTHS 6
#define TEST_BATCHES 32 /* test set: TEST_BATCHES x B sequences per length, fixed */
#define LR 1e-2         /* Adam */
#define CLIP 1.0        /* max gradient norm */

static const struct {
    const char *name;
    const nnrt_model *model;
} CELLS[] = {
    {"rnn", &adding_rnn_model},
    {"gru", &adding_gru_model},
    {"lstm", &adding_lstm_model},
};
#define NUM_CELLS (int)(sizeof CELLS / sizeof CELLS[0])

/* The three specs agree on everything but the cell. */
#define B ADDING_LSTM_BATCH
#define MAX_T ADDING_LSTM_SEQ_LEN
_Static_assert(ADDING_RNN_BATCH == B && ADDING_GRU_BATCH == B, "the specs must share batch");
_Static_assert(ADDING_RNN_SEQ_LEN == MAX_T && ADDING_GRU_SEQ_LEN == MAX_T, "the specs must share seq_len");
_Static_assert(sizeof(adding_rnn_real) == sizeof(float) && sizeof(adding_gru_real) == sizeof(float) &&
                   sizeof(adding_lstm_real) == sizeof(float),
               "f32 specs: the arrays below are float");

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One batch of B sequences of T steps: x [T][B][2] (value, marker), target [B]. */
static void make_batch(int T, nnrt_rng *rng, float *x, float *target)
{
    for (int b = 0; b < B; b++) {
        int first = (int)(nnrt_rng_uniform(rng) * (T / 2));
        int second = T / 2 + (int)(nnrt_rng_uniform(rng) * (T - T / 2));
        target[b] = 0;
        for (int t = 0; t < T; t++) {
            float *xt = &x[((size_t)t * B + b) * 2];
            xt[0] = (float)nnrt_rng_uniform(rng);
            xt[1] = t == first || t == second;
            if (xt[1] != 0) target[b] += xt[0];
        }
    }
}

/* Caller-owned memory of one model, sized by its descriptor. */
typedef struct buffers {
    void *params, *grads, *weights, *state, *tape, *work;
} buffers;

static int buffers_alloc(buffers *b, const nnrt_model *m)
{
    b->params = nnrt_alloc(m->params_bytes);
    b->grads = nnrt_alloc(m->params_bytes); /* gradients share the parameters' layout */
    b->weights = nnrt_alloc(m->weights_bytes); /* the parameters packed for the forward kernels */
    b->state = nnrt_alloc(m->state_bytes);
    b->tape = nnrt_alloc(m->tape_bytes);
    b->work = nnrt_alloc(m->work_bytes);
    return b->params && b->grads && b->weights && b->state && b->tape && b->work ? NNRT_OK : NNRT_ERR_NOMEM;
}

static void buffers_free(buffers *b)
{
    nnrt_free(b->params);
    nnrt_free(b->grads);
    nnrt_free(b->weights);
    nnrt_free(b->state);
    nnrt_free(b->tape);
    nnrt_free(b->work);
}

/* The fixed test set for length T, and the MSE of always predicting 1 on it. */
typedef struct test_set {
    float x[TEST_BATCHES][MAX_T * B * 2];
    float target[TEST_BATCHES][B];
    double baseline;
} test_set;

static void make_test_set(test_set *ts, int T, uint64_t seed)
{
    nnrt_rng rng;
    nnrt_rng_seed(&rng, seed ^ 0x7e57u ^ ((uint64_t)T << 32));
    double sum = 0;
    for (int k = 0; k < TEST_BATCHES; k++) {
        make_batch(T, &rng, ts->x[k], ts->target[k]);
        for (int b = 0; b < B; b++) sum += (ts->target[k][b] - 1.0) * (ts->target[k][b] - 1.0);
    }
    ts->baseline = sum / (TEST_BATCHES * B);
}

/* Test MSE of the model in buf on ts (inference only). */
static double test_mse(const nnrt_model *m, buffers *buf, const test_set *ts, int T)
{
    float y[B];
    double sum = 0;
    for (int k = 0; k < TEST_BATCHES; k++) {
        double loss;
        m->reset(buf->state);
        if (m->forward(buf->weights, buf->state, buf->work, T, ts->x[k], y) != NNRT_OK ||
            m->loss(T, y, ts->target[k], &loss, NULL) != NNRT_OK)
            return NAN;
        sum += loss;
    }
    return sum / TEST_BATCHES;
}

/* Trains a fresh model for `steps` updates at length T; returns its test MSE (NAN on error). */
static double train(const nnrt_model *m, int T, int steps, uint64_t seed, const test_set *ts)
{
    buffers buf;
    nnrt_optim optim;
    nnrt_optim_config config = nnrt_optim_defaults(NNRT_OPT_ADAM);
    config.lr = LR;
    if (buffers_alloc(&buf, m) != NNRT_OK || nnrt_optim_init(&optim, &config, m->dtype, m->num_params) != NNRT_OK) {
        fprintf(stderr, "adding_train: %s\n", nnrt_last_error());
        buffers_free(&buf);
        return NAN;
    }
    nnrt_model_init(m, buf.params, seed);
    m->pack(buf.params, buf.weights);
    nnrt_rng rng; /* the training batches: the same for every cell at this length */
    nnrt_rng_seed(&rng, seed ^ ((uint64_t)T << 32));
    static float x[MAX_T * B * 2];
    float target[B], y[B], dy[B];
    double result = NAN;
    for (int step = 1; step <= steps; step++) {
        double loss;
        make_batch(T, &rng, x, target);
        m->reset(buf.state);
        memset(buf.grads, 0, m->params_bytes);
        if (m->forward_train(buf.weights, buf.state, buf.tape, T, x, y) != NNRT_OK ||
            m->loss(T, y, target, &loss, dy) != NNRT_OK ||
            m->backward(buf.params, buf.tape, x, dy, buf.grads, NULL) != NNRT_OK) {
            fprintf(stderr, "adding_train: %s\n", nnrt_last_error());
            goto done;
        }
        nnrt_clip_grad_norm(m->dtype, buf.grads, m->num_params, CLIP);
        nnrt_optim_step(&optim, buf.params, buf.grads);
        m->pack(buf.params, buf.weights);
    }
    result = test_mse(m, &buf, ts, T);
done:
    nnrt_optim_free(&optim);
    buffers_free(&buf);
    return result;
}

/* Parses "10,25,50,100" into at most MAX_LENGTHS values in 2..MAX_T; returns the count, 0 if bad. */
static int parse_lengths(const char *s, int *lengths)
{
    int n = 0;
    for (char *end; *s && n < MAX_LENGTHS; s = *end == ',' ? end + 1 : end) {
        long v = strtol(s, &end, 10);
        if (end == s || v < 2 || v > MAX_T || (*end != ',' && *end != '\0')) return 0;
        lengths[n++] = (int)v;
    }
    return *s ? 0 : n;
}

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--quick] [--seed N] [--steps N] [--lengths T,T,...] [--cells rnn,gru,lstm]\n"
            "  T in 2..%d (the specs' seq_len)\n",
            argv0, MAX_T);
    return 2;
}

int main(int argc, char **argv)
{
    unsigned long long seed = 1;
    int steps = 1000;
    int lengths[MAX_LENGTHS] = {10, 25, 50, 100}, num_lengths = 4;
    const char *cells = "rnn,gru,lstm";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            steps = 300;
            lengths[0] = 10;
            num_lengths = 1;
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--lengths") && i + 1 < argc) {
            if ((num_lengths = parse_lengths(argv[++i], lengths)) == 0) return usage(argv[0]);
        } else if (!strcmp(argv[i], "--cells") && i + 1 < argc) cells = argv[++i];
        else return usage(argv[0]);
    }
    if (steps < 1) return usage(argv[0]);

    printf("adding problem: %d updates of %d sequences per model, Adam lr %g, seed %llu; test set %d sequences\n",
           steps, B, LR, seed, TEST_BATCHES * B);
    static test_set tests[MAX_LENGTHS];
    for (int j = 0; j < num_lengths; j++) make_test_set(&tests[j], lengths[j], seed);

    /* Header row, the baseline row, then one row per cell as its models finish. */
    printf("\ntest MSE      ");
    for (int j = 0; j < num_lengths; j++) printf("    T=%-4d", lengths[j]);
    printf("\npredict 1     ");
    for (int j = 0; j < num_lengths; j++) printf("%10.4f", tests[j].baseline);
    printf("   (the baseline)\n");
    double start = now_s();
    for (int c = 0; c < NUM_CELLS; c++) {
        if (!strstr(cells, CELLS[c].name)) continue;
        const nnrt_model *m = CELLS[c].model;
        char label[32];
        snprintf(label, sizeof label, "%s(%d)", CELLS[c].name, m->layers[0].hidden);
        printf("%-14s", label);
        fflush(stdout);
        double cell_start = now_s();
        for (int j = 0; j < num_lengths; j++) {
            double mse = train(m, lengths[j], steps, seed, &tests[j]);
            if (isnan(mse)) return 1;
            printf("%10.4f", mse);
            fflush(stdout);
        }
        printf("   %5.1f s\n", now_s() - cell_start);
    }
    printf("\ntotal %.1f s. A model has learned the task where its MSE is well below the baseline.\n",
           now_s() - start);
    return 0;
}
