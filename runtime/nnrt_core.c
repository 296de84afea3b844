/* nnrt_core.c — result codes and messages, aligned memory, the RNG, dtypes, atomic file writes,
 * and the small file helpers the readers share. */
#define _GNU_SOURCE /* O_TMPFILE, AT_SYMLINK_FOLLOW; implies POSIX 2008 */

#include "nnrt_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

/* What a path is, for a message: "a directory", "a FIFO", ... */
static const char *nnrt__file_kind(mode_t mode) {
    return S_ISDIR(mode) ? "a directory" : S_ISFIFO(mode) ? "a FIFO" : S_ISCHR(mode) ? "a character device"
         : S_ISBLK(mode) ? "a block device" : S_ISSOCK(mode) ? "a socket" : "not a regular file";
}

int nnrt__open_regular(const char *path, FILE **fp, uint64_t *size, uint64_t *stored) {
    /* Checked before opening, and opened without blocking: open() of a FIFO waits for a writer,
     * for ever. fstat then checks what was opened, which may have been replaced since. */
    struct stat st;
    *fp = NULL;
    if (stat(path, &st) != 0)
        return nnrt_fail(NNRT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return nnrt_fail(NNRT_ERR_IO, "%s: not a regular file (%s)", path, nnrt__file_kind(st.st_mode));
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return nnrt_fail(NNRT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int flags = fcntl(fd, F_GETFL);
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 ||
        (*fp = fdopen(fd, "rb")) == NULL) {
        int code = nnrt_fail(NNRT_ERR_IO, "%s: not a regular file (%s)", path, nnrt__file_kind(st.st_mode));
        close(fd);
        return code;
    }
    *size = (uint64_t)st.st_size;
    if (stored != NULL)
        *stored = (uint64_t)st.st_blocks * 512u;
    return NNRT_OK;
}

const char *nnrt__looks_like(const unsigned char *head, size_t n, uint64_t file_size) {
    if (n >= 6 && memcmp(head, "\x93NUMPY", 6) == 0)
        return ": it is a .npy file";
    if (n >= 4 && memcmp(head, "PK\x03\x04", 4) == 0)
        return ": it is a zip archive (a .npz, or a PyTorch .pt file?)";
    if (n >= 9 && head[8] == '{') {
        uint64_t len = 0;
        for (int i = 7; i >= 0; i--)
            len = (len << 8) | head[i];
        if (len <= file_size - 8)
            return ": it is a safetensors file";
    }
    int text = n > 0;
    for (size_t i = 0; i < n && text; i++)
        text = head[i] >= 0x20 || head[i] == '\n' || head[i] == '\r' || head[i] == '\t';
    return text ? ": it looks like text" : "";
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

/* ---- Atomic file writes ----------------------------------------------------------------------
 * The data goes to a file with no name (O_TMPFILE) in the target's directory, which is given a
 * name only once it is complete and synced: a process killed mid-write leaves nothing behind.
 * Where O_TMPFILE is missing (some filesystems, no /proc to link it by), the temporary is named
 * "<path>.tmp.<pid>.XXXXXX" from the start, and the next atomic_open of the same path removes
 * those of processes that no longer exist. Both then rename the named temporary over the
 * target, so the target is either the old file or the new one, whole. */

int nnrt__atomic_no_tmpfile;

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

/* The directory part of path ("." when it has none), in a new string. */
static char *nnrt__dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = nnrt__strdup(slash == NULL ? "." : path);
    if (dir != NULL && slash != NULL)
        dir[slash == path ? 1 : (size_t)(slash - path)] = '\0';
    return dir;
}

/* Removes "<base>.tmp.<pid>.XXXXXX" beside path for every pid that is not a live process: the
 * temporaries of runs killed mid-write. A live writer's temporary (another process writing the
 * same output) stays. */
static void nnrt__remove_stale(const char *path) {
    char *dir = nnrt__dir_of(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash == NULL ? path : slash + 1;
    size_t blen = strlen(base);
    DIR *d = dir == NULL ? NULL : opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        const char *name = e->d_name, *p = name + blen + 5;
        if (strncmp(name, base, blen) != 0 || strncmp(name + blen, ".tmp.", 5) != 0)
            continue;
        long long pid = 0;
        while (*p >= '0' && *p <= '9' && pid < 1000000000)
            pid = pid * 10 + (*p++ - '0');
        if (p == name + blen + 5 || *p != '.' || strlen(p + 1) != 6 || strspn(p + 1, "abcdefghijklmnopqrstuvwxyz0123456789") != 6)
            continue;
        if (pid != (long long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
            unlinkat(dirfd(d), name, 0);
    }
    if (d != NULL)
        closedir(d);
    free(dir);
}

/* Sets the last six characters of f->tmp_path ("<path>.tmp.<pid>.XXXXXX") at random and calls
 * make on it until make succeeds or fails other than with EEXIST; returns make's last result. */
static int nnrt__try_names(nnrt_atomic_file *f, int (*make)(nnrt_atomic_file *f)) {
    static const char digits[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    static _Thread_local uint64_t counter;
    size_t suffix_at = strlen(f->tmp_path) - 6;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    nnrt_rng rng;
    nnrt_rng_seed(&rng, (uint64_t)getpid() ^ ((uint64_t)now.tv_nsec << 20) ^ (uint64_t)now.tv_sec ^
                            (++counter << 40) ^ (uint64_t)(uintptr_t)&now);
    int rc = -1;
    for (int attempt = 0; attempt < 100; attempt++) {
        uint64_t bits = nnrt_rng_u64(&rng);
        for (int i = 0; i < 6; i++, bits /= 36)
            f->tmp_path[suffix_at + (size_t)i] = digits[bits % 36];
        rc = make(f);
        if (rc >= 0 || errno != EEXIST)
            return rc;
    }
    return rc;
}

/* Creates the named temporary with O_EXCL. Not mkstemp: it creates files with mode 0600, and the
 * renamed result would then be unreadable to everyone but the writer; 0666 lets umask decide, as
 * for any ordinary file. Returns the descriptor. */
static int nnrt__make_named(nnrt_atomic_file *f) {
    return open(f->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
}

#ifdef O_TMPFILE
/* Gives the unnamed temporary the name in f->tmp_path. */
static int nnrt__link_unnamed(nnrt_atomic_file *f) {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fileno(f->fp));
    return linkat(AT_FDCWD, proc, AT_FDCWD, f->tmp_path, AT_SYMLINK_FOLLOW);
}
#endif

/* The file the target path stands for: path itself, or where the symbolic link at path points
 * (so that the link stays a link). Refuses a directory, a device, a FIFO or a socket: replacing
 * it with a regular file would destroy it (a copy of /dev/null, say). */
static int nnrt__atomic_target(const char *path, char **target) {
    struct stat st;
    *target = NULL;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        *target = realpath(path, NULL);
        if (*target == NULL)
            return nnrt_fail(NNRT_ERR_IO, "%s: cannot write: a symbolic link to nothing (%s)", path, strerror(errno));
    } else {
        *target = nnrt__strdup(path);
        if (*target == NULL)
            return nnrt_fail(NNRT_ERR_NOMEM, "%s: out of memory", path);
    }
    if (stat(*target, &st) == 0 && S_ISDIR(st.st_mode))
        return nnrt_fail(NNRT_ERR_IO, "%s: cannot write: is a directory", path);
    if (stat(*target, &st) == 0 && !S_ISREG(st.st_mode))
        return nnrt_fail(NNRT_ERR_IO, "%s: cannot write: %s, not a regular file; it is not replaced", path,
                         nnrt__file_kind(st.st_mode));
    return NNRT_OK;
}

int nnrt_atomic_open(nnrt_atomic_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    int code = nnrt__atomic_target(path, &f->path);
    if (code != NNRT_OK) {
        nnrt__atomic_release(f);
        return code;
    }
    char suffix[48];
    snprintf(suffix, sizeof suffix, ".tmp.%lld.XXXXXX", (long long)getpid());
    size_t len = strlen(f->path);
    f->tmp_path = malloc(len + strlen(suffix) + 1);
    if (f->tmp_path == NULL) {
        nnrt__atomic_release(f);
        return nnrt_fail(NNRT_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(f->tmp_path, f->path, len);
    strcpy(f->tmp_path + len, suffix);
    nnrt__remove_stale(f->path);
    int fd = -1;
#ifdef O_TMPFILE
    if (!nnrt__atomic_no_tmpfile && access("/proc/self/fd", X_OK) == 0) {
        char *dir = nnrt__dir_of(f->path);
        fd = dir == NULL ? -1 : open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
        free(dir);
        f->unnamed = fd >= 0;
    }
#endif
    if (fd < 0)
        fd = nnrt__try_names(f, nnrt__make_named);
    if (fd < 0) {
        code = nnrt_fail(NNRT_ERR_IO, "%s: cannot create temporary file %s: %s", path, f->tmp_path, strerror(errno));
        nnrt__atomic_release(f);
        return code;
    }
    /* A file that is replaced keeps its permissions: a private (0600) one must not come back
     * readable by all. A failure to set them leaves those of a new file. */
    struct stat st;
    if (stat(f->path, &st) == 0)
        (void)fchmod(fd, st.st_mode & 0777);
    f->fp = fdopen(fd, "wb");
    if (f->fp == NULL) {
        code = nnrt_fail(NNRT_ERR_IO, "%s: cannot open temporary file: %s", path, strerror(errno));
        close(fd);
        if (!f->unnamed)
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
    char *dir = nnrt__dir_of(path);
    int fd = dir == NULL ? -1 : open(dir, O_RDONLY | O_CLOEXEC);
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
    int code = NNRT_OK, named = !f->unnamed;
    if (fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0)
        code = nnrt_fail(NNRT_ERR_IO, "%s: write failed: %s", f->path, strerror(errno));
#ifdef O_TMPFILE
    if (code == NNRT_OK && f->unnamed) {
        if (nnrt__try_names(f, nnrt__link_unnamed) != 0)
            code = nnrt_fail(NNRT_ERR_IO, "%s: cannot give the temporary file a name (%s): %s", f->path, f->tmp_path,
                             strerror(errno));
        else
            named = 1;
    }
#endif
    if (fclose(f->fp) != 0 && code == NNRT_OK)
        code = nnrt_fail(NNRT_ERR_IO, "%s: write failed: %s", f->path, strerror(errno));
    f->fp = NULL;
    if (code == NNRT_OK && rename(f->tmp_path, f->path) != 0)
        code = nnrt_fail(NNRT_ERR_IO, "%s: cannot rename %s over it: %s", f->path, f->tmp_path,
                         strerror(errno));
    if (code != NNRT_OK && named)
        unlink(f->tmp_path);
    else if (code == NNRT_OK)
        nnrt__sync_parent_dir(f->path);
    nnrt__atomic_release(f);
    return code;
}

void nnrt_atomic_abort(nnrt_atomic_file *f) {
    if (f->fp != NULL) {
        fclose(f->fp);
        f->fp = NULL;
        if (!f->unnamed && f->tmp_path != NULL)
            unlink(f->tmp_path);
    }
    nnrt__atomic_release(f);
}
