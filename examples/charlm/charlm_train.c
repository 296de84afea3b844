/* charlm_train.c — a character-level language model trained in C with truncated BPTT, then
 * sampled one character at a time through the streaming step API.
 *
 * The text (by default the GPL-3, /usr/share/common-licenses/GPL-3 on Debian; at most 4 MiB) is split 90/10
 * into training and validation parts; its distinct bytes are the vocabulary (inputs are one-hot
 * vectors over it). The training part is cut into CHARLM_BATCH equal stretches, one per batch row,
 * read in chunks of SEQ_LEN characters. Truncated BPTT: each chunk's forward starts from the state
 * the previous chunk left (the model carries what it read), but the gradient stops at the chunk
 * boundary (the backward treats the starting state as a constant). Per chunk:
 *
 *     charlm_forward_train(weights, state, tape, SEQ_LEN, x, y)  x [T][B][V] one-hot, y [T][B][V] logits
 *     charlm_loss(SEQ_LEN, y, target, &loss, dy)                 cross entropy against the next bytes
 *     charlm_zero_grad(grads); charlm_backward(params, tape, x, dy, grads, NULL)
 *     nnrt_clip_grad_norm, nnrt_optim_step (Adam)                on the PyTorch-layout parameters
 *     charlm_pack(params, weights)                               which the forward reads packed
 *
 * The state is reset at the start of each epoch. Losses are mean nats per character (bits = nats
 * / ln 2); the unigram entropy of the training text (a model that ignores context) is printed
 * for comparison. 35 KB is little text: after a few epochs the training loss keeps falling while
 * the validation loss levels off near 2 nats (the model starts to memorise), so the run stops
 * there. Then the trained weights are saved (charlm_save) and samples drawn with temperature, all
 * batch rows at once: one charlm_step per character for every row.
 *
 *   charlm_train [--quick] [--seed N] [--epochs N] [--text FILE] [-o WEIGHTS.safetensors]
 */
#define _DEFAULT_SOURCE /* clock_gettime */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "charlm.h"

#define B CHARLM_BATCH
#define SEQ_LEN CHARLM_SEQ_LEN
#define V CHARLM_INPUT /* vocabulary slots; the text may use fewer */
#define LR 1e-2        /* Adam, decayed linearly to LR/10 over the run */
#define CLIP 5.0       /* max gradient norm */
#define SAMPLE_LEN 240 /* characters per sample */
static const char PRIME[] = "The "; /* samples start with it: its bytes must be in the text */
static const double TEMPERATURES[] = {0.5, 0.8, 1.0};
#define NUM_SAMPLES (int)(sizeof TEMPERATURES / sizeof TEMPERATURES[0])
_Static_assert(CHARLM_OUTPUT == V, "charlm.lua: the head must output one logit per vocabulary slot");

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The text as vocabulary indices. */
typedef struct corpus {
    int32_t *ids;           /* [length] */
    long length;            /* characters */
    int vocab;              /* distinct bytes, <= V */
    unsigned char byte[V];  /* index -> byte */
    int index[256];         /* byte -> index, -1 when absent */
} corpus;

static int load_corpus(corpus *c, const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        perror(path);
        return 1;
    }
    static unsigned char text[1 << 22];
    c->length = (long)fread(text, 1, sizeof text, fp);
    fclose(fp);
    if (c->length < 20L * B * SEQ_LEN) {
        fprintf(stderr, "charlm_train: %s: %ld bytes is too short (need %d)\n", path, c->length, 20 * B * SEQ_LEN);
        return 1;
    }
    int seen[256] = {0};
    for (long i = 0; i < c->length; i++) seen[text[i]] = 1;
    c->vocab = 0;
    for (int b = 0; b < 256; b++) {
        c->index[b] = -1;
        if (!seen[b]) continue;
        if (c->vocab == V) {
            fprintf(stderr, "charlm_train: %s has more than %d distinct bytes: raise input and the head's size "
                            "in charlm.lua\n", path, V);
            return 1;
        }
        c->byte[c->vocab] = (unsigned char)b;
        c->index[b] = c->vocab++;
    }
    c->ids = malloc((size_t)c->length * sizeof *c->ids);
    if (!c->ids) {
        fprintf(stderr, "charlm_train: out of memory\n");
        return 1;
    }
    for (long i = 0; i < c->length; i++) c->ids[i] = c->index[text[i]];
    return 0;
}

/* Entropy in nats per character of the byte frequencies of ids[0..n). */
static double unigram_entropy(const int32_t *ids, long n)
{
    long count[V] = {0};
    for (long i = 0; i < n; i++) count[ids[i]]++;
    double h = 0;
    for (int k = 0; k < V; k++)
        if (count[k]) h -= (double)count[k] / n * log((double)count[k] / n);
    return h;
}

