/* nnrt_driver.c — the generated driver program, generic over models.
 *
 * Every model's <name>_main.c is one line: main calls nnrt_driver_main(&<name>_model, argc, argv).
 * The commands live in one table; each declares its options, and the parser, the usage lines and
 * the help text are all derived from that table, so a new command is a new row and a new
 * function. This is the one file of the runtime that prints: it is the program.
 *
 * Exit codes (DESIGN.md): 0 success, 1 bad input (files, values), 2 usage or internal error.
 */
#include "nnrt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

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

#define MAX_OPTIONS 8

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
static void explain_forward(const nnrt_model *m, FILE *out);

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

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))
_Static_assert(COUNT(init_opts) <= MAX_OPTIONS && COUNT(forward_opts) <= MAX_OPTIONS,
               "raise MAX_OPTIONS");

/* grad, train and bench join this table with the backward pass and the benchmarks. */
static const command commands[] = {
    {"init", "write PyTorch-style default weights", init_opts, COUNT(init_opts), cmd_init, NULL},
    {"forward", "run the network over X and write its outputs Y", forward_opts, COUNT(forward_opts),
     cmd_forward, explain_forward},
};

/* ---- Messages --------------------------------------------------------------------------- */

static const char *prog; /* the model name: every message starts with it */

#if defined(__GNUC__)
#define PRINTF_LIKE(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define PRINTF_LIKE(fmt_index, first_arg)
#endif

/* "<name>: error: <message>" on stderr. */
static void report(const char *fmt, ...) PRINTF_LIKE(1, 2);
static void report(const char *fmt, ...) {
    va_list ap;
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
            m->output, m->seq_len, m->batch, m->output_last ? "last" : "all", loss_name(m->loss_kind));
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
    for (int k = 0; k < c->nopts; k++) {
        const option *o = &c->opts[k];
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", o->flag, o->meta ? " " : "", o->meta ? o->meta : "");
        printf("  %-18s %s\n", left, o->help);
    }
    printf("  %-18s %s\n", "-h, --help", "show this help");
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

static void format_shape(char *buf, size_t size, const nnrt_array *a) {
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < a->ndim && n < size; d++)
        n += (size_t)snprintf(buf + n, size - n, "%s%" PRId64, d ? ", " : "", a->shape[d]);
    if (n < size) snprintf(buf + n, size - n, "]");
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

/* Runs T steps from a zero state, seq_len steps at a time, carrying the state across chunks.
 * With output_last every chunk overwrites y, so the last chunk's output is what remains. */
static int run_chunks(const nnrt_model *m, const void *params, void *state, void *work, int64_t T,
                      const char *x, char *y) {
    size_t esize = nnrt_dtype_size(m->dtype);
    size_t x_step = (size_t)m->batch * (size_t)m->input * esize;
    size_t y_step = m->output_last ? 0 : (size_t)m->batch * (size_t)m->output * esize;
    m->reset(state);
    for (int64_t t0 = 0; t0 < T; t0 += m->seq_len) {
        int n = T - t0 < m->seq_len ? (int)(T - t0) : m->seq_len;
        int rc =
            m->forward(params, state, work, n, x + (size_t)t0 * x_step, y + (size_t)t0 * y_step);
        if (rc != NNRT_OK) return rc;
    }
    return NNRT_OK;
}

/* forward -w W.safetensors -i X.npy -o Y.npy */
static int cmd_forward(const nnrt_model *m, const char *const *vals) {
    const char *wpath = vals[FWD_WEIGHTS], *xpath = vals[FWD_IN], *ypath = vals[FWD_OUT];
    nnrt_array x = {0}, y = {0};
    void *params = nnrt_alloc(m->params_bytes);
    void *state = nnrt_alloc(m->state_bytes);
    void *work = nnrt_alloc(m->work_bytes);
    int status = 0, rc;

    if (!params || !state || !work) {
        report("out of memory (%zu bytes of parameters, state and work)",
               m->params_bytes + m->state_bytes + m->work_bytes);
        status = EXIT_USAGE;
        goto done;
    }
    if ((rc = nnrt_model_load(m, params, wpath)) != NNRT_OK) {
        status = runtime_error(rc, wpath);
        goto done;
    }
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
    if ((rc = run_chunks(m, params, state, work, T, x.data, y.data)) != NNRT_OK) {
        status = runtime_error(rc, xpath);
        goto done;
    }
    if ((rc = nnrt_npy_write(ypath, &y)) != NNRT_OK) status = runtime_error(rc, ypath);

done:
    nnrt_array_free(&y);
    nnrt_array_free(&x);
    nnrt_free(work);
    nnrt_free(state);
    nnrt_free(params);
    return status;
}

/* ---- Entry point -------------------------------------------------------------------------- */

int nnrt_driver_main(const nnrt_model *m, int argc, char **argv) {
    prog = m->name;
    if (m->abi_version != NNRT_ABI_VERSION) {
        report("model generated for runtime ABI %d, linked with ABI %d: regenerate it",
               m->abi_version, NNRT_ABI_VERSION);
        return EXIT_USAGE;
    }
    if ((m->dtype != NNRT_F32 && m->dtype != NNRT_F64) || m->seq_len < 1 || m->batch < 1) {
        report("malformed model descriptor (dtype %d, seq_len %d, batch %d)", (int)m->dtype,
               m->seq_len, m->batch);
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
