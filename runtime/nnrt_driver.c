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
static void explain_forward(const nnrt_model *m, FILE *out);
static void explain_grad(const nnrt_model *m, FILE *out);
static void explain_train(const nnrt_model *m, FILE *out);

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
    [TRAIN_OUT] = {"-o", "W2.safetensors", 1, "trained weights to write"},
};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))
_Static_assert(COUNT(init_opts) <= MAX_OPTIONS && COUNT(forward_opts) <= MAX_OPTIONS &&
                   COUNT(grad_opts) <= MAX_OPTIONS && COUNT(train_opts) <= MAX_OPTIONS,
               "raise MAX_OPTIONS");

/* bench joins this table with the benchmarks. */
static const command commands[] = {
    {"init", "write PyTorch-style default weights", init_opts, COUNT(init_opts), cmd_init, NULL},
    {"forward", "run the network over X and write its outputs Y", forward_opts, COUNT(forward_opts),
     cmd_forward, explain_forward},
    {"grad", "one forward and backward from the zero state: print the loss, write the gradients",
     grad_opts, COUNT(grad_opts), cmd_grad, explain_grad},
    {"train", "train on X and TARGET (truncated BPTT when T > seq_len), write the weights",
     train_opts, COUNT(train_opts), cmd_train, explain_train},
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
    dataset d;
    void *params, *grads, *state, *tape;
    void *weights;   /* params packed for the forward: session_pack after every change */
    void *y, *dy;    /* outputs of one chunk and dloss/dy */
    int64_t nchunks; /* chunks of at most seq_len steps in X: 1 when T <= seq_len */
} session;

static void session_close(session *s) {
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
    if (!m->forward_train || !m->loss || !m->backward || m->tape_bytes == 0 ||
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
    int rc = m->forward_train(s->weights, s->state, s->tape, n, x, s->y);
    if (rc == NNRT_OK) rc = m->loss(n, s->y, target, loss, backward ? s->dy : NULL);
    if (rc == NNRT_OK && backward && isfinite(*loss))
        rc = m->backward(s->params, s->tape, x, s->dy, s->grads, NULL);
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
