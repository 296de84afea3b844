/* nnrt_driver_bench.c — the driver's bench command: times the model's entry points. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, isatty, fileno */

#include "nnrt_driver.h"

#include <jansson.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BENCH_STEPS, BENCH_THREADS, BENCH_JSON };
static const opt_spec bench_opts[] = {
    [BENCH_STEPS] = {"--steps", "N", 0,
                     "timed runs per measurement, their median reported (default 21)"},
    [BENCH_THREADS] = {"--threads", "N", 0, "threads of the team the calls run on (default 1)"},
    [BENCH_JSON] = {"--json", NULL, 0, "print one JSON object instead of the table"},
};

/* ---- bench ----------------------------------------------------------------------------------
 * Three measurements of the model's own entry points, on random weights (nnrt_model_init with
 * seed 0, then pack) and random inputs, with no file I/O:
 *   step     one call of m->step: one timestep of all B sequences (the streaming API)
 *   forward  one call of m->forward over T = seq_len steps (inference)
 *   train    m->forward_train then m->backward over T = seq_len steps: no loss (dy is random and
 *            fixed), no optimizer, no dx
 * A run times `calls` back-to-back calls with one pair of CLOCK_MONOTONIC reads; calls is chosen
 * during the warm-up so that a run lasts at least BENCH_MIN_RUN_NS. Before each run, untimed, the
 * state is reset (and train's gradients zeroed); within a run it carries over from call to call
 * as in a stream, so no reset is ever timed. A run that other processes took a share of is
 * redone (bench_measure). A measurement reports the median time per call over --steps runs, and
 * the fastest and slowest run. FLOPs come from the descriptor (bench_flops). */

#define BENCH_DEFAULT_RUNS 21
#define BENCH_MAX_RUNS 1000000
#define BENCH_MIN_RUN_NS 2000000LL    /* a timed run lasts at least 2 ms */
#define BENCH_WARMUP_NS 50000000LL    /* untimed calls before the runs of each measurement: 50 ms */
#define BENCH_PATIENCE_NS 200000000LL /* warm-up waits this long at most for an unpreempted run */
/* A run that lost more than 1/BENCH_LOST_DIVISOR of its time to other processes is redone. */
#define BENCH_LOST_DIVISOR 100
#define BENCH_TRAIN_FACTOR 3 /* train FLOPs = 3 x forward's */
#define BENCH_TRAIN_CONVENTION                                                                     \
    "train = 3 x forward: the backward does two products (dX and dW) per product of the forward"

typedef struct bench_config {
    int64_t runs; /* timed runs per measurement */
    int threads;
    int json;
} bench_config;

/* What the calls of the measurements work on. */
typedef struct bench_ctx {
    const nnrt_model *m;
    nnrt_workers *team; /* NULL with one thread */
    int threads;
    void *params, *weights, *grads, *state, *work, *tape;
    char *x;       /* [seq_len][B][I] random inputs */
    char *y;       /* [seq_len][B][O] outputs (step writes [B][O]; so does output_last) */
    char *dy;      /* as y: random dloss/dy, fixed, fed to backward */
    size_t x_step; /* bytes of one timestep of x */
    int t;         /* step: the timestep of x its next call reads */
} bench_ctx;

enum { OP_STEP, OP_FORWARD, OP_TRAIN, NUM_OPS };

typedef struct bench_op {
    const char *name;                        /* row of the table, prefix of the JSON keys */
    void (*prepare)(bench_ctx *c);           /* before each run, untimed */
    int (*run)(bench_ctx *c, int64_t calls); /* calls back to back; an NNRT_* code */
    size_t (*ycount)(const nnrt_model *m);   /* elements of y a call writes */
} bench_op;

typedef struct bench_result {
    int64_t flops;                    /* per call */
    int64_t calls;                    /* per run */
    double median_us, min_us, max_us; /* per call */
    int64_t preempted;                /* reported runs that were preempted (> 1% lost) */
} bench_result;

