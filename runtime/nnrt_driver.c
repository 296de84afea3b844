/* nnrt_driver.c — the generated driver program, generic over models.
 *
 * Every model's <name>_main.c is one line: main calls nnrt_driver_main(&<name>_model, argc, argv).
 * The commands live in one table; each declares its options, and the parser, the usage lines and
 * the help text are all derived from that table, so a new command is a new row and a new
 * function. This is the one file of the runtime that prints: it is the program.
 *
 * Exit codes (DESIGN.md): 0 success, 1 bad input (files, values), 2 usage or internal error.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, isatty, fileno */

#include "nnrt.h"

#include <jansson.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXIT_INPUT 1 /* a file or value the user gave is wrong */
#define EXIT_USAGE 2 /* the command line is wrong, or the program itself failed */

/* ---- Command table -------------------------------------------------------------------- */

/* An option of a command. All options are optional in the parser's eyes unless required is
 * set; an option with meta == NULL is a flag that takes no value. */
typedef struct option {
    const char *flag; /* "-o", "--seed" */
    const char *meta; /* name of its value in help text ("W.safetensors"), NULL for a flag */
    int required;
    const char *help;
} option;

#define MAX_OPTIONS 16

/* vals[k] holds the value of opts[k] after parsing, NULL when absent ("" for a given flag). */
typedef int (*command_fn)(const nnrt_model *m, const char *const *vals);
typedef void (*explain_fn)(const nnrt_model *m, FILE *out);

typedef struct command {
    const char *name;
    const char *summary;
    const option *opts;
    int nopts;
    command_fn run;
    explain_fn explain; /* model-specific notes after the option list, or NULL */
} command;

static int cmd_init(const nnrt_model *m, const char *const *vals);
static int cmd_forward(const nnrt_model *m, const char *const *vals);
static int cmd_grad(const nnrt_model *m, const char *const *vals);
static int cmd_train(const nnrt_model *m, const char *const *vals);
static int cmd_bench(const nnrt_model *m, const char *const *vals);
static void explain_forward(const nnrt_model *m, FILE *out);
static void explain_grad(const nnrt_model *m, FILE *out);
static void explain_train(const nnrt_model *m, FILE *out);
static void explain_bench(const nnrt_model *m, FILE *out);

enum { INIT_SEED, INIT_OUT };
static const option init_opts[] = {
    [INIT_SEED] = {"--seed", "N", 0, "unsigned 64-bit seed of the default init (default 0)"},
    [INIT_OUT] = {"-o", "W.safetensors", 1, "weights file to write"},
};

enum { FWD_WEIGHTS, FWD_IN, FWD_OUT };
static const option forward_opts[] = {
    [FWD_WEIGHTS] = {"-w", "W.safetensors", 1, "weights file to read"},
    [FWD_IN] = {"-i", "X.npy", 1, "input sequences, time-major"},
    [FWD_OUT] = {"-o", "Y.npy", 1, "outputs to write"},
};

enum { GRAD_WEIGHTS, GRAD_IN, GRAD_TARGET, GRAD_OUT };
static const option grad_opts[] = {
    [GRAD_WEIGHTS] = {"-w", "W.safetensors", 1, "weights file to read"},
    [GRAD_IN] = {"-i", "X.npy", 1, "input sequences, time-major, T <= seq_len"},
    [GRAD_TARGET] = {"-t", "TARGET.npy", 1, "targets of the loss"},
    [GRAD_OUT] = {"-o", "G.safetensors", 1, "gradients to write (the weights' names and shapes)"},
};

enum {
    TRAIN_WEIGHTS,
    TRAIN_IN,
    TRAIN_TARGET,
    TRAIN_STEPS,
    TRAIN_LR,
    TRAIN_OPTIM,
    TRAIN_MOMENTUM,
    TRAIN_NESTEROV,
    TRAIN_DECAY,
    TRAIN_CLIP,
    TRAIN_CKPT,
    TRAIN_EVERY,
    TRAIN_RESUME,
    TRAIN_LOG,
    TRAIN_THREADS,
    TRAIN_OUT
};
static const option train_opts[] = {
    [TRAIN_WEIGHTS] = {"-w", "W.safetensors", 1,
                       "initial weights (replaced by the checkpoint's with --resume)"},
    [TRAIN_IN] = {"-i", "X.npy", 1, "input sequences, time-major; T > seq_len is one long stream"},
    [TRAIN_TARGET] = {"-t", "TARGET.npy", 1, "targets of the loss"},
    [TRAIN_STEPS] = {"--steps", "N", 0,
                     "total optimizer steps, resumed ones included (default 100)"},
    [TRAIN_LR] = {"--lr", "R", 0, "learning rate (default 1e-3)"},
    [TRAIN_OPTIM] = {"--optim", "adam|adamw|sgd", 0, "optimizer, as torch.optim's (default adam)"},
    [TRAIN_MOMENTUM] = {"--momentum", "M", 0, "sgd: momentum (default 0)"},
    [TRAIN_NESTEROV] = {"--nesterov", NULL, 0, "sgd: Nesterov momentum (needs --momentum > 0)"},
    [TRAIN_DECAY] = {"--weight-decay", "D", 0,
                     "L2 penalty; decoupled for adamw (default 0, adamw 0.01)"},
    [TRAIN_CLIP] = {"--clip", "NORM", 0, "clip the gradient's global L2 norm to NORM"},
    [TRAIN_CKPT] = {"--checkpoint", "C.safetensors", 0, "save parameters and optimizer state here"},
    [TRAIN_EVERY] = {"--every", "K", 0, "checkpoint every K steps (default: at the end only)"},
    [TRAIN_RESUME] = {"--resume", NULL, 0, "continue from the checkpoint, bit for bit"},
    [TRAIN_LOG] = {"--log-every", "K", 0,
                   "progress line every K steps when stderr is not a terminal"},
    [TRAIN_THREADS] = {"--threads", "N", 0,
                       "threads of the team the forward and backward run on (default 1; the same "
                       "numbers for any N)"},
    [TRAIN_OUT] = {"-o", "W2.safetensors", 1, "trained weights to write"},
};

enum { BENCH_STEPS, BENCH_THREADS, BENCH_JSON };
static const option bench_opts[] = {
    [BENCH_STEPS] = {"--steps", "N", 0,
                     "timed runs per measurement, their median reported (default 21)"},
    [BENCH_THREADS] = {"--threads", "N", 0, "threads of the team the calls run on (default 1)"},
    [BENCH_JSON] = {"--json", NULL, 0, "print one JSON object instead of the table"},
};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))
_Static_assert(COUNT(init_opts) <= MAX_OPTIONS && COUNT(forward_opts) <= MAX_OPTIONS &&
                   COUNT(grad_opts) <= MAX_OPTIONS && COUNT(train_opts) <= MAX_OPTIONS &&
                   COUNT(bench_opts) <= MAX_OPTIONS,
               "raise MAX_OPTIONS");

