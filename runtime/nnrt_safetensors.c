/* nnrt_safetensors.c — safetensors write and strict read.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "value"}}
 * then the data buffer, offsets relative to its start. The reader trusts nothing in the file: every
 * length is checked against the real file size before it is used, and all names, dtypes and shapes
 * are checked before any tensor data is copied. */
#define _FILE_OFFSET_BITS 64
#define _POSIX_C_SOURCE 200809L

#include "nnrt_internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "nnrt: safetensors data is little endian; big-endian hosts are not supported"
#endif

#define NNRT__ST_MAX_HEADER (100ull * 1000 * 1000) /* 100 MB, as the reference implementation */
#define NNRT__ST_METADATA "__metadata__"

typedef unsigned long long ull; /* for printf: uint64_t has no portable short conversion */

static const char *const nnrt__st_dtype_names[] = {"F32", "F64", "I32", "I64"}; /* by nnrt_dtype */

static int nnrt__st_dtype_from_name(const char *name, nnrt_dtype *out) {
    for (int d = NNRT_F32; d <= NNRT_I64; d++) {
        if (strcmp(name, nnrt__st_dtype_names[d]) == 0) {
            *out = (nnrt_dtype)d;
            return 1;
        }
    }
    return 0;
}

/* "[128, 32]" */
static const char *nnrt__st_shape_text(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
    return buf;
}

/* Bytes of a tensor of this dtype and shape; 0 when the count overflows size_t. */
static int nnrt__st_nbytes(nnrt_dtype dtype, int ndim, const int64_t *shape, size_t *bytes) {
    size_t total = nnrt_dtype_size(dtype);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || (uint64_t)shape[i] > SIZE_MAX || !nnrt__mul_size(total, (size_t)shape[i], &total))
            return 0;
    *bytes = total;
    return 1;
}

/* ======================================== Writer ============================================ */

static int nnrt__st_check_tensor(const char *path, const nnrt_tensor *t, size_t *bytes) {
    if (t->name == NULL || t->name[0] == '\0' || strcmp(t->name, NNRT__ST_METADATA) == 0)
        return nnrt_fail(NNRT_ERR_ARG, "%s: a tensor name is empty or reserved", path);
    if (!nnrt__dtype_valid((int)t->dtype))
        return nnrt_fail(NNRT_ERR_ARG, "%s: tensor %s: invalid dtype %d", path, t->name, (int)t->dtype);
    if (t->ndim < 0 || t->ndim > NNRT_MAX_DIMS)
        return nnrt_fail(NNRT_ERR_ARG, "%s: tensor %s: ndim %d is outside 0..%d", path, t->name,
                         t->ndim, NNRT_MAX_DIMS);
    if (!nnrt__st_nbytes(t->dtype, t->ndim, t->shape, bytes))
        return nnrt_fail(NNRT_ERR_ARG, "%s: tensor %s: negative or too large shape", path, t->name);
    if (*bytes > 0 && t->data == NULL)
        return nnrt_fail(NNRT_ERR_ARG, "%s: tensor %s: data is NULL", path, t->name);
    return NNRT_OK;
}

static json_t *nnrt__st_entry_json(const nnrt_tensor *t, size_t begin, size_t end) {
    json_t *entry = json_object();
    json_t *shape = json_array();
    json_t *offsets = json_array();
    int failed = entry == NULL || shape == NULL || offsets == NULL;
    for (int i = 0; i < t->ndim && !failed; i++)
        failed = json_array_append_new(shape, json_integer((json_int_t)t->shape[i])) != 0;
    failed = failed || json_array_append_new(offsets, json_integer((json_int_t)begin)) != 0 ||
             json_array_append_new(offsets, json_integer((json_int_t)end)) != 0;
    failed = failed || json_object_set_new(entry, "dtype", json_string(nnrt__st_dtype_names[t->dtype])) != 0;
    if (!failed) {
        failed = json_object_set_new(entry, "shape", shape) != 0;
        shape = NULL; /* owned by entry now, even when the set failed */
    }
    if (!failed) {
        failed = json_object_set_new(entry, "data_offsets", offsets) != 0;
        offsets = NULL;
    }
    json_decref(shape);
    json_decref(offsets);
    if (failed) {
        json_decref(entry);
        return NULL;
    }
    return entry;
}

