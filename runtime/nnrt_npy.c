/* nnrt_npy.c — .npy read (format versions 1.0, 2.0, 3.0) and write (1.0).
 *
 * Layout: "\x93NUMPY", major, minor, header length (2 bytes LE in 1.0, 4 bytes in 2.0/3.0), then a
 * Python dict literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } padded
 * with spaces and ending in '\n', then the raw C-order data. The dict is parsed by hand and
 * strictly: it is tiny, and evaluating anything more general from a file would be a liability. */
#define _FILE_OFFSET_BITS 64
#define _POSIX_C_SOURCE 200809L

#include "nnrt_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "nnrt: .npy data is read as little endian; big-endian hosts are not supported"
#endif

#define NNRT__NPY_MAGIC "\x93NUMPY"
#define NNRT__NPY_MAGIC_LEN 6
#define NNRT__NPY_MAX_HEADER 65536 /* ours are ~100 bytes; numpy itself refuses > 10000 by default */
#define NNRT__NPY_ALIGN 64         /* numpy aligns the data to 64 bytes since 1.14 */
#define NNRT__NPY_SPARSE_MIN (64u << 20) /* data this large must be stored, not sparse */
#define NNRT__NPY_EXPECTED "expected little-endian float32, float64, int32 or int64"

typedef unsigned long long ull;

static const char *const nnrt__npy_descr_codes[] = {"f4", "f8", "i4", "i8"}; /* by nnrt_dtype */

/* "(3, 4)", "(3,)" or "()", as Python prints a tuple. */
static const char *nnrt__npy_shape_text(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < size)
        snprintf(buf + n, size - n, ndim == 1 ? ",)" : ")");
    return buf;
}

/* ================================== Header dict parser ====================================== */

typedef struct nnrt__npy_header {
    const char *descr; /* points into the header text; not NUL-terminated */
    size_t descr_len;
    int descr_is_list; /* a structured dtype: [('a', '<f4'), ...] */
    int fortran_order;
    int ndim; /* may exceed NNRT_MAX_DIMS; only the first NNRT_MAX_DIMS are kept */
    int64_t shape[NNRT_MAX_DIMS];
    int seen_descr, seen_fortran_order, seen_shape;
} nnrt__npy_header;

typedef struct nnrt__npy_parser {
    const char *path;
    const char *text;
    size_t len, pos;
} nnrt__npy_parser;

static int nnrt__npy_syntax(const nnrt__npy_parser *p, const char *expected) {
    char context[48];
    size_t rest = p->len - p->pos;
    nnrt__printable(p->text + p->pos, rest, context, sizeof context);
    return nnrt_fail(NNRT_ERR_FORMAT, "%s: malformed header: expected %s at byte %zu, found '%s'", p->path,
                     expected, p->pos, rest ? context : "end of header");
}

static void nnrt__npy_skip_space(nnrt__npy_parser *p) {
    while (p->pos < p->len && strchr(" \t\r\n", p->text[p->pos]) != NULL && p->text[p->pos] != '\0')
        p->pos++;
}

static int nnrt__npy_peek(const nnrt__npy_parser *p) {
    return p->pos < p->len ? (unsigned char)p->text[p->pos] : -1;
}

static int nnrt__npy_expect(nnrt__npy_parser *p, char c, const char *what) {
    nnrt__npy_skip_space(p);
    if (nnrt__npy_peek(p) != (unsigned char)c)
        return nnrt__npy_syntax(p, what);
    p->pos++;
    return NNRT_OK;
}

/* A quoted string without escapes (numpy never writes any in these keys and values). */
static int nnrt__npy_string(nnrt__npy_parser *p, const char **start, size_t *len) {
    nnrt__npy_skip_space(p);
    int quote = nnrt__npy_peek(p);
    if (quote != '\'' && quote != '"')
        return nnrt__npy_syntax(p, "a quoted string");
    size_t begin = ++p->pos;
    while (p->pos < p->len && p->text[p->pos] != quote && p->text[p->pos] != '\\' && p->text[p->pos] != '\n')
        p->pos++;
    if (nnrt__npy_peek(p) != quote)
        return nnrt__npy_syntax(p, "the closing quote of a string without escapes");
    *start = p->text + begin;
    *len = p->pos - begin;
    p->pos++;
    return NNRT_OK;
}