static const command commands[] = {
    {"init", "write PyTorch-style default weights", init_opts, COUNT(init_opts), cmd_init, NULL},
    {"forward", "run the network over X and write its outputs Y", forward_opts, COUNT(forward_opts),
     cmd_forward, explain_forward},
    {"grad", "one forward and backward from the zero state: print the loss, write the gradients",
     grad_opts, COUNT(grad_opts), cmd_grad, explain_grad},
    {"train", "train on X and TARGET (truncated BPTT when T > seq_len), write the weights",
     train_opts, COUNT(train_opts), cmd_train, explain_train},
    {"bench", "time step, forward and training on random weights and inputs (no files)", bench_opts,
     COUNT(bench_opts), cmd_bench, explain_bench},
};

/* ---- Messages --------------------------------------------------------------------------- */

static const char *prog; /* the model name: every message starts with it */
static int line_open;    /* train's progress line is on the terminal without its newline */

#if defined(__GNUC__)
#define PRINTF_LIKE(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define PRINTF_LIKE(fmt_index, first_arg)
#endif

/* "<name>: error: <message>" on stderr. */
static void report(const char *fmt, ...) PRINTF_LIKE(1, 2);
static void report(const char *fmt, ...) {
    va_list ap;
    if (line_open) fputc('\n', stderr);
    line_open = 0;
    fprintf(stderr, "%s: error: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Reports a failed runtime call: its detailed message, which names the file, or the code's
 * short text after path when the runtime left none. Returns the exit code. */
static int runtime_error(int rc, const char *path) {
    const char *msg = nnrt_last_error();
    if (msg[0] != '\0')
        report("%s", msg);
    else
        report("%s: %s", path, nnrt_strerror(rc));
    return rc == NNRT_ERR_NOMEM ? EXIT_USAGE : EXIT_INPUT;
}

static void print_synopsis(FILE *out, const command *c) {
    fprintf(out, "%s %s", prog, c->name);
    for (int k = 0; k < c->nopts; k++) {
        const option *o = &c->opts[k];
        fprintf(out, o->required ? " %s" : " [%s", o->flag);
        if (o->meta) fprintf(out, " %s", o->meta);
        if (!o->required) fputc(']', out);
    }
    fputc('\n', out);
}

/* Follows a usage error: the command's synopsis, or where to find the commands. */
static void print_usage_hint(const command *c) {
    if (c) {
        fprintf(stderr, "usage: ");
        print_synopsis(stderr, c);
    } else {
        fprintf(stderr, "Run '%s --help' for the commands and the model.\n", prog);
    }
}

static const char *cell_name(int cell) {
    static const char *const names[] = {"rnn(tanh)", "rnn(relu)", "gru", "lstm"};
    return cell >= 0 && cell < COUNT(names) ? names[cell] : "?";
}

static const char *act_name(int act) {
    static const char *const names[] = {"linear", "relu", "tanh", "sigmoid"};
    return act >= 0 && act < COUNT(names) ? names[act] : "?";
}

static const char *loss_name(int loss) {
    static const char *const names[] = {"mse", "cross_entropy", "bce"};
    return loss >= 0 && loss < COUNT(names) ? names[loss] : "?";
}

static const char *precision_name(const nnrt_model *m) {
    return m->dtype == NNRT_F64 ? "f64" : "f32";
}

static void print_model(const nnrt_model *m, FILE *out) {
    fprintf(out, "model %s: isa %s, precision %s\n", m->name, m->isa, precision_name(m));
    fprintf(out, "  input %d, output %d, seq_len %d, batch %d, output at %s, loss %s\n", m->input,
            m->output, m->seq_len, m->batch, m->output_last ? "last" : "all",
            loss_name(m->loss_kind));
    fprintf(out, "  %zu parameters in %d tensors\n", m->num_params, m->num_tensors);
    fprintf(out, "  recurrent layers:\n");
    for (int k = 0; k < m->num_layers; k++)
        fprintf(out, "    %d: %-9s %d -> %d\n", k, cell_name(m->layers[k].cell), m->layers[k].input,
                m->layers[k].hidden);
    if (m->num_heads == 0)
        fprintf(out, "  head: none\n");
    else
        fprintf(out, "  head:\n");
    for (int j = 0; j < m->num_heads; j++)
        fprintf(out, "    %d: dense %-7s %d -> %d\n", j, act_name(m->heads[j].act),
                m->heads[j].input, m->heads[j].output);
}

static void print_help(const nnrt_model *m) {
    printf("usage: %s <command> [options]\n\ncommands:\n", prog);
    for (int i = 0; i < COUNT(commands); i++) {
        printf("  ");
        print_synopsis(stdout, &commands[i]);
        printf("      %s\n", commands[i].summary);
    }
    printf("\n");
    print_model(m, stdout);
    printf("\nRun '%s <command> --help' for a command's options.\n", prog);
}

static void print_command_help(const nnrt_model *m, const command *c) {
    printf("usage: ");
    print_synopsis(stdout, c);
    printf("%s\n\n", c->summary);
    int width = 18; /* the option column: as wide as the widest "flag META" */
    for (int k = 0; k < c->nopts; k++) {
        const option *o = &c->opts[k];
        int len = (int)strlen(o->flag) + (o->meta ? 1 + (int)strlen(o->meta) : 0);
        if (len > width) width = len;
    }
    for (int k = 0; k < c->nopts; k++) {
        const option *o = &c->opts[k];
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", o->flag, o->meta ? " " : "", o->meta ? o->meta : "");
        printf("  %-*s %s\n", width, left, o->help);
    }
    printf("  %-*s %s\n", width, "-h, --help", "show this help");
    if (c->explain) {
        printf("\n");
        c->explain(m, stdout);
    }
}

/* ---- Parsing ---------------------------------------------------------------------------- */

#define PARSED_HELP (-1) /* help was printed: exit 0 */

/* Fills vals from argv (the arguments after the command name). Returns 0, PARSED_HELP, or
 * EXIT_USAGE after printing the error. */
static int parse_options(const nnrt_model *m, const command *c, int argc, char **argv,
                         const char **vals) {
    for (int k = 0; k < c->nopts; k++) vals[k] = NULL;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            print_command_help(m, c);
            return PARSED_HELP;
        }
        int k = 0;
        while (k < c->nopts && strcmp(arg, c->opts[k].flag) != 0) k++;
        if (k == c->nopts) {
            if (arg[0] == '-')
                report("%s: unknown option '%s'", c->name, arg);
            else
                report("%s: unexpected argument '%s'", c->name, arg);
            print_usage_hint(c);
            return EXIT_USAGE;
        }
        if (vals[k]) {
            report("%s: option %s given twice", c->name, arg);
            return EXIT_USAGE;
        }
        if (!c->opts[k].meta) {
            vals[k] = "";
            continue;
        }
        if (i + 1 == argc) {
            report("%s: option %s needs a value (%s)", c->name, arg, c->opts[k].meta);
            print_usage_hint(c);
            return EXIT_USAGE;
        }
        vals[k] = argv[++i];
    }
    for (int k = 0; k < c->nopts; k++) {
        if (c->opts[k].required && !vals[k]) {
            report("%s: missing %s %s", c->name, c->opts[k].flag, c->opts[k].meta);
            print_usage_hint(c);
            return EXIT_USAGE;
        }
    }
    return 0;
}