/* The header JSON as a string, tensors in the given order, data packed back to back. */
static int nnrt__st_build_header(const char *path, const nnrt_tensor *tensors, size_t count, char **text) {
    json_t *root = json_object();
    json_t *metadata = json_object();
    int code = NNRT_OK;
    /* "format": "pt" is what PyTorch tooling writes; loaders that look for it are satisfied. */
    if (root == NULL || metadata == NULL || json_object_set_new(metadata, "format", json_string("pt")) != 0 ||
        json_object_set(root, NNRT__ST_METADATA, metadata) != 0)
        code = nnrt_fail(NNRT_ERR_NOMEM, "%s: out of memory building the header", path);
    size_t offset = 0;
    for (size_t i = 0; i < count && code == NNRT_OK; i++) {
        size_t bytes = 0;
        code = nnrt__st_check_tensor(path, &tensors[i], &bytes);
        if (code != NNRT_OK)
            break;
        if (json_object_get(root, tensors[i].name) != NULL) {
            code = nnrt_fail(NNRT_ERR_NAME, "%s: tensor %s is given twice", path, tensors[i].name);
            break;
        }
        if (bytes > (size_t)INT64_MAX - offset) {
            code = nnrt_fail(NNRT_ERR_ARG, "%s: tensors too large for one file", path);
            break;
        }
        json_t *entry = nnrt__st_entry_json(&tensors[i], offset, offset + bytes);
        if (entry == NULL || json_object_set_new(root, tensors[i].name, entry) != 0)
            code = nnrt_fail(NNRT_ERR_NOMEM, "%s: out of memory building the header", path);
        offset += bytes;
    }
    if (code == NNRT_OK) {
        *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (*text == NULL)
            code = nnrt_fail(NNRT_ERR_NOMEM, "%s: out of memory building the header", path);
    }
    json_decref(metadata);
    json_decref(root);
    return code;
}

