/* nnrt_driver_util.c — the driver's messages, option values and file checks, shared by
 * the commands. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, isatty, fileno */

#include "nnrt_driver.h"

#include <jansson.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *prog;
int line_open;

/* "<name>: error: <message>" on stderr. */
void report(const char *fmt, ...) {
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    /* Paths and arguments come from the user, and messages quote them: a control character
     * (ESC, CR, a newline) would drive the terminal or forge a line. Other bytes, UTF-8
     * included, stay. */
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    if (line_open) fputc('\n', stderr);
    line_open = 0;
    fprintf(stderr, "%s: error: %s\n", prog, text);
}

/* Reports a failed runtime call: its detailed message, which names the file, or the code's
 * short text after path when the runtime left none. Returns the exit code. */
int runtime_error(int rc, const char *path) {
    const char *msg = nnrt_last_error();
    if (msg[0] != '\0')
        report("%s", msg);
    else
        report("%s: %s", path, nnrt_strerror(rc));
    return rc == NNRT_ERR_NOMEM ? EXIT_USAGE : EXIT_INPUT;
}

const char *cell_name(int cell) {
    static const char *const names[] = {"rnn(tanh)", "rnn(relu)", "gru", "lstm"};
    return cell >= 0 && cell < COUNT(names) ? names[cell] : "?";
}

const char *act_name(int act) {
    static const char *const names[] = {"linear", "relu", "tanh", "sigmoid"};
    return act >= 0 && act < COUNT(names) ? names[act] : "?";
}

const char *loss_name(int loss) {
    static const char *const names[] = {"mse", "cross_entropy", "bce"};
    return loss >= 0 && loss < COUNT(names) ? names[loss] : "?";
}

const char *precision_name(const nnrt_model *m) {
    return m->dtype == NNRT_F64 ? "f64" : "f32";
}

/* Decimal digits only, the whole string, within range: no sign, no blanks, no 0x. */
int parse_u64(const char *flag, const char *s, uint64_t *out) {
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
int parse_count(const char *flag, const char *s, int64_t *out) {
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
int parse_threads(const char *s, int *out) {
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
int open_team(int threads, nnrt_workers **team) {
    *team = NULL;
    if (threads > 1 && nnrt_workers_create(threads, team) != NNRT_OK) {
        report("%s", nnrt_last_error());
        return EXIT_USAGE;
    }
    return 0;
}

/* A finite decimal number >= 0 (> 0 when positive): digits with an optional fraction and
 * exponent, as "0.01", "3e-4" or ".5"; no sign, blanks, hex, inf or nan. */
int parse_real(const char *flag, const char *s, int positive, double *out) {
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

void format_dims(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && n < size; d++)
        n += (size_t)snprintf(buf + n, size - n, "%s%" PRId64, d ? ", " : "", shape[d]);
    if (n < size) snprintf(buf + n, size - n, "]");
}

static void format_shape(char *buf, size_t size, const nnrt_array *a) {
    format_dims(buf, size, a->ndim, a->shape);
}

/* X must be m->dtype, [T][B][I] with T >= 1. Prints the mismatch; returns 0 or EXIT_INPUT. */
int check_input(const nnrt_model *m, const char *path, const nnrt_array *x) {
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

int print_json(struct json_t *o, int failed, int digits) {
    char *text = failed || !o ? NULL : json_dumps(o, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(digits));
    json_decref(o);
    if (!text) {
        report("out of memory (the JSON output)");
        return EXIT_USAGE;
    }
    printf("%s\n", text);
    free(text);
    return 0;
}

/* What a path names, to compare files rather than spellings: an existing file by device and
 * inode (so links and "./" count), a file still to be created by its directory's and its name. */
typedef struct file_id {
    int exists, dir_known;
    dev_t dev;
    ino_t ino;
    const char *name; /* the last component, for a file still to be created */
} file_id;

static void identify(const char *path, file_id *id) {
    struct stat st;
    memset(id, 0, sizeof *id);
    if (stat(path, &st) == 0) {
        id->exists = 1, id->dev = st.st_dev, id->ino = st.st_ino;
        return;
    }
    const char *slash = strrchr(path, '/');
    id->name = slash ? slash + 1 : path;
    size_t len = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *dir = malloc(len + 1);
    if (!dir) return; /* unknown: compared by spelling only */
    memcpy(dir, slash ? path : ".", len);
    dir[len] = '\0';
    if (stat(dir, &st) == 0) id->dir_known = 1, id->dev = st.st_dev, id->ino = st.st_ino;
    free(dir);
}

int same_file(const char *a, const char *b) {
    file_id x, y;
    if (strcmp(a, b) == 0) return 1;
    identify(a, &x);
    identify(b, &y);
    if (x.exists || y.exists) return x.exists && y.exists && x.dev == y.dev && x.ino == y.ino;
    return x.dir_known && y.dir_known && x.dev == y.dev && x.ino == y.ino &&
           strcmp(x.name, y.name) == 0;
}

int check_files(const char *command_name, const file_use *files, int n, const char *shared_in,
                const char *shared_out) {
    for (int j = 0; j < n; j++) {
        for (int i = 0; i < j; i++) {
            const file_use *a = &files[j], *b = &files[i]; /* a, the later, names the pair */
            if (!a->path || !b->path || (!a->output && !b->output)) continue;
            if (!a->output) a = &files[i], b = &files[j];
            if (shared_in && shared_out && strcmp(a->flag, shared_out) == 0 &&
                strcmp(b->flag, shared_in) == 0)
                continue;
            if (same_file(a->path, b->path)) {
                report("%s: %s and %s name the same file '%s'%s", command_name, a->flag, b->flag,
                       a->path,
                       b->output ? "" : ": the output would destroy the input before or while it is read");
                return EXIT_USAGE;
            }
        }
    }
    for (int k = 0; k < n; k++) {
        if (!files[k].path || files[k].output != 1) continue;
        /* Opening the output's temporary file and dropping it checks all the write will need:
         * the directory exists and takes a new file, and what is there may be replaced. */
        nnrt_atomic_file f;
        int rc = nnrt_atomic_open(&f, files[k].path);
        if (rc != NNRT_OK) return runtime_error(rc, files[k].path);
        nnrt_atomic_abort(&f);
    }
    return 0;
}