static void bench_prepare(bench_ctx *c) {
    c->m->reset(c->state);
    c->t = 0;
}

static void bench_prepare_train(bench_ctx *c) {
    bench_prepare(c);
    memset(c->grads, 0, c->m->params_bytes);
}

/* The loops below are what the clock sees: one indirect call per entry point, nothing else. */
static int bench_step(bench_ctx *c, int64_t calls) {
    const nnrt_model *m = c->m;
    int t = c->t;
    for (int64_t i = 0; i < calls; i++) {
        m->step_mt(c->team, c->weights, c->state, c->x + (size_t)t * c->x_step, c->y);
        if (++t == m->seq_len) t = 0;
    }
    c->t = t;
    return NNRT_OK;
}

static int bench_forward(bench_ctx *c, int64_t calls) {
    const nnrt_model *m = c->m;
    for (int64_t i = 0; i < calls; i++) {
        int rc = m->forward_mt(c->team, c->weights, c->state, c->work, m->seq_len, c->x, c->y);
        if (rc != NNRT_OK) return rc;
    }
    return NNRT_OK;
}

static int bench_train(bench_ctx *c, int64_t calls) {
    const nnrt_model *m = c->m;
    for (int64_t i = 0; i < calls; i++) {
        int rc = m->forward_train_mt(c->team, c->weights, c->state, c->tape, m->seq_len, c->x, c->y);
        if (rc == NNRT_OK) rc = m->backward_mt(c->team, c->params, c->tape, c->x, c->dy, c->grads, NULL);
        if (rc != NNRT_OK) return rc;
    }
    return NNRT_OK;
}

static size_t ycount_step(const nnrt_model *m) { return (size_t)m->batch * (size_t)m->output; }

static size_t ycount_sequence(const nnrt_model *m) {
    return (m->output_last ? 1 : (size_t)m->seq_len) * ycount_step(m);
}

static const bench_op bench_ops[NUM_OPS] = {
    [OP_STEP] = {"step", bench_prepare, bench_step, ycount_step},
    [OP_FORWARD] = {"forward", bench_prepare, bench_forward, ycount_sequence},
    [OP_TRAIN] = {"train", bench_prepare_train, bench_train, ycount_sequence},
};

/* FLOPs per call, a multiply-add counting 2, elementwise work not counted. Per timestep of one
 * sequence a recurrent layer costs 2*G*H*(in + H) (G = 1 rnn, 3 gru, 4 lstm) and a dense head
 * layer 2*in*out. step: one timestep of B sequences, the head applied; forward: T*B layer-steps
 * and the head on T*B rows (B with output_last); train: BENCH_TRAIN_FACTOR x forward. */
static void bench_flops(const nnrt_model *m, int64_t flops[NUM_OPS]) {
    int64_t layers = 0, heads = 0;
    for (int k = 0; k < m->num_layers; k++) {
        const nnrt_layer_desc *l = &m->layers[k];
        int64_t gates = l->cell == NNRT_CELL_LSTM ? 4 : l->cell == NNRT_CELL_GRU ? 3 : 1;
        layers += 2 * gates * l->hidden * ((int64_t)l->input + l->hidden);
    }
    for (int j = 0; j < m->num_heads; j++)
        heads += 2 * (int64_t)m->heads[j].input * m->heads[j].output;
    const int64_t T = m->seq_len, B = m->batch;
    flops[OP_STEP] = B * (layers + heads);
    flops[OP_FORWARD] = T * B * layers + (m->output_last ? 1 : T) * B * heads;
    flops[OP_TRAIN] = BENCH_TRAIN_FACTOR * flops[OP_FORWARD];
}

static void bench_close(bench_ctx *c) {
    nnrt_workers_destroy(c->team);
    nnrt_free(c->dy);
    nnrt_free(c->y);
    nnrt_free(c->x);
    nnrt_free(c->tape);
    nnrt_free(c->work);
    nnrt_free(c->state);
    nnrt_free(c->grads);
    nnrt_free(c->weights);
    nnrt_free(c->params);
}