static int nnrt__st_write_body(nnrt_atomic_file *f, const char *header, const nnrt_tensor *tensors,
                               size_t count) {
    /* Pad with spaces (valid JSON whitespace) so the data starts 8-byte aligned. */
    static const char spaces[8] = "        ";
    size_t len = strlen(header);
    size_t padded = (len + 7) / 8 * 8;
    unsigned char prefix[8];
    for (int i = 0; i < 8; i++)
        prefix[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int code = nnrt_atomic_write(f, prefix, sizeof prefix);
    if (code == NNRT_OK)
        code = nnrt_atomic_write(f, header, len);
    if (code == NNRT_OK)
        code = nnrt_atomic_write(f, spaces, padded - len);
    for (size_t i = 0; i < count && code == NNRT_OK; i++) {
        size_t bytes = 0;
        nnrt__st_nbytes(tensors[i].dtype, tensors[i].ndim, tensors[i].shape, &bytes); /* checked */
        code = nnrt_atomic_write(f, tensors[i].data, bytes);
    }
    return code;
}

int nnrt_safetensors_write(const char *path, const nnrt_tensor *tensors, size_t count) {
    if (path == NULL || (count > 0 && tensors == NULL))
        return nnrt_fail(NNRT_ERR_ARG, "nnrt_safetensors_write: path or tensors is NULL");
    char *header = NULL;
    int code = nnrt__st_build_header(path, tensors, count, &header);
    if (code != NNRT_OK)
        return code;
    nnrt_atomic_file f;
    code = nnrt_atomic_open(&f, path);
    if (code == NNRT_OK) {
        code = nnrt__st_write_body(&f, header, tensors, count);
        if (code == NNRT_OK)
            code = nnrt_atomic_commit(&f);
        else
            nnrt_atomic_abort(&f);
    }
    free(header);
    return code;
}

/* ======================================== Reader ============================================ */

typedef struct nnrt__st_entry {
    const char *name; /* owned by the parsed JSON */
    nnrt_dtype dtype;
    int ndim;
    int64_t shape[NNRT_MAX_DIMS];
    uint64_t begin, end; /* relative to the data buffer */
    int matched;         /* claimed by one of the caller's tensors */
} nnrt__st_entry;

typedef struct nnrt__st_file {
    const char *path;
    FILE *fp;
    uint64_t file_size;
    uint64_t header_len;
    uint64_t data_size;
    json_t *root;
    nnrt__st_entry *entries; /* in header order */
    size_t count;
    nnrt__st_entry **sorted; /* scratch: by offset, later by name */
} nnrt__st_file;

/* A file-supplied name made safe to print. */
typedef struct nnrt__st_name {
    char text[160];
} nnrt__st_name;

static nnrt__st_name nnrt__st_show(const char *name) {
    nnrt__st_name shown;
    nnrt__printable(name, strlen(name), shown.text, sizeof shown.text);
    return shown;
}

static int nnrt__st_read_header(nnrt__st_file *sf) {
    if (sf->file_size < 8)
        return nnrt_fail(NNRT_ERR_FORMAT,
                         "%s: file is %llu bytes, too short for a safetensors header (8-byte length, then JSON)",
                         sf->path, (ull)sf->file_size);
    /* The first bytes, to tell a file that is something else (an .npy, text) from a damaged
     * one: its first 8 bytes read as a header length give nonsense, and no '{' follows. */
    unsigned char head[16];
    size_t got = sf->file_size < sizeof head ? (size_t)sf->file_size : sizeof head;
    int code = nnrt__read_exact(sf->fp, head, got, sf->path, "the header length");
    if (code != NNRT_OK)
        return code;
    sf->header_len = 0;
    for (int i = 7; i >= 0; i--)
        sf->header_len = (sf->header_len << 8) | head[i];
    int plausible = sf->header_len <= sf->file_size - 8 && sf->header_len <= NNRT__ST_MAX_HEADER;
    if (!plausible && !(got > 8 && head[8] == '{')) {
        const char *what = nnrt__looks_like(head, got, sf->file_size);
        return nnrt_fail(NNRT_ERR_FORMAT,
                         "%s: not a safetensors file%s (one starts with an 8-byte header length, then the "
                         "JSON header's '{')", sf->path, what[0] ? what : ": no '{' after the first 8 bytes");
    }
    if (sf->header_len > NNRT__ST_MAX_HEADER)
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: header length %llu exceeds the 100 MB limit", sf->path,
                         (ull)sf->header_len);
    if (sf->header_len > sf->file_size - 8)
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%llu bytes)",
                         sf->path, (ull)sf->header_len, (ull)sf->file_size);
    if (fseeko(sf->fp, 8, SEEK_SET) != 0)
        return nnrt_fail(NNRT_ERR_IO, "%s: cannot seek to the header", sf->path);
    sf->data_size = sf->file_size - 8 - sf->header_len;
    char *text = malloc(sf->header_len + 1);
    if (text == NULL)
        return nnrt_fail(NNRT_ERR_NOMEM, "%s: out of memory reading the header", sf->path);
    code = nnrt__read_exact(sf->fp, text, sf->header_len, sf->path, "the header");
    if (code == NNRT_OK) {
        json_error_t error;
        sf->root = json_loadb(text, sf->header_len, JSON_REJECT_DUPLICATES, &error);
        if (sf->root == NULL && json_error_code(&error) == json_error_duplicate_key)
            code = nnrt_fail(NNRT_ERR_NAME, "%s: header names a tensor or field twice: %s", sf->path, error.text);
        else if (sf->root == NULL)
            code = nnrt_fail(NNRT_ERR_FORMAT, "%s: header is not valid JSON: %s (at byte %d of the header)",
                             sf->path, error.text, error.position);
        else if (!json_is_object(sf->root))
            code = nnrt_fail(NNRT_ERR_FORMAT, "%s: header is not a JSON object", sf->path);
    }
    free(text);
    return code;
}

