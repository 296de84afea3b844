/* nnrt_core.c — result codes and messages, aligned memory, the RNG, dtypes, atomic file writes,
 * and the small file helpers the readers share. */
#define _POSIX_C_SOURCE 200809L

#include "nnrt_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- Result codes and the per-thread message ----------------------------------------------- */

static _Thread_local char nnrt__last_error[1024];

const char *nnrt_strerror(int code) {
    switch (code) {
    case NNRT_OK: return "success";
    case NNRT_ERR_NOMEM: return "out of memory";
    case NNRT_ERR_IO: return "input/output error";
    case NNRT_ERR_FORMAT: return "malformed file";
    case NNRT_ERR_DTYPE: return "wrong element type";
    case NNRT_ERR_SHAPE: return "wrong shape";
    case NNRT_ERR_NAME: return "missing, unexpected or duplicated tensor";
    case NNRT_ERR_ARG: return "argument out of range";
    case NNRT_ERR_NUMERIC: return "non-finite number";
    default: return "unknown error";
    }
}

const char *nnrt_last_error(void) { return nnrt__last_error; }

int nnrt_fail(int code, const char *fmt, ...) {
    /* Format into a scratch buffer first: callers may pass nnrt_last_error() as an argument to
     * add context to an earlier message, and vsnprintf must not read what it is writing. */
    char message[sizeof nnrt__last_error];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    memcpy(nnrt__last_error, message, sizeof message);
    return code;
}

/* ---- Aligned memory ------------------------------------------------------------------------ */

