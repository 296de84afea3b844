/* nnrt_model.c — default init, load and save of a model's flat parameter array, driven by the
 * descriptor's tensor table. */
#include "nnrt_internal.h"

#include <stdlib.h>

static int nnrt__param_desc_ok(const nnrt_param_desc *d, size_t num_params) {
    if (d->name == NULL || d->ndim < 1 || d->ndim > 2)
        return 0;
    size_t count = 1;
    for (int k = 0; k < d->ndim; k++)
        if (d->shape[k] < 0 || !nnrt__mul_size(count, (size_t)d->shape[k], &count))
            return 0;
    return count == d->count && d->offset <= num_params && d->count <= num_params - d->offset;
}

/* A descriptor comes from generated code, but a hand-written or stale one must fail cleanly
 * rather than send a reader or writer outside the parameter array. */
int nnrt__model_check(const nnrt_model *m, const void *params) {
    if (m == NULL || params == NULL)
        return nnrt_fail(NNRT_ERR_ARG, "model or parameters are NULL");
    const char *name = m->name ? m->name : "(unnamed)";
    if (m->abi_version != NNRT_ABI_VERSION)
        return nnrt_fail(NNRT_ERR_ARG, "model %s was generated for runtime ABI %d, this runtime is ABI %d",
                         name, m->abi_version, NNRT_ABI_VERSION);
    if (m->dtype != NNRT_F32 && m->dtype != NNRT_F64)
        return nnrt_fail(NNRT_ERR_ARG, "model %s: dtype must be float32 or float64", name);
    if (m->num_tensors < 0 || (m->num_tensors > 0 && m->tensors == NULL))
        return nnrt_fail(NNRT_ERR_ARG, "model %s: bad tensor table", name);
    for (int i = 0; i < m->num_tensors; i++)
        if (!nnrt__param_desc_ok(&m->tensors[i], m->num_params))
            return nnrt_fail(NNRT_ERR_ARG, "model %s: descriptor entry %d (%s) is inconsistent", name, i,
                             m->tensors[i].name ? m->tensors[i].name : "unnamed");
    return NNRT_OK;
}

void nnrt_model_init(const nnrt_model *m, void *params, uint64_t seed) {
    if (nnrt__model_check(m, params) != NNRT_OK)
        return; /* void by contract; the message stays in nnrt_last_error() */
    nnrt_rng rng;
    nnrt_rng_seed(&rng, seed);
    for (int i = 0; i < m->num_tensors; i++) {
        const nnrt_param_desc *d = &m->tensors[i];
        if (m->dtype == NNRT_F32)
            nnrt_fill_uniform_f32((float *)params + d->offset, d->count, -d->init_bound, d->init_bound, &rng);
        else
            nnrt_fill_uniform_f64((double *)params + d->offset, d->count, -d->init_bound, d->init_bound, &rng);
    }
}

/* The descriptor's tensors as nnrt_tensor views into params; release with free(). */
static int nnrt__model_views(const nnrt_model *m, const void *params, nnrt_tensor **views) {
    int code = nnrt__model_check(m, params);
    if (code != NNRT_OK)
        return code;
    *views = calloc(m->num_tensors > 0 ? (size_t)m->num_tensors : 1, sizeof **views);
    if (*views == NULL)
        return nnrt_fail(NNRT_ERR_NOMEM, "out of memory");
    const char *base = params;
    for (int i = 0; i < m->num_tensors; i++) {
        const nnrt_param_desc *d = &m->tensors[i];
        nnrt_tensor *t = &(*views)[i];
        t->name = d->name;
        t->dtype = m->dtype;
        t->ndim = d->ndim;
        t->shape[0] = d->shape[0];
        t->shape[1] = d->ndim > 1 ? d->shape[1] : 0;
        /* nnrt_tensor serves reads and writes alike, hence the non-const pointer; save only reads. */
        t->data = (void *)(base + d->offset * nnrt_dtype_size(m->dtype));
    }
    return NNRT_OK;
}

int nnrt_model_load(const nnrt_model *m, void *params, const char *path) {
    nnrt_tensor *views = NULL;
    int code = nnrt__model_views(m, params, &views);
    if (code == NNRT_OK)
        code = nnrt_safetensors_read(path, views, (size_t)m->num_tensors);
    free(views);
    return code;
}

int nnrt_model_save(const nnrt_model *m, const void *params, const char *path) {
    nnrt_tensor *views = NULL;
    int code = nnrt__model_views(m, params, &views);
    if (code == NNRT_OK)
        code = nnrt_safetensors_write(path, views, (size_t)m->num_tensors);
    free(views);
    return code;
}