static int nnrt__st_check_metadata(const nnrt__st_file *sf, json_t *metadata) {
    const char *key;
    json_t *value;
    int all_strings = json_is_object(metadata);
    if (all_strings) {
        json_object_foreach(metadata, key, value) {
            all_strings = all_strings && json_is_string(value);
        }
    }
    if (!all_strings)
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: " NNRT__ST_METADATA " is not an object of strings", sf->path);
    return NNRT_OK;
}

static int nnrt__st_parse_dtype(const nnrt__st_file *sf, nnrt__st_entry *e, json_t *dtype) {
    if (!json_is_string(dtype))
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: tensor %s: \"dtype\" is missing or not a string", sf->path,
                         nnrt__st_show(e->name).text);
    if (!nnrt__st_dtype_from_name(json_string_value(dtype), &e->dtype)) {
        char shown[64];
        nnrt__printable(json_string_value(dtype), json_string_length(dtype), shown, sizeof shown);
        return nnrt_fail(NNRT_ERR_DTYPE, "%s: tensor %s: dtype \"%s\" is not supported; expected F32, F64, I32 or I64",
                         sf->path, nnrt__st_show(e->name).text, shown);
    }
    return NNRT_OK;
}

static int nnrt__st_parse_shape(const nnrt__st_file *sf, nnrt__st_entry *e, json_t *shape) {
    const nnrt__st_name shown = nnrt__st_show(e->name); /* keeps the text alive */
    const char *name = shown.text;
    if (!json_is_array(shape))
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: tensor %s: \"shape\" is missing or not a list", sf->path, name);
    if (json_array_size(shape) > NNRT_MAX_DIMS)
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: tensor %s: shape has %zu dimensions; at most %d are supported",
                         sf->path, name, json_array_size(shape), NNRT_MAX_DIMS);
    e->ndim = (int)json_array_size(shape);
    for (int i = 0; i < e->ndim; i++) {
        json_t *dim = json_array_get(shape, (size_t)i);
        if (!json_is_integer(dim) || json_integer_value(dim) < 0)
            return nnrt_fail(NNRT_ERR_FORMAT, "%s: tensor %s: shape entry %d is not a non-negative integer",
                             sf->path, name, i);
        e->shape[i] = (int64_t)json_integer_value(dim);
    }
    return NNRT_OK;
}

static int nnrt__st_parse_offsets(const nnrt__st_file *sf, nnrt__st_entry *e, json_t *offsets) {
    const nnrt__st_name shown = nnrt__st_show(e->name); /* keeps the text alive */
    const char *name = shown.text;
    json_t *begin = json_array_get(offsets, 0), *end = json_array_get(offsets, 1);
    if (!json_is_array(offsets) || json_array_size(offsets) != 2 || !json_is_integer(begin) ||
        !json_is_integer(end) || json_integer_value(begin) < 0 || json_integer_value(end) < 0)
        return nnrt_fail(NNRT_ERR_FORMAT,
                         "%s: tensor %s: \"data_offsets\" is missing or not a list of two non-negative integers",
                         sf->path, name);
    e->begin = (uint64_t)json_integer_value(begin);
    e->end = (uint64_t)json_integer_value(end);
    if (e->begin > e->end)
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: tensor %s: data_offsets [%llu, %llu] run backwards", sf->path,
                         name, (ull)e->begin, (ull)e->end);
    if (e->end > sf->data_size)
        return nnrt_fail(NNRT_ERR_FORMAT,
                         "%s: tensor %s: data_offsets [%llu, %llu] run past the end of the data (%llu bytes)",
                         sf->path, name, (ull)e->begin, (ull)e->end, (ull)sf->data_size);
    return NNRT_OK;
}