/* Decimal digits only, the whole string, within range: no sign, no blanks, no 0x. */
static int parse_u64(const char *flag, const char *s, uint64_t *out) {
    char *end;
    if (s[0] < '0' || s[0] > '9') goto bad;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') goto bad;
    *out = (uint64_t)v;
    return 0;
bad:
    report("option %s: expected an unsigned 64-bit integer, found '%s'", flag, s);
    return EXIT_USAGE;
}

/* A count: decimal digits only, within 1..INT64_MAX. */
static int parse_count(const char *flag, const char *s, int64_t *out) {
    char *end;
    if (s[0] < '0' || s[0] > '9') goto bad;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > (unsigned long long)INT64_MAX) goto bad;
    *out = (int64_t)v;
    return 0;
bad:
    report("option %s: expected a positive integer, found '%s'", flag, s);
    return EXIT_USAGE;
}

/* --threads N (s may be NULL: 1), within 1..NNRT_MAX_THREADS. */
static int parse_threads(const char *s, int *out) {
    int64_t n = 1;
    if (s && parse_count("--threads", s, &n)) return EXIT_USAGE;
    if (n > NNRT_MAX_THREADS) {
        report("option --threads: %" PRId64 " threads requested, at most %d", n, NNRT_MAX_THREADS);
        return EXIT_USAGE;
    }
    *out = (int)n;
    return 0;
}

/* The team of --threads N (NULL for one thread). Prints what went wrong; returns 0 or an exit code. */
static int open_team(int threads, nnrt_workers **team) {
    *team = NULL;
    if (threads > 1 && nnrt_workers_create(threads, team) != NNRT_OK) {
        report("%s", nnrt_last_error());
        return EXIT_USAGE;
    }
    return 0;
}

/* A finite decimal number >= 0 (> 0 when positive): digits with an optional fraction and
 * exponent, as "0.01", "3e-4" or ".5"; no sign, blanks, hex, inf or nan. */
static int parse_real(const char *flag, const char *s, int positive, double *out) {
    char *end;
    if (!((s[0] >= '0' && s[0] <= '9') || s[0] == '.')) goto bad;
    for (const char *p = s; *p; p++)
        if (!strchr("0123456789.eE+-", *p)) goto bad;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || (positive && !(v > 0))) goto bad;
    *out = v;
    return 0;
bad:
    report("option %s: expected a finite number %s 0, found '%s'", flag, positive ? ">" : ">=", s);
    return EXIT_USAGE;
}

/* ---- Commands ----------------------------------------------------------------------------- */

/* init [--seed N] -o W.safetensors */
static int cmd_init(const nnrt_model *m, const char *const *vals) {
    uint64_t seed = 0;
    if (vals[INIT_SEED] && parse_u64("--seed", vals[INIT_SEED], &seed) != 0) return EXIT_USAGE;
    void *params = nnrt_alloc(m->params_bytes);
    if (!params) {
        report("out of memory (%zu bytes of parameters)", m->params_bytes);
        return EXIT_USAGE;
    }
    nnrt_model_init(m, params, seed);
    int rc = nnrt_model_save(m, params, vals[INIT_OUT]);
    nnrt_free(params);
    return rc == NNRT_OK ? 0 : runtime_error(rc, vals[INIT_OUT]);
}

static void explain_forward(const nnrt_model *m, FILE *out) {
    const char *dt = nnrt_dtype_name(m->dtype);
    fprintf(out, "X is %s [T, %d, %d] (T steps, batch %d, input %d), T >= 1; T > %d runs in\n", dt,
            m->batch, m->input, m->batch, m->input, m->seq_len);
    fprintf(out, "chunks of at most %d steps carrying the state, with the same result.\n",
            m->seq_len);
    if (m->output_last)
        fprintf(out, "Y is %s [%d, %d]: the output after the last step.\n", dt, m->batch,
                m->output);
    else
        fprintf(out, "Y is %s [T, %d, %d]: the output at every step.\n", dt, m->batch, m->output);
}

static void format_dims(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && n < size; d++)
        n += (size_t)snprintf(buf + n, size - n, "%s%" PRId64, d ? ", " : "", shape[d]);
    if (n < size) snprintf(buf + n, size - n, "]");
}

static void format_shape(char *buf, size_t size, const nnrt_array *a) {
    format_dims(buf, size, a->ndim, a->shape);
}

/* X must be m->dtype, [T][B][I] with T >= 1. Prints the mismatch; returns 0 or EXIT_INPUT. */
static int check_input(const nnrt_model *m, const char *path, const nnrt_array *x) {
    if (x->dtype != m->dtype) {
        report("%s: expected dtype %s, found %s", path, nnrt_dtype_name(m->dtype),
               nnrt_dtype_name(x->dtype));
        return EXIT_INPUT;
    }
    if (x->ndim != 3 || x->shape[0] < 1 || x->shape[1] != m->batch || x->shape[2] != m->input) {
        char found[NNRT_MAX_DIMS * 24 + 4];
        format_shape(found, sizeof found, x);
        report("%s: expected shape [T, %d, %d] with 1 <= T, found %s", path, m->batch, m->input,
               found);
        return EXIT_INPUT;
    }
    return 0;
}

/* Runs T steps from a zero state, seq_len steps at a time, carrying the state across chunks,
 * with the packed weights. With output_last every chunk overwrites y, so the last chunk's output
 * is what remains. */
static int run_chunks(const nnrt_model *m, const void *weights, void *state, void *work, int64_t T,
                      const char *x, char *y) {
    size_t esize = nnrt_dtype_size(m->dtype);
    size_t x_step = (size_t)m->batch * (size_t)m->input * esize;
    size_t y_step = m->output_last ? 0 : (size_t)m->batch * (size_t)m->output * esize;
    m->reset(state);
    for (int64_t t0 = 0; t0 < T; t0 += m->seq_len) {
        int n = T - t0 < m->seq_len ? (int)(T - t0) : m->seq_len;
        int rc =
            m->forward(weights, state, work, n, x + (size_t)t0 * x_step, y + (size_t)t0 * y_step);
        if (rc != NNRT_OK) return rc;
    }
    return NNRT_OK;
}