/* One chunk of T steps for every row b: row b reads ids[start[b] + t], t = 0..T-1, and is asked for
 * the next character. x [T][B][V] one-hot, target [T][B]. */
static void make_chunk(const int32_t *ids, const long *start, int T, charlm_real *x, charlm_target *target)
{
    memset(x, 0, sizeof(charlm_real) * (size_t)T * B * V);
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            x[((size_t)t * B + b) * V + ids[start[b] + t]] = 1;
            target[t * B + b] = ids[start[b] + t + 1];
        }
}

/* Mean loss in nats per character over a stretch of text: B rows, each through its own part,
 * chunk after chunk, the state carried across. Inference only. */
static double evaluate(const charlm_weights *weights, charlm_work *work, const int32_t *ids, long n)
{
    static charlm_real x[SEQ_LEN * B * V], y[SEQ_LEN * B * V];
    static charlm_target target[SEQ_LEN * B];
    long part = (n - 1) / B, start[B];
    for (int b = 0; b < B; b++) start[b] = b * part;
    charlm_state state;
    charlm_reset(&state);
    double sum = 0;
    for (long done = 0; done < part;) {
        int T = part - done < SEQ_LEN ? (int)(part - done) : SEQ_LEN;
        double loss;
        make_chunk(ids, start, T, x, target);
        if (charlm_forward(weights, &state, work, T, x, y) != NNRT_OK ||
            charlm_loss(T, y, target, &loss, NULL) != NNRT_OK)
            return NAN;
        sum += loss * T;
        done += T;
        for (int b = 0; b < B; b++) start[b] += T;
    }
    return sum / part;
}

/* Draws a class from softmax(logits / temperature) over the first `vocab` slots. */
static int sample_logits(const charlm_real *logits, int vocab, double temperature, nnrt_rng *rng)
{
    double max = logits[0], p[V], sum = 0;
    for (int k = 1; k < vocab; k++) max = fmax(max, logits[k]);
    for (int k = 0; k < vocab; k++) sum += p[k] = exp((logits[k] - max) / temperature);
    double u = nnrt_rng_uniform(rng) * sum;
    for (int k = 0; k < vocab; k++)
        if ((u -= p[k]) < 0) return k;
    return vocab - 1;
}

/* Feeds PRIME to every row, then samples SAMPLE_LEN characters per row through the step API,
 * row r at temperature TEMPERATURES[r % NUM_SAMPLES]; prints the first NUM_SAMPLES rows. */
static void print_samples(const charlm_weights *weights, const corpus *c, nnrt_rng *rng)
{
    static char text[B][SAMPLE_LEN + 1];
    const int prime = (int)strlen(PRIME);
    charlm_real x[B][V], logits[B][V];
    int next[B];
    charlm_state state;
    charlm_reset(&state);
    for (int i = 0; i < prime + SAMPLE_LEN - 1; i++) {
        memset(x, 0, sizeof x); /* input: the prime's byte i, then each row's previous sample */
        for (int b = 0; b < B; b++) x[b][i < prime ? c->index[(unsigned char)PRIME[i]] : next[b]] = 1;
        charlm_step(weights, &state, &x[0][0], &logits[0][0]);
        if (i < prime - 1) continue; /* still reading the prime */
        for (int b = 0; b < B; b++) {
            next[b] = sample_logits(logits[b], c->vocab, TEMPERATURES[b % NUM_SAMPLES], rng);
            text[b][i - (prime - 1)] = (char)c->byte[next[b]];
        }
    }
    for (int r = 0; r < NUM_SAMPLES; r++) {
        text[r][SAMPLE_LEN] = '\0';
        printf("\n-- sample at temperature %.1f --\n%s%s\n", TEMPERATURES[r], PRIME, text[r]);
    }
}

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--quick] [--seed N] [--epochs N] [--text FILE] [-o WEIGHTS.safetensors]\n", argv0);
    return 2;
}