static int nnrt__npy_word(nnrt__npy_parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->text + p->pos, word, n) != 0)
        return 0;
    int next = p->pos + n < p->len ? (unsigned char)p->text[p->pos + n] : -1;
    if ((next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') || (next >= '0' && next <= '9') || next == '_')
        return 0; /* "Trueish" is not True */
    p->pos += n;
    return 1;
}

static int nnrt__npy_bool(nnrt__npy_parser *p, int *value) {
    nnrt__npy_skip_space(p);
    if (nnrt__npy_word(p, "True"))
        *value = 1;
    else if (nnrt__npy_word(p, "False"))
        *value = 0;
    else
        return nnrt__npy_syntax(p, "True or False");
    return NNRT_OK;
}

static int nnrt__npy_int(nnrt__npy_parser *p, int64_t *value) {
    nnrt__npy_skip_space(p);
    int c = nnrt__npy_peek(p);
    if (c < '0' || c > '9')
        return nnrt__npy_syntax(p, "a non-negative integer");
    int64_t v = 0;
    while ((c = nnrt__npy_peek(p)) >= '0' && c <= '9') {
        if (v > (INT64_MAX - (c - '0')) / 10)
            return nnrt__npy_syntax(p, "a dimension below 2^63");
        v = v * 10 + (c - '0');
        p->pos++;
    }
    *value = v;
    return NNRT_OK;
}

/* A tuple of non-negative ints: (), (3,), (3, 4) or (3, 4,). */
static int nnrt__npy_shape(nnrt__npy_parser *p, nnrt__npy_header *h) {
    int code = nnrt__npy_expect(p, '(', "'(' starting the shape tuple");
    h->ndim = 0;
    nnrt__npy_skip_space(p);
    while (code == NNRT_OK && nnrt__npy_peek(p) != ')') {
        int64_t dim = 0;
        code = nnrt__npy_int(p, &dim);
        if (code != NNRT_OK)
            break;
        if (h->ndim < NNRT_MAX_DIMS)
            h->shape[h->ndim] = dim;
        h->ndim++; /* a 64 KiB header cannot hold enough entries to overflow this */
        nnrt__npy_skip_space(p);
        if (nnrt__npy_peek(p) == ',') {
            p->pos++;
            nnrt__npy_skip_space(p);
        } else if (nnrt__npy_peek(p) != ')' || h->ndim == 1) {
            /* (3) is a parenthesised int in Python, not a tuple. */
            code = nnrt__npy_syntax(p, h->ndim == 1 ? "',' (a 1-d shape is written (n,))" : "',' or ')'");
        }
    }
    if (code == NNRT_OK)
        p->pos++; /* the ')' */
    return code;
}

static int nnrt__npy_descr(nnrt__npy_parser *p, nnrt__npy_header *h) {
    nnrt__npy_skip_space(p);
    if (nnrt__npy_peek(p) == '[') {
        h->descr_is_list = 1; /* reported once the header has parsed; skip to the matching ']' */
        int depth = 0;
        do {
            int c = nnrt__npy_peek(p);
            depth += (c == '[') - (c == ']');
            p->pos++;
        } while (depth > 0 && p->pos < p->len);
        return depth == 0 ? NNRT_OK : nnrt__npy_syntax(p, "']' closing the structured dtype");
    }
    return nnrt__npy_string(p, &h->descr, &h->descr_len);
}

static int nnrt__npy_entry(nnrt__npy_parser *p, nnrt__npy_header *h) {
    const char *key;
    size_t key_len;
    size_t key_pos = p->pos;
    int code = nnrt__npy_string(p, &key, &key_len);
    if (code == NNRT_OK)
        code = nnrt__npy_expect(p, ':', "':' after a key");
    if (code != NNRT_OK)
        return code;
    int *seen = NULL;
    if (key_len == 5 && memcmp(key, "descr", 5) == 0) {
        seen = &h->seen_descr;
        code = nnrt__npy_descr(p, h);
    } else if (key_len == 13 && memcmp(key, "fortran_order", 13) == 0) {
        seen = &h->seen_fortran_order;
        code = nnrt__npy_bool(p, &h->fortran_order);
    } else if (key_len == 5 && memcmp(key, "shape", 5) == 0) {
        seen = &h->seen_shape;
        code = nnrt__npy_shape(p, h);
    } else {
        char shown[64];
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: malformed header: unexpected key '%s' at byte %zu; expected 'descr', "
                         "'fortran_order' and 'shape'", p->path, nnrt__printable(key, key_len, shown, sizeof shown), key_pos);
    }
    if (code == NNRT_OK && (*seen)++)
        code = nnrt_fail(NNRT_ERR_FORMAT, "%s: malformed header: key '%.*s' appears twice", p->path, (int)key_len, key);
    return code;
}