/* forward -w W.safetensors -i X.npy -o Y.npy */
static int cmd_forward(const nnrt_model *m, const char *const *vals) {
    const char *wpath = vals[FWD_WEIGHTS], *xpath = vals[FWD_IN], *ypath = vals[FWD_OUT];
    nnrt_array x = {0}, y = {0};
    void *params = nnrt_alloc(m->params_bytes);
    void *weights = nnrt_alloc(m->weights_bytes);
    void *state = nnrt_alloc(m->state_bytes);
    void *work = nnrt_alloc(m->work_bytes);
    int status = 0, rc;

    if (!params || !weights || !state || !work) {
        report("out of memory (%zu bytes of parameters, weights, state and work)",
               m->params_bytes + m->weights_bytes + m->state_bytes + m->work_bytes);
        status = EXIT_USAGE;
        goto done;
    }
    if ((rc = nnrt_model_load(m, params, wpath)) != NNRT_OK) {
        status = runtime_error(rc, wpath);
        goto done;
    }
    m->pack(params, weights);
    if ((rc = nnrt_npy_read(xpath, &x)) != NNRT_OK) {
        status = runtime_error(rc, xpath);
        goto done;
    }
    if ((status = check_input(m, xpath, &x)) != 0) goto done;

    int64_t T = x.shape[0];
    size_t row = (size_t)m->batch * (size_t)m->output; /* elements of y per step */
    y.dtype = m->dtype;
    if (m->output_last) {
        y.ndim = 2, y.shape[0] = m->batch, y.shape[1] = m->output;
        y.count = row;
    } else {
        if ((uint64_t)T > SIZE_MAX / nnrt_dtype_size(m->dtype) / (row ? row : 1)) {
            report("%s: %" PRId64 " steps are too many to hold the outputs", xpath, T);
            status = EXIT_INPUT;
            goto done;
        }
        y.ndim = 3, y.shape[0] = T, y.shape[1] = m->batch, y.shape[2] = m->output;
        y.count = (size_t)T * row;
    }
    if (!(y.data = nnrt_alloc(y.count * nnrt_dtype_size(m->dtype)))) {
        report("out of memory (%zu outputs)", y.count);
        status = EXIT_USAGE;
        goto done;
    }
    if ((rc = run_chunks(m, weights, state, work, T, x.data, y.data)) != NNRT_OK) {
        status = runtime_error(rc, xpath);
        goto done;
    }
    if ((rc = nnrt_npy_write(ypath, &y)) != NNRT_OK) status = runtime_error(rc, ypath);

done:
    nnrt_array_free(&y);
    nnrt_array_free(&x);
    nnrt_free(work);
    nnrt_free(state);
    nnrt_free(weights);
    nnrt_free(params);
    return status;
}

/* ---- Training data: X and TARGET ---------------------------------------------------------- */

static int is_ce(const nnrt_model *m) { return m->loss_kind == NNRT_LOSS_CROSS_ENTROPY; }

/* X and TARGET, read and checked. The loss takes its target in m->target_dtype: class indices
 * arrive as int32 or int64 and are handed over as int32 (converted from int64 into classes). */
typedef struct dataset {
    nnrt_array x, target;
    int32_t *classes;      /* int64 class indices converted, or NULL */
    const char *tdata;     /* the target as the loss takes it */
    int64_t T;             /* timesteps of X */
    size_t x_step, t_step; /* bytes per timestep of X and of the target (0 with output_last) */
} dataset;

static void dataset_free(dataset *d) {
    nnrt_free(d->classes);
    nnrt_array_free(&d->target);
    nnrt_array_free(&d->x);
}

/* TARGET must match the loss and X: dtype, shape, and class indices in 0..output-1. Prints the
 * mismatch; returns 0 or EXIT_INPUT. */
static int check_target(const nnrt_model *m, const char *tpath, const char *xpath, dataset *d) {
    const nnrt_array *t = &d->target;
    const int ce = is_ce(m);
    if (ce && t->dtype != NNRT_I32 && t->dtype != NNRT_I64) {
        report("%s: expected class indices, int32 or int64 (loss cross_entropy), found %s", tpath,
               nnrt_dtype_name(t->dtype));
        return EXIT_INPUT;
    }
    if (!ce && t->dtype != m->dtype) {
        report("%s: expected dtype %s, the model's (loss %s), found %s", tpath,
               nnrt_dtype_name(m->dtype), loss_name(m->loss_kind), nnrt_dtype_name(t->dtype));
        return EXIT_INPUT;
    }
    int64_t want[3];
    int nd = 0;
    if (!m->output_last) want[nd++] = d->T;
    want[nd++] = m->batch;
    if (!ce) want[nd++] = m->output;
    int same = t->ndim == nd;
    for (int k = 0; same && k < nd; k++) same = t->shape[k] == want[k];
    if (!same) {
        char wanted[80], found[NNRT_MAX_DIMS * 24 + 4], layout[160];
        format_dims(wanted, sizeof wanted, nd, want);
        format_dims(found, sizeof found, t->ndim, t->shape);
        if (m->output_last)
            snprintf(layout, sizeof layout, "%s: output at the last step only",
                     ce ? "[batch] class indices" : "[batch, output]");
        else
            snprintf(layout, sizeof layout, "%s with T = %" PRId64 " as in %s",
                     ce ? "[T, batch] class indices" : "[T, batch, output]", d->T, xpath);
        report("%s: expected shape %s (%s), found %s", tpath, wanted, layout, found);
        return EXIT_INPUT;
    }
    if (!ce) {
        d->tdata = t->data;
        d->t_step =
            m->output_last ? 0 : (size_t)m->batch * (size_t)m->output * nnrt_dtype_size(m->dtype);
        return 0;
    }
    for (size_t i = 0; i < t->count; i++) {
        int64_t v =
            t->dtype == NNRT_I32 ? ((const int32_t *)t->data)[i] : ((const int64_t *)t->data)[i];
        if (v >= 0 && v < m->output) continue;
        char where[64];
        if (m->output_last)
            snprintf(where, sizeof where, "[%zu]", i);
        else
            snprintf(where, sizeof where, "[%zu][%zu]", i / (size_t)m->batch, i % (size_t)m->batch);
        report("%s: target%s = %" PRId64 " is not a class index in 0..%d", tpath, where, v,
               m->output - 1);
        return EXIT_INPUT;
    }
    if (t->dtype == NNRT_I64) {
        if (!(d->classes = nnrt_alloc(t->count * sizeof(int32_t)))) {
            report("out of memory (%zu class indices)", t->count);
            return EXIT_USAGE;
        }
        for (size_t i = 0; i < t->count; i++)
            d->classes[i] = (int32_t)((const int64_t *)t->data)[i];
        d->tdata = (const char *)d->classes;
    } else {
        d->tdata = t->data;
    }
    d->t_step = m->output_last ? 0 : (size_t)m->batch * sizeof(int32_t);
    return 0;
}

static int load_data(const nnrt_model *m, const char *xpath, const char *tpath, dataset *d) {
    int rc, status;
    if ((rc = nnrt_npy_read(xpath, &d->x)) != NNRT_OK) return runtime_error(rc, xpath);
    if ((status = check_input(m, xpath, &d->x)) != 0) return status;
    d->T = d->x.shape[0];
    d->x_step = (size_t)m->batch * (size_t)m->input * nnrt_dtype_size(m->dtype);
    if ((rc = nnrt_npy_read(tpath, &d->target)) != NNRT_OK) return runtime_error(rc, tpath);
    return check_target(m, tpath, xpath, d);
}

/* ---- A training session: weights, data, and the buffers of one forward and backward ------ */

typedef struct session {
    const nnrt_model *m;
    nnrt_workers *team; /* NULL: the calling thread alone */
    dataset d;
    void *params, *grads, *state, *tape;
    void *weights;   /* params packed for the forward: session_pack after every change */
    void *y, *dy;    /* outputs of one chunk and dloss/dy */
    int64_t nchunks; /* chunks of at most seq_len steps in X: 1 when T <= seq_len */
} session;