static int nnrt__st_check_size(const nnrt__st_file *sf, const nnrt__st_entry *e) {
    char shape[256];
    size_t bytes = 0;
    nnrt__st_shape_text(shape, sizeof shape, e->ndim, e->shape);
    if (!nnrt__st_nbytes(e->dtype, e->ndim, e->shape, &bytes))
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: tensor %s: shape %s is too large", sf->path,
                         nnrt__st_show(e->name).text, shape);
    if (bytes != e->end - e->begin)
        return nnrt_fail(NNRT_ERR_FORMAT,
                         "%s: tensor %s: data_offsets [%llu, %llu] hold %llu bytes, but shape %s of %s needs %zu",
                         sf->path, nnrt__st_show(e->name).text, (ull)e->begin, (ull)e->end,
                         (ull)(e->end - e->begin), shape, nnrt__st_dtype_names[e->dtype], bytes);
    return NNRT_OK;
}

static int nnrt__st_parse_entry(const nnrt__st_file *sf, nnrt__st_entry *e, json_t *value) {
    const nnrt__st_name shown = nnrt__st_show(e->name); /* keeps the text alive */
    const char *name = shown.text;
    if (!json_is_object(value))
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: tensor %s: entry is not a JSON object", sf->path, name);
    const char *key;
    json_t *field;
    json_object_foreach(value, key, field) {
        if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 && strcmp(key, "data_offsets") != 0)
            return nnrt_fail(NNRT_ERR_FORMAT, "%s: tensor %s: unexpected field \"%s\"; expected dtype, shape, data_offsets",
                             sf->path, name, nnrt__st_show(key).text);
    }
    int code = nnrt__st_parse_dtype(sf, e, json_object_get(value, "dtype"));
    if (code == NNRT_OK)
        code = nnrt__st_parse_shape(sf, e, json_object_get(value, "shape"));
    if (code == NNRT_OK)
        code = nnrt__st_parse_offsets(sf, e, json_object_get(value, "data_offsets"));
    if (code == NNRT_OK)
        code = nnrt__st_check_size(sf, e);
    return code;
}

static int nnrt__st_parse_entries(nnrt__st_file *sf) {
    size_t capacity = json_object_size(sf->root);
    sf->entries = calloc(capacity ? capacity : 1, sizeof *sf->entries);
    sf->sorted = calloc(capacity ? capacity : 1, sizeof *sf->sorted);
    if (sf->entries == NULL || sf->sorted == NULL)
        return nnrt_fail(NNRT_ERR_NOMEM, "%s: out of memory reading the header", sf->path);
    const char *key;
    json_t *value;
    json_object_foreach(sf->root, key, value) {
        int code;
        if (strcmp(key, NNRT__ST_METADATA) == 0) {
            code = nnrt__st_check_metadata(sf, value);
        } else {
            nnrt__st_entry *e = &sf->entries[sf->count++];
            e->name = key;
            code = nnrt__st_parse_entry(sf, e, value);
        }
        if (code != NNRT_OK)
            return code;
    }
    return NNRT_OK;
}