static int nnrt__npy_parse_dict(nnrt__npy_parser *p, nnrt__npy_header *h) {
    int code = nnrt__npy_expect(p, '{', "'{' starting the header dictionary");
    nnrt__npy_skip_space(p);
    while (code == NNRT_OK && nnrt__npy_peek(p) != '}') {
        code = nnrt__npy_entry(p, h);
        nnrt__npy_skip_space(p);
        if (code == NNRT_OK && nnrt__npy_peek(p) == ',') {
            p->pos++;
            nnrt__npy_skip_space(p);
        } else if (code == NNRT_OK && nnrt__npy_peek(p) != '}') {
            code = nnrt__npy_syntax(p, "',' or '}'");
        }
    }
    if (code != NNRT_OK)
        return code;
    p->pos++; /* the '}' */
    nnrt__npy_skip_space(p);
    if (p->pos != p->len)
        return nnrt__npy_syntax(p, "only padding after the header dictionary");
    if (!h->seen_descr || !h->seen_fortran_order || !h->seen_shape)
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: malformed header: key '%s' is missing", p->path,
                         !h->seen_descr ? "descr" : !h->seen_fortran_order ? "fortran_order" : "shape");
    return NNRT_OK;
}

/* ==================================== Header meaning ======================================== */

static int nnrt__npy_dtype(const char *path, const nnrt__npy_header *h, nnrt_dtype *dtype) {
    if (h->descr_is_list)
        return nnrt_fail(NNRT_ERR_DTYPE, "%s: structured dtype is not supported; " NNRT__NPY_EXPECTED, path);
    const char *d = h->descr;
    char shown[40];
    nnrt__printable(d, h->descr_len, shown, sizeof shown);
    for (int code = NNRT_F32; code <= NNRT_I64 && h->descr_len == 3; code++) {
        if (memcmp(d + 1, nnrt__npy_descr_codes[code], 2) != 0)
            continue;
        if (d[0] == '<' || d[0] == '|' || d[0] == '=') {
            *dtype = (nnrt_dtype)code;
            return NNRT_OK;
        }
        if (d[0] == '>')
            return nnrt_fail(NNRT_ERR_DTYPE, "%s: dtype '%s' (big-endian) is not supported; " NNRT__NPY_EXPECTED,
                             path, shown);
    }
    return nnrt_fail(NNRT_ERR_DTYPE, "%s: dtype '%s' is not supported; " NNRT__NPY_EXPECTED, path, shown);
}

static int nnrt__npy_interpret(const char *path, const nnrt__npy_header *h, nnrt_array *out) {
    int code = nnrt__npy_dtype(path, h, &out->dtype);
    if (code != NNRT_OK)
        return code;
    if (h->fortran_order)
        return nnrt_fail(NNRT_ERR_FORMAT,
                         "%s: fortran_order is True (column-major data); only C order is supported "
                         "(save np.ascontiguousarray(x) instead)", path);
    if (h->ndim > NNRT_MAX_DIMS)
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: array has %d dimensions; at most %d are supported", path, h->ndim,
                         NNRT_MAX_DIMS);
    out->ndim = h->ndim;
    out->count = 1;
    for (int i = 0; i < h->ndim; i++) {
        out->shape[i] = h->shape[i];
        if ((uint64_t)h->shape[i] > SIZE_MAX || !nnrt__mul_size(out->count, (size_t)h->shape[i], &out->count)) {
            char shape[256];
            return nnrt_fail(NNRT_ERR_FORMAT, "%s: shape %s is too large", path,
                             nnrt__npy_shape_text(shape, sizeof shape, h->ndim, h->shape));
        }
    }
    return NNRT_OK;
}

/* ======================================= Reader ============================================= */

typedef struct nnrt__npy_file {
    const char *path;
    FILE *fp;
    uint64_t file_size;
    uint64_t stored; /* bytes on disk: less than file_size when the file is sparse */
    uint64_t data_start;
} nnrt__npy_file;