static void session_close(session *s) {
    nnrt_workers_destroy(s->team);
    dataset_free(&s->d);
    nnrt_free(s->dy);
    nnrt_free(s->y);
    nnrt_free(s->tape);
    nnrt_free(s->state);
    nnrt_free(s->weights);
    nnrt_free(s->grads);
    nnrt_free(s->params);
}

/* The forward reads the packed weights, the backward the parameters: after loading or changing
 * the parameters, pack them. */
static void session_pack(session *s) { s->m->pack(s->params, s->weights); }

/* Loads W, X and TARGET and allocates what a step needs. Prints what went wrong; returns 0 or
 * an exit code. s must be closed either way. */
static int session_open(const nnrt_model *m, const char *wpath, const char *xpath,
                        const char *tpath, session *s) {
    memset(s, 0, sizeof *s);
    s->m = m;
    if (!m->forward_train_mt || !m->loss || !m->backward_mt || m->tape_bytes == 0 ||
        (m->target_dtype != (is_ce(m) ? NNRT_I32 : m->dtype))) {
        report("model %s has no training entry points for this runtime: regenerate it", m->name);
        return EXIT_USAGE;
    }
    size_t rows = (m->output_last ? 1 : (size_t)m->seq_len) * (size_t)m->batch;
    size_t ybytes = rows * (size_t)m->output * nnrt_dtype_size(m->dtype);
    s->params = nnrt_alloc(m->params_bytes);
    s->weights = nnrt_alloc(m->weights_bytes);
    s->grads = nnrt_alloc(m->params_bytes);
    s->state = nnrt_alloc(m->state_bytes);
    s->tape = nnrt_alloc(m->tape_bytes);
    s->y = nnrt_alloc(ybytes);
    s->dy = nnrt_alloc(ybytes);
    if (!s->params || !s->weights || !s->grads || !s->state || !s->tape || !s->y || !s->dy) {
        report("out of memory (%zu bytes of parameters, weights, gradients, state, tape and "
               "outputs)",
               2 * m->params_bytes + m->weights_bytes + m->state_bytes + m->tape_bytes +
                   2 * ybytes);
        return EXIT_USAGE;
    }
    int rc = nnrt_model_load(m, s->params, wpath);
    if (rc != NNRT_OK) return runtime_error(rc, wpath);
    session_pack(s);
    int status = load_data(m, xpath, tpath, &s->d);
    if (status != 0) return status;
    s->nchunks = 1 + (s->d.T - 1) / m->seq_len;
    return 0;
}

/* Chunk c of X: forward_train from the current state (which it advances), the loss, and with
 * backward set dloss/dy and the backward pass adding into grads. Returns an NNRT_* code. */
static int run_chunk(session *s, int64_t c, int backward, double *loss, int *steps) {
    const nnrt_model *m = s->m;
    int64_t t0 = c * m->seq_len;
    int n = s->d.T - t0 < m->seq_len ? (int)(s->d.T - t0) : m->seq_len;
    const char *x = (const char *)s->d.x.data + (size_t)t0 * s->d.x_step;
    const char *target = s->d.tdata + (size_t)t0 * s->d.t_step;
    if (steps) *steps = n;
    int rc = m->forward_train_mt(s->team, s->weights, s->state, s->tape, n, x, s->y);
    if (rc == NNRT_OK) rc = m->loss(n, s->y, target, loss, backward ? s->dy : NULL);
    if (rc == NNRT_OK && backward && isfinite(*loss))
        rc = m->backward_mt(s->team, s->params, s->tape, x, s->dy, s->grads, NULL);
    return rc;
}

/* The loss of the current parameters over all of X from the zero state: with chunks, the mean
 * over all terms, as one loss over the whole stream would take it. */
static int evaluate(session *s, double *loss) {
    s->m->reset(s->state);
    if (s->nchunks == 1) return run_chunk(s, 0, 0, loss, NULL);
    double sum = 0;
    for (int64_t c = 0; c < s->nchunks; c++) {
        double l;
        int n, rc = run_chunk(s, c, 0, &l, &n);
        if (rc != NNRT_OK) return rc;
        sum += l * n;
    }
    *loss = sum / (double)s->d.T;
    return NNRT_OK;
}

static const char *nonfinite_name(double v) { return isnan(v) ? "nan" : v > 0 ? "inf" : "-inf"; }

static int all_finite(nnrt_dtype dtype, const void *p, size_t n) {
    if (dtype == NNRT_F32) {
        for (size_t i = 0; i < n; i++)
            if (!isfinite(((const float *)p)[i])) return 0;
    } else {
        for (size_t i = 0; i < n; i++)
            if (!isfinite(((const double *)p)[i])) return 0;
    }
    return 1;
}

/* Names the first non-finite gradient element, by tensor and index, into buf. */
static const char *describe_nonfinite(const nnrt_model *m, const void *grads, char *buf,
                                      size_t size) {
    snprintf(buf, size, "the gradient is not finite");
    for (int k = 0; k < m->num_tensors; k++) {
        const nnrt_param_desc *d = &m->tensors[k];
        for (size_t i = 0; i < d->count; i++) {
            double v = m->dtype == NNRT_F32 ? ((const float *)grads)[d->offset + i]
                                            : ((const double *)grads)[d->offset + i];
            if (isfinite(v)) continue;
            if (d->ndim == 2)
                snprintf(buf, size, "the gradient of %s is %s at [%zu, %zu]", d->name,
                         nonfinite_name(v), i / (size_t)d->shape[1], i % (size_t)d->shape[1]);
            else
                snprintf(buf, size, "the gradient of %s is %s at [%zu]", d->name, nonfinite_name(v),
                         i);
            return buf;
        }
    }
    return buf;
}

/* Target shapes of this model, for the help text. */
static void explain_target(const nnrt_model *m, FILE *out, const char *T) {
    if (is_ce(m) && m->output_last)
        fprintf(out,
                "TARGET is int32 or int64 class indices [%d] in 0..%d (output at the last step).\n",
                m->batch, m->output - 1);
    else if (is_ce(m))
        fprintf(out, "TARGET is int32 or int64 class indices [%s, %d] in 0..%d.\n", T, m->batch,
                m->output - 1);
    else if (m->output_last)
        fprintf(out, "TARGET is %s [%d, %d] (output at the last step), loss %s.\n",
                nnrt_dtype_name(m->dtype), m->batch, m->output, loss_name(m->loss_kind));
    else
        fprintf(out, "TARGET is %s [%s, %d, %d], loss %s.\n", nnrt_dtype_name(m->dtype), T,
                m->batch, m->output, loss_name(m->loss_kind));
}