static void fill_uniform(nnrt_dtype dtype, void *dst, size_t n, nnrt_rng *rng) {
    if (dtype == NNRT_F64)
        nnrt_fill_uniform_f64(dst, n, -1, 1, rng);
    else
        nnrt_fill_uniform_f32(dst, n, -1, 1, rng);
}

/* Allocates the buffers, initialises and packs the weights, draws x and dy. Prints what went
 * wrong; returns 0 or an exit code. c must be closed either way. */
static int bench_open(const nnrt_model *m, int threads, bench_ctx *c) {
    memset(c, 0, sizeof *c);
    c->m = m;
    c->threads = threads;
    int status = open_team(threads, &c->team);
    if (status != 0) return status;
    size_t es = nnrt_dtype_size(m->dtype);
    size_t xcount = (size_t)m->seq_len * (size_t)m->batch * (size_t)m->input;
    size_t ycount = (size_t)m->seq_len * ycount_step(m);
    c->x_step = (size_t)m->batch * (size_t)m->input * es;
    c->params = nnrt_alloc(m->params_bytes);
    c->weights = nnrt_alloc(m->weights_bytes);
    c->grads = nnrt_alloc(m->params_bytes);
    c->state = nnrt_alloc(m->state_bytes);
    c->work = nnrt_alloc(m->work_bytes);
    c->tape = nnrt_alloc(m->tape_bytes);
    c->x = nnrt_alloc(xcount * es);
    c->y = nnrt_alloc(ycount * es);
    c->dy = nnrt_alloc(ycount * es);
    if (!c->params || !c->weights || !c->grads || !c->state || !c->work || !c->tape || !c->x ||
        !c->y || !c->dy) {
        report("out of memory (%zu bytes of parameters, weights, gradients, state, work, tape, "
               "inputs and outputs)",
               2 * m->params_bytes + m->weights_bytes + m->state_bytes + m->work_bytes +
                   m->tape_bytes + (xcount + 2 * ycount) * es);
        return EXIT_USAGE;
    }
    nnrt_model_init(m, c->params, 0);
    m->pack(c->params, c->weights);
    nnrt_rng rng;
    nnrt_rng_seed(&rng, 1);
    fill_uniform(m->dtype, c->x, xcount, &rng);
    fill_uniform(m->dtype, c->dy, ycount, &rng);
    return 0;
}

static int64_t clock_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

/* The CPU time of the process: the team's threads are busy for the whole of a run (they spin
 * between calls), so threads x its wall time less its CPU time is the time other processes had
 * the CPU. */
static int64_t cpu_ns(void) { return clock_ns(CLOCK_PROCESS_CPUTIME_ID); }

/* One run: prepare (untimed), then calls back to back between two reads of the clock. The run
 * was preempted when other processes took more than 1/BENCH_LOST_DIVISOR of its time. */
static int bench_run(bench_ctx *c, const bench_op *op, int64_t calls, int64_t *ns, int *preempted) {
    op->prepare(c);
    int64_t cpu = cpu_ns(), start = now_ns();
    int rc = op->run(c, calls);
    *ns = now_ns() - start;
    cpu = cpu_ns() - cpu;
    int64_t all = *ns * c->threads;
    *preempted = (all - cpu) * BENCH_LOST_DIVISOR > all;
    return rc;
}

/* Warms up and finds the calls per run: starting from one call, a run shorter than
 * BENCH_MIN_RUN_NS grows the next one to a quarter past the minimum (x100 at most per round), and
 * runs go on until one lasted the minimum without being preempted (a preempted run looks longer
 * than the calls are; after BENCH_PATIENCE_NS any will do) and BENCH_WARMUP_NS have passed in
 * all, so caches, first-touch page faults, branch predictors and the clock speed settle. */