void *nnrt_alloc(size_t bytes) {
    /* aligned_alloc wants a size that is a multiple of the alignment, and 0 may yield NULL. */
    if (bytes > SIZE_MAX - NNRT_ALIGN) {
        nnrt_fail(NNRT_ERR_NOMEM, "cannot allocate %zu bytes", bytes);
        return NULL;
    }
    size_t rounded = bytes == 0 ? NNRT_ALIGN : (bytes + NNRT_ALIGN - 1) / NNRT_ALIGN * NNRT_ALIGN;
    void *p = aligned_alloc(NNRT_ALIGN, rounded);
    if (p == NULL) {
        nnrt_fail(NNRT_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    memset(p, 0, rounded);
    return p;
}

void nnrt_free(void *p) { free(p); }

/* ---- Random numbers: xoshiro256** (Blackman and Vigna), seeded by splitmix64 ---------------- */

static uint64_t nnrt__splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t nnrt__rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void nnrt_rng_seed(nnrt_rng *rng, uint64_t seed) {
    /* splitmix64 never yields four zero words, the one state xoshiro cannot leave. */
    for (int i = 0; i < 4; i++)
        rng->s[i] = nnrt__splitmix64(&seed);
}

uint64_t nnrt_rng_u64(nnrt_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = nnrt__rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = nnrt__rotl(s[3], 45);
    return result;
}

double nnrt_rng_uniform(nnrt_rng *rng) {
    /* The top 53 bits are the best ones and fill a double's mantissa exactly. */
    return (double)(nnrt_rng_u64(rng) >> 11) * 0x1.0p-53;
}

double nnrt_rng_normal(nnrt_rng *rng) {
    /* Box-Muller, one value per call: the RNG state has no room to cache the second value. 1 - u
     * lies in (0, 1], so the logarithm is finite. */
    double u1 = 1.0 - nnrt_rng_uniform(rng);
    double u2 = nnrt_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

void nnrt_fill_uniform_f32(float *dst, size_t n, double lo, double hi, nnrt_rng *rng) {
    for (size_t i = 0; i < n; i++)
        dst[i] = (float)(lo + (hi - lo) * nnrt_rng_uniform(rng));
}

void nnrt_fill_uniform_f64(double *dst, size_t n, double lo, double hi, nnrt_rng *rng) {
    for (size_t i = 0; i < n; i++)
        dst[i] = lo + (hi - lo) * nnrt_rng_uniform(rng);
}

/* ---- Element types --------------------------------------------------------------------------- */

size_t nnrt_dtype_size(nnrt_dtype dtype) {
    switch (dtype) {
    case NNRT_F32:
    case NNRT_I32: return 4;
    case NNRT_F64:
    case NNRT_I64: return 8;
    }
    return 0;
}

const char *nnrt_dtype_name(nnrt_dtype dtype) {
    switch (dtype) {
    case NNRT_F32: return "float32";
    case NNRT_F64: return "float64";
    case NNRT_I32: return "int32";
    case NNRT_I64: return "int64";
    }
    return "unknown dtype";
}

int nnrt__dtype_valid(int dtype) { return dtype >= NNRT_F32 && dtype <= NNRT_I64; }

/* ---- Helpers shared by the file readers ------------------------------------------------------ */

int nnrt__mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

const char *nnrt__printable(const char *text, size_t len, char *buf, size_t size) {
    /* File contents end up in messages: control bytes could forge lines of output or drive the
     * terminal, stray high bytes make the message invalid UTF-8, and a huge name would crowd out
     * the rest of the message. Tensor names and dtypes are ASCII in every real file. */
    const size_t keep = size < 4 ? 0 : size - 4; /* room for "..." and the terminator */
    size_t n = 0;
    for (size_t i = 0; i < len && n < keep; i++) {
        unsigned char c = (unsigned char)text[i];
        buf[n++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    if (n < len && size >= 4) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    if (size > 0)
        buf[n < size ? n : size - 1] = '\0';
    return buf;
}

int nnrt__open_regular(const char *path, FILE **fp, uint64_t *size) {
    *fp = fopen(path, "rb");
    if (*fp == NULL)
        return nnrt_fail(NNRT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(*fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        int code = nnrt_fail(NNRT_ERR_IO, "%s: not a regular file", path);
        fclose(*fp);
        *fp = NULL;
        return code;
    }
    *size = (uint64_t)st.st_size;
    return NNRT_OK;
}

int nnrt__read_exact(FILE *fp, void *dst, size_t bytes, const char *path, const char *what) {
    /* Bounded chunks: a single huge fread would hand the C library a length taken from the file. */
    const size_t chunk = (size_t)1 << 20;
    unsigned char *out = dst;
    size_t done = 0;
    while (done < bytes) {
        size_t want = bytes - done < chunk ? bytes - done : chunk;
        size_t got = fread(out + done, 1, want, fp);
        done += got;
        if (got < want) {
            if (ferror(fp))
                return nnrt_fail(NNRT_ERR_IO, "%s: read error in %s: %s", path, what, strerror(errno));
            return nnrt_fail(NNRT_ERR_FORMAT, "%s: truncated: %s ends after %zu of %zu bytes", path,
                             what, done, bytes);
        }
    }
    return NNRT_OK;
}

/* ---- Atomic file writes ---------------------------------------------------------------------- */

static char *nnrt__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    if (copy != NULL)
        memcpy(copy, s, n);
    return copy;
}

static void nnrt__atomic_release(nnrt_atomic_file *f) {
    free(f->path);
    free(f->tmp_path);
    memset(f, 0, sizeof *f);
}

/* Creates "<path>.tmp.XXXXXX" with O_EXCL. Not mkstemp: it creates files with mode 0600, and the
 * renamed result would then be unreadable to everyone but the writer; 0666 lets umask decide, as
 * for any ordinary file. */
static int nnrt__create_temp(char *tmp_path, size_t suffix_at) {
    static const char digits[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    static _Thread_local uint64_t counter;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    nnrt_rng rng;
    nnrt_rng_seed(&rng, (uint64_t)getpid() ^ ((uint64_t)now.tv_nsec << 20) ^ (uint64_t)now.tv_sec ^
                            (++counter << 40) ^ (uint64_t)(uintptr_t)&now);
    for (int attempt = 0; attempt < 100; attempt++) {
        uint64_t bits = nnrt_rng_u64(&rng);
        for (int i = 0; i < 6; i++, bits /= 36)
            tmp_path[suffix_at + (size_t)i] = digits[bits % 36];
        int fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

int nnrt_atomic_open(nnrt_atomic_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return nnrt_fail(NNRT_ERR_IO, "%s: cannot write: is a directory", path);
    static const char suffix[] = ".tmp.XXXXXX";
    size_t len = strlen(path);
    f->path = nnrt__strdup(path);
    f->tmp_path = malloc(len + sizeof suffix);
    if (f->path == NULL || f->tmp_path == NULL) {
        nnrt__atomic_release(f);
        return nnrt_fail(NNRT_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(f->tmp_path, path, len);
    memcpy(f->tmp_path + len, suffix, sizeof suffix);
    int fd = nnrt__create_temp(f->tmp_path, len + 5);
    if (fd < 0) {
        int code = nnrt_fail(NNRT_ERR_IO, "%s: cannot create temporary file %s: %s", path,
                             f->tmp_path, strerror(errno));
        nnrt__atomic_release(f);
        return code;
    }
    f->fp = fdopen(fd, "wb");
    if (f->fp == NULL) {
        int code = nnrt_fail(NNRT_ERR_IO, "%s: cannot open temporary file: %s", path, strerror(errno));
        close(fd);
        unlink(f->tmp_path);
        nnrt__atomic_release(f);
        return code;
    }
    return NNRT_OK;
}

int nnrt_atomic_write(nnrt_atomic_file *f, const void *data, size_t bytes) {
    if (f->fp == NULL)
        return nnrt_fail(NNRT_ERR_IO, "write to a file that is not open");
    if (f->failed)
        return NNRT_ERR_IO; /* keep the first failure's message */
    if (bytes > 0 && fwrite(data, 1, bytes, f->fp) != bytes) {
        f->failed = 1;
        return nnrt_fail(NNRT_ERR_IO, "%s: write failed: %s", f->path, strerror(errno));
    }
    return NNRT_OK;
}

/* Makes the rename itself durable; a failure here cannot undo the rename, so it is not reported. */
static void nnrt__sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = nnrt__strdup(slash == NULL ? "." : path);
    if (dir == NULL)
        return;
    if (slash != NULL)
        dir[slash == path ? 1 : (size_t)(slash - path)] = '\0';
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

int nnrt_atomic_commit(nnrt_atomic_file *f) {
    if (f->fp == NULL) {
        nnrt__atomic_release(f);
        return nnrt_fail(NNRT_ERR_IO, "commit of a file that is not open");
    }
    if (f->failed) {
        nnrt_atomic_abort(f);
        return NNRT_ERR_IO; /* the write's message stands */
    }
    int code = NNRT_OK;
    if (fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0)
        code = nnrt_fail(NNRT_ERR_IO, "%s: write failed: %s", f->path, strerror(errno));
    if (fclose(f->fp) != 0 && code == NNRT_OK)
        code = nnrt_fail(NNRT_ERR_IO, "%s: write failed: %s", f->path, strerror(errno));
    f->fp = NULL;
    if (code == NNRT_OK && rename(f->tmp_path, f->path) != 0)
        code = nnrt_fail(NNRT_ERR_IO, "%s: cannot rename %s over it: %s", f->path, f->tmp_path,
                         strerror(errno));
    if (code != NNRT_OK)
        unlink(f->tmp_path);
    else
        nnrt__sync_parent_dir(f->path);
    nnrt__atomic_release(f);
    return code;
}

void nnrt_atomic_abort(nnrt_atomic_file *f) {
    if (f->fp != NULL) {
        fclose(f->fp);
        f->fp = NULL;
    }
    if (f->tmp_path != NULL)
        unlink(f->tmp_path);
    nnrt__atomic_release(f);
}
