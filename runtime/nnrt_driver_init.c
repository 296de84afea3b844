/* nnrt_driver_init.c — the driver's init command: default weights. */
#include "nnrt_driver.h"

#include <stdint.h>

enum { INIT_SEED, INIT_OUT };
static const opt_spec init_opts[] = {
    [INIT_SEED] = {"--seed", "N", 0, "unsigned 64-bit seed of the default init (default 0)"},
    [INIT_OUT] = {"-o", "W.safetensors", 1, "weights file to write"},
};

/* init [--seed N] -o W.safetensors */
static int cmd_init(const nnrt_model *m, const char *const *vals) {
    uint64_t seed = 0;
    const file_use files[] = {{"-o", vals[INIT_OUT], 1}};
    if (vals[INIT_SEED] && parse_u64("--seed", vals[INIT_SEED], &seed) != 0) return EXIT_USAGE;
    int status = check_files("init", files, COUNT(files), NULL, NULL);
    if (status != 0) return status;
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

_Static_assert(COUNT(init_opts) <= MAX_OPTIONS, "raise MAX_OPTIONS");

const command cmd_init_command = {
    "init",
    "write PyTorch-style default weights",
    init_opts, COUNT(init_opts), cmd_init, NULL,
};
