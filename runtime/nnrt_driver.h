/* nnrt_driver.h — what the files of the driver program share (runtime/nnrt_driver*.c); not
 * part of the API. One file per command (nnrt_driver_<command>.c) defines its options, its help
 * notes and its function as one `command`; nnrt_driver.c holds the table of commands, the
 * parser and the entry point; nnrt_driver_util.c the messages and the option values;
 * nnrt_driver_session.c the training data and the session grad and train share.
 *
 * Exit codes (DESIGN.md): 0 success, 1 bad input (files, values), 2 usage or internal error.
 *
 * The names below are private to libnnrt (nnrt__drv_*): the short spellings are macros, so the
 * code reads as it did when the driver was one file, and no symbol can clash with a program
 * that links libnnrt.a. */
#ifndef NNRT_DRIVER_H
#define NNRT_DRIVER_H

#include "nnrt.h"

#include <stdio.h>

#define EXIT_INPUT 1 /* a file or value the user gave is wrong */
#define EXIT_USAGE 2 /* the command line is wrong, or the program itself failed */

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

#if defined(__GNUC__)
#define PRINTF_LIKE(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define PRINTF_LIKE(fmt_index, first_arg)
#endif

#define prog nnrt__drv_prog
#define line_open nnrt__drv_line_open
#define report nnrt__drv_report
#define runtime_error nnrt__drv_runtime_error
#define loss_name nnrt__drv_loss_name
#define cell_name nnrt__drv_cell_name
#define act_name nnrt__drv_act_name
#define precision_name nnrt__drv_precision_name
#define print_json nnrt__drv_print_json
#define parse_u64 nnrt__drv_parse_u64
#define parse_count nnrt__drv_parse_count
#define parse_threads nnrt__drv_parse_threads
#define parse_real nnrt__drv_parse_real
#define open_team nnrt__drv_open_team
#define format_dims nnrt__drv_format_dims
#define check_input nnrt__drv_check_input
#define same_file nnrt__drv_same_file
#define check_files nnrt__drv_check_files
#define is_ce nnrt__drv_is_ce
#define session_open nnrt__drv_session_open
#define session_close nnrt__drv_session_close
#define session_pack nnrt__drv_session_pack
#define run_chunk nnrt__drv_run_chunk
#define session_check_stream nnrt__drv_session_check_stream
#define cmd_eval_command nnrt__drv_eval_command
#define evaluate nnrt__drv_evaluate
#define evaluate_chunks nnrt__drv_evaluate_chunks
#define nonfinite_name nnrt__drv_nonfinite_name
#define all_finite nnrt__drv_all_finite
#define describe_nonfinite nnrt__drv_describe_nonfinite
#define explain_target nnrt__drv_explain_target
#define cmd_init_command nnrt__drv_init_command
#define cmd_forward_command nnrt__drv_forward_command
#define cmd_grad_command nnrt__drv_grad_command
#define cmd_train_command nnrt__drv_train_command
#define cmd_bench_command nnrt__drv_bench_command

/* ---- Commands ----------------------------------------------------------------------------- */

/* An option of a command. All options are optional in the parser's eyes unless required is
 * set; an option with meta == NULL is a flag that takes no value. */
typedef struct opt_spec {
    const char *flag; /* "-o", "--seed" */
    const char *meta; /* name of its value in help text ("W.safetensors"), NULL for a flag */
    int required;
    const char *help;
} opt_spec;

#define MAX_OPTIONS 24

/* vals[k] holds the value of opts[k] after parsing, NULL when absent ("" for a given flag). */
typedef int (*command_fn)(const nnrt_model *m, const char *const *vals);
typedef void (*explain_fn)(const nnrt_model *m, FILE *out);

typedef struct command {
    const char *name;
    const char *summary;
    const opt_spec *opts;
    int nopts;
    command_fn run;
    explain_fn explain; /* model-specific notes after the option list, or NULL */
} command;

/* One per command file. */
extern const command cmd_init_command, cmd_forward_command, cmd_grad_command, cmd_eval_command,
    cmd_train_command, cmd_bench_command;

/* ---- Messages (nnrt_driver_util.c) --------------------------------------------------------- */

extern const char *prog; /* the model name: every message starts with it */
extern int line_open;    /* train's progress line is on the terminal without its newline */