static int nnrt__st_by_offset(const void *a, const void *b) {
    const nnrt__st_entry *x = *(nnrt__st_entry *const *)a, *y = *(nnrt__st_entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

static int nnrt__st_by_name(const void *a, const void *b) {
    return strcmp((*(nnrt__st_entry *const *)a)->name, (*(nnrt__st_entry *const *)b)->name);
}

/* The tensors must tile the data buffer exactly: no overlap (one write would clobber another
 * tensor) and no hole (bytes nobody accounts for are where smuggled data would hide). */
static int nnrt__st_check_coverage(nnrt__st_file *sf) {
    for (size_t i = 0; i < sf->count; i++)
        sf->sorted[i] = &sf->entries[i];
    qsort(sf->sorted, sf->count, sizeof *sf->sorted, nnrt__st_by_offset);
    uint64_t covered = 0;
    for (size_t i = 0; i < sf->count; i++) {
        const nnrt__st_entry *e = sf->sorted[i], *prev = i ? sf->sorted[i - 1] : NULL;
        if (e->begin < covered)
            return nnrt_fail(NNRT_ERR_FORMAT, "%s: tensors %s and %s overlap (data_offsets [%llu, %llu] and [%llu, %llu])",
                             sf->path, nnrt__st_show(prev->name).text, nnrt__st_show(e->name).text,
                             (ull)prev->begin, (ull)prev->end, (ull)e->begin, (ull)e->end);
        if (e->begin > covered)
            return nnrt_fail(NNRT_ERR_FORMAT, "%s: data bytes [%llu, %llu) belong to no tensor (a hole before tensor %s)",
                             sf->path, (ull)covered, (ull)e->begin, nnrt__st_show(e->name).text);
        covered = e->end;
    }
    if (covered != sf->data_size)
        return nnrt_fail(NNRT_ERR_FORMAT, "%s: data bytes [%llu, %llu) at the end of the file belong to no tensor",
                         sf->path, (ull)covered, (ull)sf->data_size);
    return NNRT_OK;
}

static const nnrt__st_entry *nnrt__st_first_unmatched(const nnrt__st_file *sf) {
    for (size_t i = 0; i < sf->count; i++)
        if (!sf->entries[i].matched)
            return &sf->entries[i];
    return NULL;
}

static int nnrt__st_check_expected(const char *path, const nnrt_tensor *t) {
    size_t bytes;
    if (t->name == NULL || !nnrt__dtype_valid((int)t->dtype) || t->ndim < 0 || t->ndim > NNRT_MAX_DIMS ||
        !nnrt__st_nbytes(t->dtype, t->ndim, t->shape, &bytes) || (bytes > 0 && t->data == NULL))
        return nnrt_fail(NNRT_ERR_ARG, "%s: invalid tensor description for %s", path, t->name ? t->name : "(null)");
    return NNRT_OK;
}

/* Finds t's entry and marks it matched; *found stays NULL when the file has no such tensor. */
static int nnrt__st_match_one(nnrt__st_file *sf, const nnrt_tensor *t, nnrt__st_entry **found) {
    nnrt__st_entry key = {.name = t->name}, *key_ptr = &key;
    nnrt__st_entry **hit = bsearch(&key_ptr, sf->sorted, sf->count, sizeof *sf->sorted, nnrt__st_by_name);
    *found = NULL;
    if (hit == NULL)
        return NNRT_OK;
    if ((*hit)->matched)
        return nnrt_fail(NNRT_ERR_ARG, "%s: tensor %s is requested twice", sf->path, t->name);
    (*hit)->matched = 1;
    *found = *hit;
    return NNRT_OK;
}

static int nnrt__st_compare(const nnrt__st_file *sf, const nnrt_tensor *t, const nnrt__st_entry *e) {
    if (e->dtype != t->dtype)
        return nnrt_fail(NNRT_ERR_DTYPE, "%s: tensor %s: expected dtype %s, found %s", sf->path, t->name,
                         nnrt__st_dtype_names[t->dtype], nnrt__st_dtype_names[e->dtype]);
    int same = e->ndim == t->ndim;
    for (int i = 0; same && i < t->ndim; i++)
        same = e->shape[i] == t->shape[i];
    if (!same) {
        char want[256], got[256];
        return nnrt_fail(NNRT_ERR_SHAPE, "%s: tensor %s: expected shape %s, found %s", sf->path, t->name,
                         nnrt__st_shape_text(want, sizeof want, t->ndim, t->shape),
                         nnrt__st_shape_text(got, sizeof got, e->ndim, e->shape));
    }
    return NNRT_OK;
}

/* Pairs each requested tensor with its entry (matches[i]), checking name, dtype and shape. */
static int nnrt__st_match(nnrt__st_file *sf, const nnrt_tensor *tensors, size_t count, nnrt__st_entry **matches) {
    for (size_t i = 0; i < sf->count; i++)
        sf->sorted[i] = &sf->entries[i];
    qsort(sf->sorted, sf->count, sizeof *sf->sorted, nnrt__st_by_name);
    /* Match every name first, so that a missing tensor's hint names only a truly unexpected one;
     * then report the first requested tensor with a problem. */
    for (size_t i = 0; i < count; i++) {
        int code = nnrt__st_check_expected(sf->path, &tensors[i]);
        if (code == NNRT_OK)
            code = nnrt__st_match_one(sf, &tensors[i], &matches[i]);
        if (code != NNRT_OK)
            return code;
    }
    const nnrt__st_entry *extra = nnrt__st_first_unmatched(sf);
    for (size_t i = 0; i < count; i++) {
        if (matches[i] == NULL && extra == NULL)
            return nnrt_fail(NNRT_ERR_NAME, "%s: missing tensor %s", sf->path, tensors[i].name);
        if (matches[i] == NULL) /* a misspelt name shows up as one missing and one unexpected tensor */
            return nnrt_fail(NNRT_ERR_NAME, "%s: missing tensor %s (the file has unexpected tensor %s)", sf->path,
                             tensors[i].name, nnrt__st_show(extra->name).text);
        int code = nnrt__st_compare(sf, &tensors[i], matches[i]);
        if (code != NNRT_OK)
            return code;
    }
    if (extra != NULL)
        return nnrt_fail(NNRT_ERR_NAME, "%s: unexpected tensor %s", sf->path, nnrt__st_show(extra->name).text);
    return NNRT_OK;
}

static int nnrt__st_copy_data(nnrt__st_file *sf, const nnrt_tensor *tensors, size_t count,
                              nnrt__st_entry *const *matches) {
    for (size_t i = 0; i < count; i++) {
        const nnrt__st_entry *e = matches[i];
        if (e->end == e->begin)
            continue;
        if (fseeko(sf->fp, (off_t)(8 + sf->header_len + e->begin), SEEK_SET) != 0)
            return nnrt_fail(NNRT_ERR_IO, "%s: tensor %s: cannot seek to its data", sf->path, tensors[i].name);
        char what[200];
        snprintf(what, sizeof what, "tensor %s", tensors[i].name);
        int code = nnrt__read_exact(sf->fp, tensors[i].data, (size_t)(e->end - e->begin), sf->path, what);
        if (code != NNRT_OK)
            return code;
    }
    return NNRT_OK;
}

int nnrt_safetensors_read(const char *path, const nnrt_tensor *tensors, size_t count) {
    if (path == NULL || (count > 0 && tensors == NULL))
        return nnrt_fail(NNRT_ERR_ARG, "nnrt_safetensors_read: path or tensors is NULL");
    nnrt__st_file sf = {.path = path};
    nnrt__st_entry **matches = calloc(count ? count : 1, sizeof *matches);
    if (matches == NULL)
        return nnrt_fail(NNRT_ERR_NOMEM, "%s: out of memory", path);
    int code = nnrt__open_regular(path, &sf.fp, &sf.file_size, NULL);
    if (code == NNRT_OK)
        code = nnrt__st_read_header(&sf);
    if (code == NNRT_OK)
        code = nnrt__st_parse_entries(&sf);
    if (code == NNRT_OK)
        code = nnrt__st_check_coverage(&sf);
    if (code == NNRT_OK)
        code = nnrt__st_match(&sf, tensors, count, matches);
    if (code == NNRT_OK)
        code = nnrt__st_copy_data(&sf, tensors, count, matches);
    if (sf.fp != NULL)
        fclose(sf.fp);
    json_decref(sf.root);
    free(sf.entries);
    free(sf.sorted);
    free(matches);
    return code;
}