static void explain_grad(const nnrt_model *m, FILE *out) {
    fprintf(out, "X is %s [T, %d, %d] with 1 <= T <= %d: one sequence from the zero state.\n",
            nnrt_dtype_name(m->dtype), m->batch, m->input, m->seq_len);
    explain_target(m, out, "T");
    fprintf(out,
            "Prints \"loss <value>\" (the mean loss) on stdout; G holds dloss/dW under the\n"
            "weights' tensor names and shapes. A NaN or infinite loss or gradient is an error\n"
            "(exit 1) that names the first bad gradient element; nothing is written.\n");
}

/* grad -w W.safetensors -i X.npy -t TARGET.npy -o G.safetensors */
static int cmd_grad(const nnrt_model *m, const char *const *vals) {
    const char *xpath = vals[GRAD_IN], *gpath = vals[GRAD_OUT];
    session s;
    double loss;
    int rc, status = session_open(m, vals[GRAD_WEIGHTS], xpath, vals[GRAD_TARGET], &s);
    if (status != 0) goto done;
    if (s.d.T > m->seq_len) {
        report("%s: T = %" PRId64 " steps is more than seq_len %d: grad takes one sequence of at "
               "most %d steps; use 'train' for truncated BPTT over a longer stream",
               xpath, s.d.T, m->seq_len, m->seq_len);
        status = EXIT_INPUT;
        goto done;
    }
    m->reset(s.state);
    if ((rc = run_chunk(&s, 0, 1, &loss, NULL)) != NNRT_OK) {
        status = runtime_error(rc, xpath);
        goto done;
    }
    if (!isfinite(loss)) {
        report("loss is %s", nonfinite_name(loss));
        status = EXIT_INPUT;
        goto done;
    }
    if (!all_finite(m->dtype, s.grads, m->num_params)) {
        char what[256];
        report("%s (loss %.9g)", describe_nonfinite(m, s.grads, what, sizeof what), loss);
        status = EXIT_INPUT;
        goto done;
    }
    if ((rc = nnrt_model_save(m, s.grads, gpath)) != NNRT_OK) {
        status = runtime_error(rc, gpath);
        goto done;
    }
    printf("loss %.9g\n", loss);
done:
    session_close(&s);
    return status;
}

/* ---- train ---------------------------------------------------------------------------------- */

/* The state carried from chunk to chunk of a stream is not part of a checkpoint
 * (nnrt_checkpoint_save holds parameters and optimizer state), so a streaming run saves it
 * beside the checkpoint, in <C>.stream, just before each checkpoint. The file keeps the states
 * of the last two saves, so a crash between the two writes still leaves the one that matches
 * the checkpoint. Tensors: stream.length I64 [1] (T of X), stream.step I64 [2] (the step of
 * each state, newest first, -1 for none), stream.state [2, elements of the state]. */
typedef struct stream_file {
    char *path;       /* NULL when the run is not a stream or has no checkpoint */
    size_t count;     /* elements of the state */
    int64_t length;   /* T of X */
    int64_t steps[2]; /* step of each saved state, newest first */
    char *states;     /* [2][count] */
} stream_file;

static void stream_tensors(const nnrt_model *m, stream_file *f, int64_t *length, int64_t *steps,
                           nnrt_tensor t[3]) {
    t[0] = (nnrt_tensor){"stream.length", NNRT_I64, 1, {1}, length};
    t[1] = (nnrt_tensor){"stream.step", NNRT_I64, 1, {2}, steps};
    t[2] = (nnrt_tensor){"stream.state", m->dtype, 2, {2, (int64_t)f->count}, f->states};
}

/* Saves state as the newest entry, the previous save's as the older one. */
static int stream_save(const nnrt_model *m, stream_file *f, const void *state, int64_t step) {
    size_t bytes = f->count * nnrt_dtype_size(m->dtype);
    nnrt_tensor t[3];
    memcpy(f->states, state, bytes);
    f->steps[0] = step;
    stream_tensors(m, f, &f->length, f->steps, t);
    int rc = nnrt_safetensors_write(f->path, t, 3);
    if (rc != NNRT_OK) return runtime_error(rc, f->path);
    memcpy(f->states + bytes, f->states, bytes);
    f->steps[1] = step;
    return 0;
}

/* Restores the state at step (inside the stream) into state. */
static int stream_load(const nnrt_model *m, stream_file *f, void *state, int64_t step,
                       const char *xpath) {
    size_t bytes = f->count * nnrt_dtype_size(m->dtype);
    int64_t length, steps[2];
    nnrt_tensor t[3];
    stream_tensors(m, f, &length, steps, t);
    int rc = nnrt_safetensors_read(f->path, t, 3);
    if (rc != NNRT_OK) {
        runtime_error(rc, f->path);
        report("resuming at step %" PRId64 ", inside the stream, needs the carried state saved "
               "beside the checkpoint",
               step);
        return rc == NNRT_ERR_NOMEM ? EXIT_USAGE : EXIT_INPUT;
    }
    if (length != f->length) {
        report("%s: saved for a stream of %" PRId64 " steps, but %s has %" PRId64, f->path, length,
               xpath, f->length);
        return EXIT_INPUT;
    }
    int k = steps[0] == step ? 0 : steps[1] == step ? 1 : -1;
    if (k < 0) {
        report("%s: holds the carried state of steps %" PRId64 " and %" PRId64
               ", not of step %" PRId64 " where the checkpoint is",
               f->path, steps[0], steps[1], step);
        return EXIT_INPUT;
    }
    memcpy(state, f->states + (size_t)k * bytes, bytes);
    memcpy(f->states + bytes, state, bytes);
    f->steps[0] = -1;
    f->steps[1] = step;
    return 0;
}

/* Progress on stderr: a line redrawn in place on a terminal, plain lines otherwise. */
typedef struct progress {
    int tty; /* stderr is a terminal */
    int64_t first, total, every;
    double start, last_draw;
} progress;