/* Reads the magic, version and header length; leaves the stream at the header text. */
static int nnrt__npy_prelude(nnrt__npy_file *nf, uint32_t *header_len) {
    unsigned char prelude[NNRT__NPY_MAGIC_LEN + 6];
    if (nf->file_size < NNRT__NPY_MAGIC_LEN + 4)
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: file is %llu bytes, too short for a .npy file", nf->path,
                         (ull)nf->file_size);
    int code = nnrt__read_exact(nf->fp, prelude, NNRT__NPY_MAGIC_LEN + 4, nf->path, "the .npy prelude");
    if (code != NNRT_OK)
        return code;
    if (memcmp(prelude, NNRT__NPY_MAGIC, NNRT__NPY_MAGIC_LEN) != 0)
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: not a .npy file (it does not start with \\x93NUMPY)%s", nf->path,
                         nnrt__looks_like(prelude, NNRT__NPY_MAGIC_LEN + 4, nf->file_size));
    int major = prelude[6], minor = prelude[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0)
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: .npy format version %d.%d is not supported; expected 1.0, 2.0 or 3.0",
                         nf->path, major, minor);
    size_t len_bytes = major == 1 ? 2 : 4;
    if (len_bytes == 4) {
        code = nnrt__read_exact(nf->fp, prelude + 10, 2, nf->path, "the .npy header length");
        if (code != NNRT_OK)
            return code;
    }
    *header_len = 0;
    for (size_t i = len_bytes; i-- > 0;)
        *header_len = (*header_len << 8) | prelude[8 + i];
    nf->data_start = 8 + len_bytes + *header_len;
    if (*header_len > NNRT__NPY_MAX_HEADER)
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: header length %lu exceeds the %d-byte limit", nf->path,
                         (unsigned long)*header_len, NNRT__NPY_MAX_HEADER);
    if (nf->data_start > nf->file_size)
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: header length %lu runs past the end of the file (%llu bytes)",
                         nf->path, (unsigned long)*header_len, (ull)nf->file_size);
    return NNRT_OK;
}

static int nnrt__npy_read_header(nnrt__npy_file *nf, nnrt_array *out) {
    uint32_t header_len = 0;
    int code = nnrt__npy_prelude(nf, &header_len);
    if (code != NNRT_OK)
        return code;
    char *text = malloc(header_len + 1u);
    if (text == NULL)
        return nnrt_fail(NNRT_ERR_NOMEM, "%s: out of memory", nf->path);
    code = nnrt__read_exact(nf->fp, text, header_len, nf->path, "the .npy header");
    nnrt__npy_header h = {0};
    nnrt__npy_parser p = {.path = nf->path, .text = text, .len = header_len};
    if (code == NNRT_OK)
        code = nnrt__npy_parse_dict(&p, &h);
    if (code == NNRT_OK)
        code = nnrt__npy_interpret(nf->path, &h, out);
    free(text);
    return code;
}

static int nnrt__npy_check_data_size(const nnrt__npy_file *nf, const nnrt_array *a, size_t *bytes) {
    char shape[256];
    nnrt__npy_shape_text(shape, sizeof shape, a->ndim, a->shape);
    if (!nnrt__mul_size(a->count, nnrt_dtype_size(a->dtype), bytes))
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: shape %s is too large", nf->path, shape);
    uint64_t found = nf->file_size - nf->data_start;
    if (found < *bytes)
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: truncated data: shape %s of %s needs %zu bytes, found %llu", nf->path,
                         shape, nnrt_dtype_name(a->dtype), *bytes, (ull)found);
    if (found > *bytes)
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: %llu bytes of trailing data: shape %s of %s needs %zu bytes, found %llu",
                         nf->path, (ull)(found - *bytes), shape, nnrt_dtype_name(a->dtype), *bytes, (ull)found);
    /* The size is the file's own, but a sparse file has one without storing it: reading holes
     * would fill memory with zeros the file never held. Compressing filesystems store less
     * than the size too, so only a file that stores under 1/8 of a large claim is refused. */
    if (*bytes >= NNRT__NPY_SPARSE_MIN && nf->stored < *bytes / 8)
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: shape %s of %s claims %zu bytes (%.1f GB) of data, but the file stores "
                         "only %llu bytes on disk (a sparse file); refused before allocating", nf->path, shape,
                         nnrt_dtype_name(a->dtype), *bytes, (double)*bytes / 1e9, (ull)nf->stored);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0 && (uint64_t)*bytes / (uint64_t)page > (uint64_t)pages)
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: shape %s of %s needs %zu bytes (%.1f GB), more than this machine's "
                         "memory (%.1f GB)", nf->path, shape, nnrt_dtype_name(a->dtype), *bytes, (double)*bytes / 1e9,
                         (double)pages * (double)page / 1e9);
    return NNRT_OK;
}

