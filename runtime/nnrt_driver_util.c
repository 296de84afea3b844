/* nnrt_driver_util.c — the driver's messages, option values and file checks, shared by
 * the commands. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, isatty, fileno */

#include "nnrt_driver.h"

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

/* Two paths name one file: the same text, or the same existing file. */
int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (strcmp(a, b) == 0) return 1;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}
