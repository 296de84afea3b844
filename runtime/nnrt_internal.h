/* nnrt_internal.h — helpers shared by the runtime's own .c files: not part of the API. */
#ifndef NNRT_INTERNAL_H
#define NNRT_INTERNAL_H

#include "nnrt.h"

int nnrt__dtype_valid(int dtype);                    /* 1 for NNRT_F32..NNRT_I64 */
int nnrt__mul_size(size_t a, size_t b, size_t *out); /* 1 and *out = a * b, or 0 on overflow */
/* Copies len bytes of untrusted text into buf for a message: bytes outside printable ASCII
 * become '?', and text longer than size - 4 is cut and ends in "...". Returns buf. */
const char *nnrt__printable(const char *text, size_t len, char *buf, size_t size);
/* Opens a regular file for reading and reports its size and (stored, when not NULL) the bytes it
 * occupies on disk, less than its size for a sparse file. Anything else (a FIFO, a device) is
 * refused without blocking. On failure *fp is NULL. */
int nnrt__open_regular(const char *path, FILE **fp, uint64_t *size, uint64_t *stored);
/* What the first n bytes of a file of file_size bytes say it is, as a message suffix
 * (": it is a .npy file", ": it is a safetensors file", ": it looks like text"), or "". */
const char *nnrt__looks_like(const unsigned char *head, size_t n, uint64_t file_size);
/* Reads exactly bytes in bounded chunks; a short read is NNRT_ERR_FORMAT naming what was read. */
int nnrt__read_exact(FILE *fp, void *dst, size_t bytes, const char *path, const char *what);

/* Checks that a model descriptor is usable (ABI, dtype, every tensor inside the flat array): a
 * hand-written or stale descriptor must fail cleanly, never send I/O outside the array. */
int nnrt__model_check(const nnrt_model *m, const void *params);

/* Tests set this to 1 to make nnrt_atomic_open use a named temporary even where O_TMPFILE works. */
extern int nnrt__atomic_no_tmpfile;

#endif /* NNRT_INTERNAL_H */