static int bench_calibrate(bench_ctx *c, const bench_op *op, int64_t *calls_out) {
    int64_t calls = 1, spent = 0;
    for (;;) {
        int64_t ns;
        int preempted, rc = bench_run(c, op, calls, &ns, &preempted);
        if (rc != NNRT_OK) return rc;
        spent += ns > 0 ? ns : 1;
        if (ns >= BENCH_MIN_RUN_NS && (!preempted || spent >= BENCH_PATIENCE_NS) &&
            spent >= BENCH_WARMUP_NS)
            break;
        if (ns < BENCH_MIN_RUN_NS) {
            double grow = ns > 0 ? 1.25 * (double)BENCH_MIN_RUN_NS / (double)ns : 100;
            calls = (int64_t)ceil((double)calls * (grow < 100 ? grow : 100));
        }
    }
    *calls_out = calls;
    return NNRT_OK;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One measurement: warm-up, then cfg->runs timed runs, times per call into r. A preempted run
 * timed other processes too: it is set aside and redone, cfg->runs times at most in all; when
 * the clean runs still fall short, the fastest preempted ones fill up, counted in r->preempted.
 * samples has room for 2 * cfg->runs values. */
static int bench_measure(bench_ctx *c, const bench_config *cfg, const bench_op *op, double *samples,
                         bench_result *r) {
    const int64_t runs = cfg->runs;
    double *set_aside = samples + runs;
    int64_t clean = 0, preempted_runs = 0;
    int rc = bench_calibrate(c, op, &r->calls);
    for (int64_t k = 0; rc == NNRT_OK && clean < runs && k < 2 * runs; k++) {
        int64_t ns;
        int preempted;
        rc = bench_run(c, op, r->calls, &ns, &preempted);
        double us = (double)ns * 1e-3 / (double)r->calls;
        if (!preempted)
            samples[clean++] = us;
        else if (preempted_runs < runs)
            set_aside[preempted_runs++] = us;
    }
    if (rc != NNRT_OK) return rc;
    r->preempted = runs - clean; /* <= preempted_runs: the loop ran 2 * runs times */
    qsort(set_aside, (size_t)preempted_runs, sizeof *samples, compare_doubles);
    memmove(samples + clean, set_aside, (size_t)r->preempted * sizeof *samples);
    qsort(samples, (size_t)runs, sizeof *samples, compare_doubles);
    size_t mid = (size_t)runs / 2;
    r->median_us = runs % 2 ? samples[mid] : (samples[mid - 1] + samples[mid]) / 2;
    r->min_us = samples[0];
    r->max_us = samples[runs - 1];
    return NNRT_OK;
}

static double gflops(const bench_result *r) { return (double)r->flops / (r->median_us * 1e3); }

static const char *bench_isa(const nnrt_model *m) { return m->isa ? m->isa : "unknown"; }

/* The figures as one JSON object on one line. Returns 0 or EXIT_USAGE (out of memory). */
static int bench_print_json(const nnrt_model *m, const bench_config *cfg,
                            const bench_result r[NUM_OPS]) {
    json_t *o = json_object();
    int failed = o == NULL;
    char key[32];
#define PUT(k, v) (failed |= json_object_set_new(o, (k), (v)) != 0)
    PUT("model", json_string(m->name));
    PUT("isa", json_string(bench_isa(m)));
    PUT("precision", json_string(precision_name(m)));
    PUT("threads", json_integer(cfg->threads));
    PUT("T", json_integer(m->seq_len));
    PUT("B", json_integer(m->batch));
    PUT("runs", json_integer(cfg->runs));
    for (int k = 0; k < NUM_OPS; k++) {
        static const char *const suffixes[] = {"us", "min_us", "max_us", "gflops"};
        const double values[] = {r[k].median_us, r[k].min_us, r[k].max_us, gflops(&r[k])};
        for (int s = 0; s < COUNT(suffixes); s++) {
            snprintf(key, sizeof key, "%s_%s", bench_ops[k].name, suffixes[s]);
            PUT(key, json_real(values[s]));
        }
        snprintf(key, sizeof key, "%s_calls_per_run", bench_ops[k].name);
        PUT(key, json_integer(r[k].calls));
        snprintf(key, sizeof key, "%s_preempted_runs", bench_ops[k].name);
        PUT(key, json_integer(r[k].preempted));
    }
    for (int k = 0; k < NUM_OPS; k++) {
        snprintf(key, sizeof key, "flops_%s", bench_ops[k].name);
        PUT(key, json_integer(r[k].flops));
    }
    PUT("flops_train_convention", json_string(BENCH_TRAIN_CONVENTION));
#undef PUT
    return print_json(o, failed, 6);
}

static void bench_print_table(const nnrt_model *m, const bench_config *cfg,
                              const bench_result r[NUM_OPS]) {
    printf("%s bench: isa %s, %s, %d thread%s, T %d, B %d; median of %" PRId64
           " runs of >= %lld ms\n\n",
           m->name, bench_isa(m), precision_name(m), cfg->threads, cfg->threads == 1 ? "" : "s",
           m->seq_len, m->batch, cfg->runs, BENCH_MIN_RUN_NS / 1000000);
    printf("  %-8s %12s %12s %12s %9s %14s %10s %10s\n", "", "us/call", "min us", "max us",
           "GFLOP/s", "FLOP/call", "calls/run", "preempted");
    for (int k = 0; k < NUM_OPS; k++)
        printf("  %-8s %12.3f %12.3f %12.3f %9.3f %14" PRId64 " %10" PRId64 " %10" PRId64 "\n",
               bench_ops[k].name, r[k].median_us, r[k].min_us, r[k].max_us, gflops(&r[k]),
               r[k].flops, r[k].calls, r[k].preempted);
    printf("\nstep: one timestep of the B sequences; forward: one sequence of T steps; train:\n"
           "forward with tape and backward of one sequence (no loss, no optimizer).\n"
           "FLOPs: a multiply-add counts 2, elementwise work is not counted;\n%s.\n",
           BENCH_TRAIN_CONVENTION);
}

static void explain_bench(const nnrt_model *m, FILE *out) {
    int64_t flops[NUM_OPS];
    bench_flops(m, flops);
    fprintf(
        out,
        "Times the model's entry points on random weights (init seed 0, packed) and random\n"
        "inputs, reading and writing no files:\n"
        "  step     one timestep of all B = %d sequences through the streaming step API\n"
        "  forward  one sequence of T = seq_len = %d steps, inference\n"
        "  train    forward with tape plus backward of one sequence: no loss (dloss/dy is\n"
        "           fixed random), no optimizer, no dx\n"
        "\n"
        "After %lld ms of warm-up per measurement, each of the --steps runs times as many\n"
        "back-to-back calls as last at least %lld ms; reported are the median time per call\n"
        "and the fastest and slowest run. Between runs, untimed, the state is reset (and the\n"
        "gradients zeroed); within a run it carries over from call to call. A run that lost\n"
        "more than 1%% of its time to other processes (wall time less CPU time) is redone, up\n"
        "to --steps more runs; 'preempted' counts those that remain among the reported ones.\n"
        "\n"
        "FLOPs per call, a multiply-add counting 2, elementwise work not counted: per timestep\n"
        "and sequence a recurrent layer costs 2*G*H*(in + H) (G = 1 rnn, 3 gru, 4 lstm), a\n"
        "dense head layer 2*in*out; step applies the head every call, forward on %s.\n"
        "%s.\n"
        "This model: step %" PRId64 ", forward %" PRId64 ", train %" PRId64 " FLOP.\n"
        "GFLOP/s = FLOPs per call / median time per call.\n"
        "\n"
        "--json prints one object: model, isa, precision, threads, T, B, runs; for each of\n"
        "step, forward and train <m>_us (the median), <m>_min_us, <m>_max_us, <m>_gflops,\n"
        "<m>_calls_per_run, <m>_preempted_runs; flops_step, flops_forward, flops_train and\n"
        "flops_train_convention.\n",
        m->batch, m->seq_len, BENCH_WARMUP_NS / 1000000, BENCH_MIN_RUN_NS / 1000000,
        m->output_last ? "the last step's B rows (output_at \"last\")" : "all T*B rows",
        BENCH_TRAIN_CONVENTION, flops[OP_STEP], flops[OP_FORWARD], flops[OP_TRAIN]);
}

/* Reads bench's options into cfg; prints the problem and returns EXIT_USAGE on a bad one. */
static int parse_bench(const char *const *vals, bench_config *cfg) {
    cfg->runs = BENCH_DEFAULT_RUNS;
    cfg->json = vals[BENCH_JSON] != NULL;
    if (vals[BENCH_STEPS] && parse_count("--steps", vals[BENCH_STEPS], &cfg->runs))
        return EXIT_USAGE;
    if (cfg->runs > BENCH_MAX_RUNS) {
        report("option --steps: at most %d runs, found %" PRId64, BENCH_MAX_RUNS, cfg->runs);
        return EXIT_USAGE;
    }
    return parse_threads(vals[BENCH_THREADS], &cfg->threads);
}

/* bench [--steps N] [--threads N] [--json] */
static int cmd_bench(const nnrt_model *m, const char *const *vals) {
    bench_config cfg;
    int status = parse_bench(vals, &cfg);
    if (status != 0) return status;
    if (!m->step_mt || !m->forward_mt || !m->forward_train_mt || !m->backward_mt || m->tape_bytes == 0) {
        report("model %s lacks entry points bench times (step_mt, forward_mt, forward_train_mt, "
               "backward_mt) for this runtime: regenerate it",
               m->name);
        return EXIT_USAGE;
    }

    bench_ctx c;
    bench_result r[NUM_OPS];
    int64_t flops[NUM_OPS];
    double *samples = malloc(2 * (size_t)cfg.runs * sizeof *samples);
    if (!samples) {
        report("out of memory (%" PRId64 " runs)", cfg.runs);
        return EXIT_USAGE;
    }
    if ((status = bench_open(m, cfg.threads, &c)) != 0) goto done;
    bench_flops(m, flops);
    for (int k = 0; k < NUM_OPS; k++) {
        const bench_op *op = &bench_ops[k];
        r[k].flops = flops[k];
        int rc = bench_measure(&c, &cfg, op, samples, &r[k]);
        if (rc != NNRT_OK) {
            report("%s: %s", op->name, nnrt_last_error());
            status = EXIT_USAGE;
            goto done;
        }
        if (!all_finite(m->dtype, c.y, op->ycount(m)) ||
            (k == OP_TRAIN && !all_finite(m->dtype, c.grads, m->num_params)))
            fprintf(stderr,
                    "%s: warning: %s produced values that are not finite: its time may not be "
                    "representative\n",
                    prog, op->name);
    }
    int64_t preempted = 0;
    for (int k = 0; k < NUM_OPS; k++) preempted += r[k].preempted;
    if (preempted > 0)
        fprintf(stderr,
                "%s: warning: the machine is busy: other processes took more than 1%% of the "
                "time of %" PRId64 " of the %" PRId64 " reported runs, even after redoing as "
                "many; medians may be slow, min is the better estimate\n",
                prog, preempted, NUM_OPS * cfg.runs);
    status = cfg.json ? bench_print_json(m, &cfg, r) : (bench_print_table(m, &cfg, r), 0);
done:
    bench_close(&c);
    free(samples);
    return status;
}

_Static_assert(COUNT(bench_opts) <= MAX_OPTIONS, "raise MAX_OPTIONS");

const command cmd_bench_command = {
    "bench",
    "time step, forward and training on random weights and inputs (no files)",
    bench_opts, COUNT(bench_opts), cmd_bench, explain_bench,
};