#define BAR_WIDTH 20

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void format_duration(char *buf, size_t size, double s) {
    if (s < 60)
        snprintf(buf, size, "%.1fs", s);
    else if (s < 3600)
        snprintf(buf, size, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else if (s < 1e8)
        snprintf(buf, size, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else
        snprintf(buf, size, "-");
}

static void progress_update(progress *p, int64_t step, double loss) {
    double now = now_seconds(), elapsed = now - p->start;
    double rate = elapsed > 0 ? (double)(step - p->first) / elapsed : 0;
    int last = step == p->total;
    if (p->tty) {
        if (!last && now - p->last_draw < 0.1) return;
        p->last_draw = now;
        char bar[BAR_WIDTH + 1], eta[32];
        int fill = (int)((double)step / (double)p->total * BAR_WIDTH);
        for (int k = 0; k < BAR_WIDTH; k++) bar[k] = k < fill ? '#' : '.';
        bar[BAR_WIDTH] = '\0';
        format_duration(eta, sizeof eta, rate > 0 ? (double)(p->total - step) / rate : 1e9);
        fprintf(stderr, "\rstep %" PRId64 "/%" PRId64 " [%s] loss %.4g  %.0f steps/s  ETA %s\033[K",
                step, p->total, bar, loss, rate, eta);
        if (last) fputc('\n', stderr);
        line_open = !last;
        fflush(stderr);
    } else if (step % p->every == 0 || last) {
        fprintf(stderr, "step %" PRId64 "/%" PRId64 " loss %.4g %.1f steps/s\n", step, p->total,
                loss, rate);
    }
}

/* Two paths name one file: the same text, or the same existing file. */
static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (strcmp(a, b) == 0) return 1;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static void explain_train(const nnrt_model *m, FILE *out) {
    fprintf(out, "X is %s [T, %d, %d], T >= 1.\n", nnrt_dtype_name(m->dtype), m->batch, m->input);
    explain_target(m, out, "T");
    fprintf(out, "T <= %d: every step trains on the whole sequence from the zero state.\n",
            m->seq_len);
    if (m->output_last)
        fprintf(out, "T > %d is an error: this model's output is at the last step only.\n",
                m->seq_len);
    else
        fprintf(
            out,
            "T > %d: X is one long stream, trained with truncated BPTT: chunks of %d steps (the\n"
            "last one shorter), the state carried from chunk to chunk with no gradient across,\n"
            "the zero state again when the stream wraps; one optimizer step per chunk.\n",
            m->seq_len, m->seq_len);
    fprintf(
        out,
        "\n"
        "Each step: forward, loss, backward, optional clipping, the optimizer's update. A NaN\n"
        "or infinite loss or gradient stops the run (exit 1) before the update; -o and the\n"
        "checkpoint are never written with bad parameters.\n"
        "\n"
        "--steps is the total: --resume restores parameters, optimizer state and step count\n"
        "from the checkpoint and continues up to N, so `train --steps 10` equals\n"
        "`train --steps 6 --checkpoint C` followed by `train --steps 10 --checkpoint C --resume`\n"
        "bit for bit, given the same options: the checkpoint holds the optimizer's kind and\n"
        "state but not its hyper-parameters. A stream also saves the state it carries from\n"
        "chunk to chunk beside C, in C.stream, which resuming inside the stream needs.\n"
        "Without --resume, a new run replaces C at its first save.\n"
        "\n"
        "Progress goes to stderr. At the end \"final loss <value>\" on stdout: the loss of the\n"
        "trained weights over all of X, from the zero state.\n");
}

typedef struct train_config {
    int64_t steps, every, log_every;
    double clip; /* 0: off */
    nnrt_optim_config optim;
    const char *checkpoint;
    int resume;
    int threads;
} train_config;

/* Reads train's options into c; prints the problem and returns EXIT_USAGE on a bad one. */
static int parse_train(const char *const *vals, train_config *c) {
    static const struct {
        const char *name;
        int kind;
    } optimizers[] = {{"adam", NNRT_OPT_ADAM}, {"adamw", NNRT_OPT_ADAMW}, {"sgd", NNRT_OPT_SGD}};
    int kind = NNRT_OPT_ADAM;
    if (vals[TRAIN_OPTIM]) {
        int k = 0;
        while (k < COUNT(optimizers) && strcmp(vals[TRAIN_OPTIM], optimizers[k].name) != 0) k++;
        if (k == COUNT(optimizers)) {
            report("option --optim: expected adam, adamw or sgd, found '%s'", vals[TRAIN_OPTIM]);
            return EXIT_USAGE;
        }
        kind = optimizers[k].kind;
    }
    memset(c, 0, sizeof *c);
    c->steps = 100;
    c->optim = nnrt_optim_defaults(kind);
    if (parse_threads(vals[TRAIN_THREADS], &c->threads)) return EXIT_USAGE;
    if (vals[TRAIN_STEPS] && parse_count("--steps", vals[TRAIN_STEPS], &c->steps))
        return EXIT_USAGE;
    if (vals[TRAIN_LR] && parse_real("--lr", vals[TRAIN_LR], 0, &c->optim.lr)) return EXIT_USAGE;
    for (int k = TRAIN_MOMENTUM; k <= TRAIN_NESTEROV; k++)
        if (vals[k] && kind != NNRT_OPT_SGD) {
            report("option %s applies to --optim sgd only", train_opts[k].flag);
            return EXIT_USAGE;
        }
    if (vals[TRAIN_MOMENTUM] &&
        parse_real("--momentum", vals[TRAIN_MOMENTUM], 0, &c->optim.momentum))
        return EXIT_USAGE;
    if (vals[TRAIN_NESTEROV]) {
        if (!(c->optim.momentum > 0)) {
            report("option --nesterov needs --momentum > 0");
            return EXIT_USAGE;
        }
        c->optim.nesterov = 1;
    }
    if (vals[TRAIN_DECAY] &&
        parse_real("--weight-decay", vals[TRAIN_DECAY], 0, &c->optim.weight_decay))
        return EXIT_USAGE;
    if (vals[TRAIN_CLIP] && parse_real("--clip", vals[TRAIN_CLIP], 1, &c->clip)) return EXIT_USAGE;
    c->checkpoint = vals[TRAIN_CKPT];
    c->resume = vals[TRAIN_RESUME] != NULL;
    for (int k = TRAIN_EVERY; k <= TRAIN_RESUME; k++)
        if (vals[k] && !c->checkpoint) {
            report("option %s needs --checkpoint", train_opts[k].flag);
            return EXIT_USAGE;
        }
    if (vals[TRAIN_EVERY] && parse_count("--every", vals[TRAIN_EVERY], &c->every))
        return EXIT_USAGE;
    if (vals[TRAIN_LOG] && parse_count("--log-every", vals[TRAIN_LOG], &c->log_every))
        return EXIT_USAGE;
    if (!vals[TRAIN_LOG]) c->log_every = c->steps / 20 + (c->steps % 20 != 0); /* ~20 lines */
    if (c->checkpoint && same_file(c->checkpoint, vals[TRAIN_OUT])) {
        report("-o and --checkpoint name the same file '%s'", c->checkpoint);
        return EXIT_USAGE;
    }
    return 0;
}

/* Saves the checkpoint (after the stream's carried state, when there is one). */
static int save_checkpoint(const nnrt_model *m, session *s, const train_config *c,
                           const nnrt_optim *o, stream_file *f) {
    int status;
    if (f->path && (status = stream_save(m, f, s->state, o->step)) != 0) return status;
    int rc = nnrt_checkpoint_save(c->checkpoint, m, s->params, o);
    return rc == NNRT_OK ? 0 : runtime_error(rc, c->checkpoint);
}

/* train -w W -i X -t TARGET [options] -o W2 */
static int cmd_train(const nnrt_model *m, const char *const *vals) {
    const char *xpath = vals[TRAIN_IN], *opath = vals[TRAIN_OUT];
    train_config c;
    int status = parse_train(vals, &c), rc;
    if (status != 0) return status;

    session s;
    nnrt_optim o = {0};
    stream_file f = {0};
    progress p = {0};
    if ((status = session_open(m, vals[TRAIN_WEIGHTS], xpath, vals[TRAIN_TARGET], &s)) != 0)
        goto done;
    if ((status = open_team(c.threads, &s.team)) != 0) goto done;
    if (s.nchunks > 1 && m->output_last) {
        report("%s: T = %" PRId64 " steps is more than seq_len %d, and this model's output is at "
               "the last step only: truncated BPTT over a long stream needs output_at = \"all\"; "
               "cut X into sequences of at most %d steps",
               xpath, s.d.T, m->seq_len, m->seq_len);
        status = EXIT_INPUT;
        goto done;
    }
    if ((rc = nnrt_optim_init(&o, &c.optim, m->dtype, m->num_params)) != NNRT_OK) {
        report("%s", nnrt_last_error());
        status = EXIT_USAGE;
        goto done;
    }
    if (s.nchunks > 1 && c.checkpoint) {
        size_t es = nnrt_dtype_size(m->dtype);
        if (m->state_bytes % es != 0) {
            report("malformed model descriptor (state of %zu bytes)", m->state_bytes);
            status = EXIT_USAGE;
            goto done;
        }
        f.count = m->state_bytes / es;
        f.length = s.d.T;
        f.steps[0] = f.steps[1] = -1;
        f.path = malloc(strlen(c.checkpoint) + sizeof ".stream");
        f.states = nnrt_alloc(2 * m->state_bytes);
        if (!f.path || !f.states) {
            report("out of memory");
            status = EXIT_USAGE;
            goto done;
        }
        strcat(strcpy(f.path, c.checkpoint), ".stream");
    }

    m->reset(s.state);
    if (c.resume) {
        if ((rc = nnrt_checkpoint_load(c.checkpoint, m, s.params, &o)) != NNRT_OK) {
            status = runtime_error(rc, c.checkpoint);
            goto done;
        }
        session_pack(&s);
        if (o.step > c.steps) {
            report("%s: the checkpoint is at step %" PRId64 ", past --steps %" PRId64
                   " (--steps counts all the steps, the resumed ones included)",
                   c.checkpoint, o.step, c.steps);
            status = EXIT_INPUT;
            goto done;
        }
        /* Inside the stream (f.path is set: --resume implies --checkpoint): the carried state. */
        if (o.step % s.nchunks != 0 && (status = stream_load(m, &f, s.state, o.step, xpath)) != 0)
            goto done;
    }

    const int64_t first = o.step;
    int64_t saved = c.resume ? first : -1; /* step of the last checkpoint on disk */
    p.tty = isatty(fileno(stderr));
    p.first = first, p.total = c.steps, p.every = c.log_every;
    p.start = now_seconds();
    for (int64_t k = first; k < c.steps; k++) {
        const int64_t chunk = k % s.nchunks, step = k + 1;
        double loss;
        if (chunk == 0) m->reset(s.state);
        memset(s.grads, 0, m->params_bytes);
        if ((rc = run_chunk(&s, chunk, 1, &loss, NULL)) != NNRT_OK) {
            report("step %" PRId64 ": %s", step, nnrt_last_error());
            status = rc == NNRT_ERR_NOMEM ? EXIT_USAGE : EXIT_INPUT;
            goto done;
        }
        if (!isfinite(loss)) {
            report("step %" PRId64 ": loss is %s", step, nonfinite_name(loss));
            status = EXIT_INPUT;
            goto done;
        }
        /* nnrt_clip_grad_norm leaves non-finite gradients as they are */
        if (c.clip > 0) nnrt_clip_grad_norm(m->dtype, s.grads, m->num_params, c.clip);
        if (!all_finite(m->dtype, s.grads, m->num_params)) {
            char what[256];
            report("step %" PRId64 ": %s (loss %.9g)", step,
                   describe_nonfinite(m, s.grads, what, sizeof what), loss);
            status = EXIT_INPUT;
            goto done;
        }
        nnrt_optim_step(&o, s.params, s.grads);
        session_pack(&s);
        if (o.step != step || !all_finite(m->dtype, s.params, m->num_params)) {
            if (o.step != step)
                report("step %" PRId64 ": %s", step, nnrt_last_error());
            else
                report("step %" PRId64 ": the update made the parameters non-finite (lower --lr, "
                       "or use --clip)",
                       step);
            status = EXIT_INPUT;
            goto done;
        }
        if (c.every && step % c.every == 0) {
            if ((status = save_checkpoint(m, &s, &c, &o, &f)) != 0) goto done;
            saved = step;
        }
        progress_update(&p, step, loss);
    }
    if (line_open) fputc('\n', stderr);
    line_open = 0;

    /* The checkpoint first: it holds the carried state, which the evaluation replaces. */
    if (c.checkpoint && saved != c.steps && (status = save_checkpoint(m, &s, &c, &o, &f)) != 0)
        goto done;
    double final;
    if ((rc = evaluate(&s, &final)) != NNRT_OK) {
        status = runtime_error(rc, xpath);
        goto done;
    }
    if (!isfinite(final)) {
        report("final loss is %s", nonfinite_name(final));
        status = EXIT_INPUT;
        goto done;
    }
    if ((rc = nnrt_model_save(m, s.params, opath)) != NNRT_OK) {
        status = runtime_error(rc, opath);
        goto done;
    }
    printf("final loss %.9g\n", final);
done:
    nnrt_free(f.states);
    free(f.path);
    nnrt_optim_free(&o);
    session_close(&s);
    return status;
}

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
    char *text = failed ? NULL : json_dumps(o, JSON_REAL_PRECISION(6));
    json_decref(o);
    if (!text) {
        report("out of memory (the JSON output)");
        return EXIT_USAGE;
    }
    printf("%s\n", text);
    free(text);
    return 0;
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

/* ---- Entry point -------------------------------------------------------------------------- */

int nnrt_driver_main(const nnrt_model *m, int argc, char **argv) {
    prog = m->name;
    line_open = 0;
    if (m->abi_version != NNRT_ABI_VERSION) {
        report("model generated for runtime ABI %d, linked with ABI %d: regenerate it",
               m->abi_version, NNRT_ABI_VERSION);
        return EXIT_USAGE;
    }
    if ((m->dtype != NNRT_F32 && m->dtype != NNRT_F64) || m->seq_len < 1 || m->batch < 1 ||
        !m->pack || !m->reset || !m->forward) {
        report("malformed model descriptor (dtype %d, seq_len %d, batch %d%s)", (int)m->dtype,
               m->seq_len, m->batch,
               !m->pack || !m->reset || !m->forward ? ", entry points missing" : "");
        return EXIT_USAGE;
    }
    if (argc < 2) {
        report("missing command");
        print_usage_hint(NULL);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0) {
        print_help(m);
        return 0;
    }
    for (int i = 0; i < COUNT(commands); i++) {
        const command *c = &commands[i];
        if (strcmp(name, c->name) != 0) continue;
        const char *vals[MAX_OPTIONS];
        int rc = parse_options(m, c, argc - 2, argv + 2, vals);
        if (rc == PARSED_HELP) return 0;
        if (rc != 0) return rc;
        return c->run(m, vals);
    }
    fprintf(stderr, "%s: error: unknown command '%s' (commands:", prog, name);
    for (int i = 0; i < COUNT(commands); i++)
        fprintf(stderr, "%s %s", i ? "," : "", commands[i].name);
    fprintf(stderr, ")\n");
    print_usage_hint(NULL);
    return EXIT_USAGE;
}