/* "<name>: error: <message>" on stderr. */
void report(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* Reports a failed runtime call: its detailed message, which names the file, or the code's
 * short text after path when the runtime left none. Returns the exit code. */
int runtime_error(int rc, const char *path);
const char *cell_name(int cell);
const char *act_name(int act);
const char *loss_name(int loss);
const char *precision_name(const nnrt_model *m);

struct json_t;
/* Prints o as one line of JSON on stdout, keys in the order set, reals with digits significant
 * digits, and releases o; failed says building o ran out of memory. Returns 0 or EXIT_USAGE. */
int print_json(struct json_t *o, int failed, int digits);

/* ---- Option values (nnrt_driver_util.c): each prints the problem and returns EXIT_USAGE ---- */

/* Decimal digits only, the whole string, within range: no sign, no blanks, no 0x. */
int parse_u64(const char *flag, const char *s, uint64_t *out);
/* A count: decimal digits only, within 1..INT64_MAX. */
int parse_count(const char *flag, const char *s, int64_t *out);
/* --threads N (s may be NULL: 1), within 1..NNRT_MAX_THREADS. */
int parse_threads(const char *s, int *out);
/* A finite decimal number >= 0 (> 0 when positive): digits with an optional fraction and
 * exponent, as "0.01", "3e-4" or ".5"; no sign, blanks, hex, inf or nan. */
int parse_real(const char *flag, const char *s, int positive, double *out);
/* The team of --threads N (NULL for one thread). Prints what went wrong; returns 0 or an exit code. */
int open_team(int threads, nnrt_workers **team);

/* ---- Files (nnrt_driver_util.c) ------------------------------------------------------------ */

void format_dims(char *buf, size_t size, int ndim, const int64_t *shape);
/* X must be m->dtype, [T][B][I] with T >= 1. Prints the mismatch; returns 0 or EXIT_INPUT. */
int check_input(const nnrt_model *m, const char *path, const nnrt_array *x);
/* Two paths name one file: the same text, the same existing file (links and "./" count), or
 * the same name in the same directory for files still to be created. */
int same_file(const char *a, const char *b);

/* A file a command reads or writes, for check_files. */
typedef struct file_use {
    const char *flag; /* "-o", "--checkpoint" */
    const char *path; /* NULL when not given */
    int output;       /* 0 read, 1 written, 2 written but not probed (train's .stream: only
                         a stream run writes it, beside the checkpoint, which is probed) */
} file_use;

/* Checks the files of a command before it does any work. An output that is the same file as
 * any input or other output is a usage error (exit 2), except shared_out against shared_in
 * (flags, or NULL): train may update -w W -o W in place. Every output must be a regular file
 * or not exist yet, in a directory where a file can be created (exit 1 otherwise). Prints the
 * problem; returns 0 or the exit code. */
int check_files(const char *command_name, const file_use *files, int n, const char *shared_in,
                const char *shared_out);

/* ---- Training data and sessions (nnrt_driver_session.c) ------------------------------------ */

int is_ce(const nnrt_model *m);

/* X and TARGET, read and checked. The loss takes its target in m->target_dtype: class indices
 * arrive as int32 or int64 and are handed over as int32 (converted from int64 into classes). */
typedef struct dataset {
    nnrt_array x, target;
    int32_t *classes;      /* int64 class indices converted, or NULL */
    const char *tdata;     /* the target as the loss takes it */
    int64_t T;             /* timesteps of X */
    size_t x_step, t_step; /* bytes per timestep of X and of the target (0 with output_last) */
} dataset;

typedef struct session {
    const nnrt_model *m;
    nnrt_workers *team; /* NULL: the calling thread alone */
    dataset d;
    void *params, *grads, *state, *tape;
    void *weights;   /* params packed for the forward: session_pack after every change */
    void *y, *dy;    /* outputs of one chunk and dloss/dy */
    int64_t nchunks; /* chunks of at most seq_len steps in X: 1 when T <= seq_len */
} session;

/* Loads W, X and TARGET, allocates what a step needs and starts a team of threads (none for
 * one). Prints what went wrong; returns 0 or an exit code. s must be closed either way. */
int session_open(const nnrt_model *m, const char *wpath, const char *xpath, const char *tpath,
                 int threads, session *s);
void session_close(session *s);
/* The forward reads the packed weights, the backward the parameters: after loading or changing
 * the parameters, pack them. */
void session_pack(session *s);
/* X of more than seq_len steps is one stream of chunks, which a model whose output is at the
 * last step only cannot take. Prints; returns 0 or EXIT_INPUT. */
int session_check_stream(const session *s, const char *xpath);
/* Chunk c of X: forward_train from the current state (which it advances), the loss, and with
 * backward set dloss/dy and the backward pass adding into grads. Returns an NNRT_* code. */
int run_chunk(session *s, int64_t c, int backward, double *loss, int *steps);
/* The loss of the current parameters over all of X from the zero state: with chunks, the mean
 * over all terms, as one loss over the whole stream would take it. */
int evaluate(session *s, double *loss);
/* evaluate, with the mean loss and the steps of each chunk into losses and steps (s->nchunks
 * each, or NULL). */
int evaluate_chunks(session *s, double *loss, double *losses, int *steps);
const char *nonfinite_name(double v);
int all_finite(nnrt_dtype dtype, const void *p, size_t n);
/* Names the first non-finite element of values (laid out as the parameters), by tensor and
 * index, into buf: "<what> <tensor> is nan at [i, j]", what being "the gradient of" or
 * "weight". */
const char *describe_nonfinite(const nnrt_model *m, const void *values, const char *what,
                               char *buf, size_t size);
/* Target shapes of this model, for the help text. */
void explain_target(const nnrt_model *m, FILE *out, const char *T);

#endif /* NNRT_DRIVER_H */