int main(int argc, char **argv)
{
    const char *path = "/usr/share/common-licenses/GPL-3", *out = NULL;
    unsigned long long seed = 1;
    int epochs = 6;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) epochs = 2;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--epochs") && i + 1 < argc) epochs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--text") && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
        else return usage(argv[0]);
    }
    if (epochs < 1) return usage(argv[0]);

    corpus c;
    if (load_corpus(&c, path)) return 1;
    for (const char *p = PRIME; *p; p++)
        if (c.index[(unsigned char)*p] < 0) {
            fprintf(stderr, "charlm_train: %s: the sampling prime \"%s\" uses a byte the text lacks\n", path, PRIME);
            return 1;
        }
    long train_len = c.length * 9 / 10, valid_len = c.length - train_len;
    const int32_t *train_ids = c.ids, *valid_ids = c.ids + train_len;
    long part = (train_len - 1) / B;  /* characters per row per epoch */
    int chunks = (int)(part / SEQ_LEN); /* updates per epoch */

    charlm_params *params = nnrt_alloc(sizeof *params);
    charlm_params *grads = nnrt_alloc(sizeof *grads);
    charlm_weights *weights = nnrt_alloc(sizeof *weights); /* params packed for the forward kernels */
    charlm_tape *tape = nnrt_alloc(sizeof *tape);
    charlm_work *work = nnrt_alloc(sizeof *work);
    if (!params || !grads || !weights || !tape || !work) {
        fprintf(stderr, "charlm_train: out of memory\n");
        return 1;
    }
    charlm_init(params, seed);
    charlm_pack(params, weights);
    nnrt_optim optim;
    nnrt_optim_config config = nnrt_optim_defaults(NNRT_OPT_ADAM);
    config.lr = LR;
    if (nnrt_optim_init(&optim, &config, charlm_model.dtype, CHARLM_NUM_PARAMS) != NNRT_OK) {
        fprintf(stderr, "charlm_train: %s\n", nnrt_last_error());
        return 1;
    }

    printf("charlm: %s, %ld bytes, vocabulary %d; %ld for training, %ld for validation\n", path, c.length, c.vocab,
           train_len, valid_len);
    static const char *const cells[] = {"rnn", "rnn", "gru", "lstm"}; /* by enum nnrt_cell */
    printf("model: %s(%d) -> dense(%d), %d parameters; %d rows x %d characters per update, %d updates per epoch\n",
           cells[charlm_model.layers[0].cell], charlm_model.layers[0].hidden, V, CHARLM_NUM_PARAMS, B, SEQ_LEN, chunks);
    printf("unigram entropy of the training text: %.3f nats/char (%.3f bits): the loss of a model without context\n\n",
           unigram_entropy(train_ids, train_len), unigram_entropy(train_ids, train_len) / log(2));
    printf("epoch   train nats/char (bits)   valid nats/char (bits)    time\n");

    static charlm_real x[SEQ_LEN * B * V], y[SEQ_LEN * B * V], dy[SEQ_LEN * B * V];
    static charlm_target target[SEQ_LEN * B];
    double begin = now_s(), train = NAN, valid = NAN;
    int total = epochs * chunks, update = 0;
    for (int epoch = 1; epoch <= epochs; epoch++) {
        long start[B];
        for (int b = 0; b < B; b++) start[b] = b * part;
        charlm_state state; /* carried from chunk to chunk through the epoch */
        charlm_reset(&state);
        double sum = 0;
        for (int k = 0; k < chunks; k++, update++) {
            double loss;
            make_chunk(train_ids, start, SEQ_LEN, x, target);
            charlm_zero_grad(grads);
            if (charlm_forward_train(weights, &state, tape, SEQ_LEN, x, y) != NNRT_OK ||
                charlm_loss(SEQ_LEN, y, target, &loss, dy) != NNRT_OK ||
                charlm_backward(params, tape, x, dy, grads, NULL) != NNRT_OK) {
                fprintf(stderr, "charlm_train: %s\n", nnrt_last_error());
                return 1;
            }
            nnrt_clip_grad_norm(charlm_model.dtype, grads, CHARLM_NUM_PARAMS, CLIP);
            optim.config.lr = LR * (1 - 0.9 * update / total);
            nnrt_optim_step(&optim, params, grads);
            charlm_pack(params, weights);
            sum += loss;
            for (int b = 0; b < B; b++) start[b] += SEQ_LEN;
        }
        train = sum / chunks;
        valid = evaluate(weights, work, valid_ids, valid_len);
        printf("%5d       %.3f (%.3f)            %.3f (%.3f)     %6.1fs\n", epoch, train, train / log(2), valid,
               valid / log(2), now_s() - begin);
        fflush(stdout);
    }
    if (!isfinite(valid)) {
        fprintf(stderr, "charlm_train: training diverged\n");
        return 1;
    }
    printf("final: train %.3f nats/char (%.3f bits), validation %.3f nats/char (%.3f bits)\n", train, train / log(2),
           valid, valid / log(2));
    if (out) {
        if (charlm_save(params, out) != NNRT_OK) {
            fprintf(stderr, "charlm_train: %s\n", nnrt_last_error());
            return 1;
        }
        printf("saved %s\n", out);
    }

    nnrt_rng rng;
    nnrt_rng_seed(&rng, seed);
    print_samples(weights, &c, &rng);

    nnrt_optim_free(&optim);
    nnrt_free(params);
    nnrt_free(grads);
    nnrt_free(weights);
    nnrt_free(tape);
    nnrt_free(work);
    free(c.ids);
    return 0;
}
