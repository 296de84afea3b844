/* embedded.h — the Lua modules and templates compiled into rnnc (see embed.c). */
#ifndef RNNC_EMBEDDED_H
#define RNNC_EMBEDDED_H
#include <stddef.h>

typedef struct rnnc_embedded_file {
    const char *path; /* as in the source tree: "generator/spec.lua", "templates/model.c" */
    const char *data;
    size_t size;
} rnnc_embedded_file;

/* Terminated by an entry whose path is NULL. */
extern const rnnc_embedded_file rnnc_embedded_files[];

#endif