int nnrt_npy_read(const char *path, nnrt_array *out) {
    if (out == NULL || path == NULL)
        return nnrt_fail(NNRT_ERR_ARG, "nnrt_npy_read: path or out is NULL");
    memset(out, 0, sizeof *out);
    nnrt__npy_file nf = {.path = path};
    nnrt_array a = {0};
    size_t bytes = 0;
    int code = nnrt__open_regular(path, &nf.fp, &nf.file_size, &nf.stored);
    if (code == NNRT_OK)
        code = nnrt__npy_read_header(&nf, &a);
    if (code == NNRT_OK)
        code = nnrt__npy_check_data_size(&nf, &a, &bytes);
    if (code == NNRT_OK) {
        a.data = nnrt_alloc(bytes);
        if (a.data == NULL)
            code = nnrt_fail(NNRT_ERR_NOMEM, "%s: out of memory for %zu bytes of data", path, bytes);
    }
    if (code == NNRT_OK)
        code = nnrt__read_exact(nf.fp, a.data, bytes, path, "the array data");
    if (nf.fp != NULL)
        fclose(nf.fp);
    if (code != NNRT_OK) {
        nnrt_array_free(&a);
        return code;
    }
    *out = a;
    return NNRT_OK;
}

/* ======================================= Writer ============================================= */

static int nnrt__npy_check_array(const char *path, const nnrt_array *a, size_t *bytes) {
    if (!nnrt__dtype_valid((int)a->dtype))
        return nnrt_fail(NNRT_ERR_ARG, "%s: invalid dtype %d", path, (int)a->dtype);
    if (a->ndim < 0 || a->ndim > NNRT_MAX_DIMS)
        return nnrt_fail(NNRT_ERR_ARG, "%s: ndim %d is outside 0..%d", path, a->ndim, NNRT_MAX_DIMS);
    size_t count = 1;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] < 0 || (uint64_t)a->shape[i] > SIZE_MAX || !nnrt__mul_size(count, (size_t)a->shape[i], &count))
            return nnrt_fail(NNRT_ERR_ARG, "%s: negative or too large shape", path);
    if (count != a->count)
        return nnrt_fail(NNRT_ERR_ARG, "%s: count %zu disagrees with the shape's %zu elements", path, a->count, count);
    if (!nnrt__mul_size(count, nnrt_dtype_size(a->dtype), bytes))
        return nnrt_fail(NNRT_ERR_ARG, "%s: array too large", path);
    if (*bytes > 0 && a->data == NULL)
        return nnrt_fail(NNRT_ERR_ARG, "%s: data is NULL", path);
    return NNRT_OK;
}

/* Magic, version 1.0, length and the dict, padded with spaces to end in '\n' at a 64-byte boundary. */
static size_t nnrt__npy_format_header(char *buf, size_t size, const nnrt_array *a) {
    char shape[256];
    size_t prelude = NNRT__NPY_MAGIC_LEN + 4;
    int n = snprintf(buf + prelude, size - prelude, "{'descr': '<%s', 'fortran_order': False, 'shape': %s, }",
                     nnrt__npy_descr_codes[a->dtype], nnrt__npy_shape_text(shape, sizeof shape, a->ndim, a->shape));
    size_t total = (prelude + (size_t)n + 1 + NNRT__NPY_ALIGN - 1) / NNRT__NPY_ALIGN * NNRT__NPY_ALIGN;
    memset(buf + prelude + n, ' ', total - prelude - (size_t)n - 1);
    buf[total - 1] = '\n';
    size_t header_len = total - prelude;
    memcpy(buf, NNRT__NPY_MAGIC "\x01\x00", NNRT__NPY_MAGIC_LEN + 2);
    buf[8] = (char)(header_len & 0xff);
    buf[9] = (char)(header_len >> 8);
    return total;
}

int nnrt_npy_write(const char *path, const nnrt_array *a) {
    if (path == NULL || a == NULL)
        return nnrt_fail(NNRT_ERR_ARG, "nnrt_npy_write: path or array is NULL");
    size_t bytes = 0;
    int code = nnrt__npy_check_array(path, a, &bytes);
    if (code != NNRT_OK)
        return code;
    char header[512]; /* 8 dims of 19 digits plus the fixed text fit with room to spare */
    size_t header_bytes = nnrt__npy_format_header(header, sizeof header, a);
    nnrt_atomic_file f;
    code = nnrt_atomic_open(&f, path);
    if (code != NNRT_OK)
        return code;
    code = nnrt_atomic_write(&f, header, header_bytes);
    if (code == NNRT_OK)
        code = nnrt_atomic_write(&f, a->data, bytes);
    if (code != NNRT_OK) {
        nnrt_atomic_abort(&f);
        return code;
    }
    return nnrt_atomic_commit(&f);
}

void nnrt_array_free(nnrt_array *a) {
    if (a == NULL)
        return;
    nnrt_free(a->data);
    memset(a, 0, sizeof *a);
}
