/* nnrt_optim.c — SGD, Adam and AdamW over the flat parameter array, computed exactly as PyTorch's
 * single-tensor implementations (torch/optim/sgd.py, adam.py, adamw.py, foreach=False) compute
 * them; the gradient's global norm and clipping; checkpoints of parameters plus optimizer state.
 *
 * How PyTorch evaluates an update, element by element (torch 1.13 on x86-64, whose CPU kernels
 * run with AVX2 or AVX-512 and fuse a multiply and an add wherever the C++ source writes one;
 * measured bit for bit by tests/torch_optim.py):
 *   x.add(y, alpha=a)         fma(a, y, x)          a: the Python float rounded to the dtype
 *   x.mul(s)                  x * s
 *   x.addcmul(y, z, value=v)  fma(v * y, z, x)
 *   x.addcdiv(y, z, value=v)  x + (v * y) / z       (a division cannot fuse)
 *   x.sqrt() / s, x.add(s)    sqrt(x) / s, x + s
 * Scalars (lr, 1 - beta1, the bias corrections, ...) are computed in double as Python computes
 * them, then rounded once to the parameters' dtype. This file is compiled in ISO C mode, where
 * GCC and Clang do not contract a * b + c on their own, so the fma() calls below are the only
 * fused operations, on every machine. */
#include "nnrt_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const nnrt__optim_names[] = {"SGD", "Adam", "AdamW"}; /* by enum nnrt_optimizer */

static int nnrt__kind_valid(int kind) { return kind >= NNRT_OPT_SGD && kind <= NNRT_OPT_ADAMW; }

/* State tensors per parameter: SGD keeps a momentum buffer only when momentum != 0. */
static int nnrt__optim_states(const nnrt_optim_config *c) {
    return c->kind == NNRT_OPT_SGD ? c->momentum != 0 : 2;
}

/* ---- Configuration ------------------------------------------------------------------------ */

nnrt_optim_config nnrt_optim_defaults(int kind) {
    nnrt_optim_config c = {.kind = kind, .lr = 1e-3};
    if (kind == NNRT_OPT_ADAM || kind == NNRT_OPT_ADAMW) {
        c.beta1 = 0.9;
        c.beta2 = 0.999;
        c.eps = 1e-8;
        c.weight_decay = kind == NNRT_OPT_ADAMW ? 1e-2 : 0.0;
    }
    return c;
}

#define NNRT__CFG "optimizer config: "

/* The same checks as torch's constructors, plus finiteness; each message names the field. */
static int nnrt__config_check(const nnrt_optim_config *c) {
    if (!nnrt__kind_valid(c->kind))
        return nnrt_fail(NNRT_ERR_ARG,
                         NNRT__CFG "kind %d is not an optimizer; expected NNRT_OPT_SGD, NNRT_OPT_ADAM or NNRT_OPT_ADAMW",
                         c->kind);
    const char *kind = nnrt__optim_names[c->kind];
    if (!(isfinite(c->lr) && c->lr >= 0))
        return nnrt_fail(NNRT_ERR_ARG, NNRT__CFG "%s: lr must be a finite number >= 0, got %.10g", kind, c->lr);
    if (!(isfinite(c->weight_decay) && c->weight_decay >= 0))
        return nnrt_fail(NNRT_ERR_ARG, NNRT__CFG "%s: weight_decay must be a finite number >= 0, got %.10g", kind,
                         c->weight_decay);
    if (c->kind == NNRT_OPT_SGD) {
        if (!(isfinite(c->momentum) && c->momentum >= 0))
            return nnrt_fail(NNRT_ERR_ARG, NNRT__CFG "SGD: momentum must be a finite number >= 0, got %.10g",
                             c->momentum);
        if (!isfinite(c->dampening))
            return nnrt_fail(NNRT_ERR_ARG, NNRT__CFG "SGD: dampening must be finite, got %.10g", c->dampening);
        if (c->nesterov != 0 && c->nesterov != 1)
            return nnrt_fail(NNRT_ERR_ARG, NNRT__CFG "SGD: nesterov must be 0 or 1, got %d", c->nesterov);
        if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
            return nnrt_fail(NNRT_ERR_ARG,
                             NNRT__CFG "SGD: nesterov needs momentum > 0 and dampening 0, got momentum %.10g and "
                                       "dampening %.10g",
                             c->momentum, c->dampening);
        return NNRT_OK;
    }
    if (!(c->beta1 >= 0 && c->beta1 < 1))
        return nnrt_fail(NNRT_ERR_ARG, NNRT__CFG "%s: beta1 must be in [0, 1), got %.10g", kind, c->beta1);
    if (!(c->beta2 >= 0 && c->beta2 < 1))
        return nnrt_fail(NNRT_ERR_ARG, NNRT__CFG "%s: beta2 must be in [0, 1), got %.10g", kind, c->beta2);
    if (!(isfinite(c->eps) && c->eps >= 0))
        return nnrt_fail(NNRT_ERR_ARG, NNRT__CFG "%s: eps must be a finite number >= 0, got %.10g", kind, c->eps);
    return NNRT_OK;
}

int nnrt_optim_init(nnrt_optim *o, const nnrt_optim_config *config, nnrt_dtype dtype, size_t count) {
    if (o == NULL || config == NULL)
        return nnrt_fail(NNRT_ERR_ARG, "nnrt_optim_init: optimizer or config is NULL");
    memset(o, 0, sizeof *o);
    int code = nnrt__config_check(config);
    if (code != NNRT_OK)
        return code;
    if (dtype != NNRT_F32 && dtype != NNRT_F64)
        return nnrt_fail(NNRT_ERR_ARG, "nnrt_optim_init: dtype must be float32 or float64, got %s",
                         nnrt__dtype_valid((int)dtype) ? nnrt_dtype_name(dtype) : "an invalid dtype");
    size_t bytes;
    if (!nnrt__mul_size(count, nnrt_dtype_size(dtype), &bytes))
        return nnrt_fail(NNRT_ERR_NOMEM, "nnrt_optim_init: state for %zu parameters does not fit in memory", count);
    nnrt_optim fresh = {.config = *config, .dtype = dtype, .count = count};
    int states = nnrt__optim_states(config);
    if (states >= 1 && (fresh.state1 = nnrt_alloc(bytes)) == NULL)
        return NNRT_ERR_NOMEM; /* nnrt_alloc has set the message */
    if (states >= 2 && (fresh.state2 = nnrt_alloc(bytes)) == NULL) {
        nnrt_free(fresh.state1);
        return NNRT_ERR_NOMEM;
    }
    *o = fresh;
    return NNRT_OK;
}

void nnrt_optim_free(nnrt_optim *o) {
    if (o == NULL)
        return;
    nnrt_free(o->state1);
    nnrt_free(o->state2);
    memset(o, 0, sizeof *o);
}

/* An optimizer that nnrt_optim_init set up and whose config still fits its state. */
static int nnrt__optim_check(const nnrt_optim *o, const char *who) {
    if (o == NULL)
        return nnrt_fail(NNRT_ERR_ARG, "%s: optimizer is NULL", who);
    if ((o->dtype != NNRT_F32 && o->dtype != NNRT_F64) || !nnrt__kind_valid(o->config.kind))
        return nnrt_fail(NNRT_ERR_ARG, "%s: optimizer is not initialised (call nnrt_optim_init)", who);
    int states = nnrt__optim_states(&o->config);
    if ((states >= 1 && o->state1 == NULL) || (states >= 2 && o->state2 == NULL))
        return nnrt_fail(NNRT_ERR_ARG,
                         "%s: %s optimizer has no state buffers for its config (momentum turned on after "
                         "nnrt_optim_init?)",
                         who, nnrt__optim_names[o->config.kind]);
    if (o->step < 0)
        return nnrt_fail(NNRT_ERR_ARG, "%s: optimizer step count is negative (%lld)", who, (long long)o->step);
    return NNRT_OK;
}

/* ---- The update loops --------------------------------------------------------------------------
 * Everything an update needs, in double, as Python computes it; the loops round each to the
 * element type once. */
typedef struct nnrt__coef {
    int momentum_on;     /* SGD: momentum != 0 */
    int first;           /* SGD: no momentum buffer yet (torch: buf is None); it becomes a clone of d_p */
    int nesterov;        /* SGD */
    int weight_decay_on; /* SGD, Adam: weight_decay != 0 (torch skips the add otherwise) */
    int decoupled;       /* AdamW */
    double weight_decay; /* SGD, Adam */
    double momentum, one_minus_dampening, neg_lr;          /* SGD */
    double decay;                                          /* AdamW: 1 - lr * weight_decay */
    double beta1, one_minus_beta1, beta2, one_minus_beta2; /* Adam(W) */
    double bias_correction2_sqrt, eps, neg_step_size;      /* Adam(W) */
} nnrt__coef;

/* Written once, instantiated for float and double: T is the element type, FMA and SQRT its
 * fused multiply-add and square root. Each line names the torch statement it reproduces. */
#define NNRT__DEFINE_LOOPS(T, SUFFIX, FMA, SQRT)                                                        \
    static void nnrt__sgd_##SUFFIX(const nnrt__coef *k, size_t n, T *restrict param,                   \
                                   const T *restrict grad, T *restrict buf) {                          \
        const T weight_decay = (T)k->weight_decay, momentum = (T)k->momentum;                          \
        const T one_minus_dampening = (T)k->one_minus_dampening, neg_lr = (T)k->neg_lr;                \
        for (size_t i = 0; i < n; i++) {                                                               \
            T d_p = grad[i];                                                                           \
            if (k->weight_decay_on)                                                                    \
                d_p = FMA(weight_decay, param[i], d_p); /* d_p = d_p.add(param, alpha=weight_decay) */ \
            if (k->momentum_on) {                                                                      \
                /* buf = torch.clone(d_p), then buf.mul_(momentum).add_(d_p, alpha=1 - dampening) */  \
                buf[i] = k->first ? d_p : FMA(one_minus_dampening, d_p, buf[i] * momentum);            \
                /* d_p = d_p.add(buf, alpha=momentum) if nesterov else buf */                          \
                d_p = k->nesterov ? FMA(momentum, buf[i], d_p) : buf[i];                               \
            }                                                                                          \
            param[i] = FMA(neg_lr, d_p, param[i]); /* param.add_(d_p, alpha=-lr) */                    \
        }                                                                                              \
    }                                                                                                  \
                                                                                                       \
    static void nnrt__adam_##SUFFIX(const nnrt__coef *k, size_t n, T *restrict param,                  \
                                    const T *restrict grad, T *restrict exp_avg,                       \
                                    T *restrict exp_avg_sq) {                                          \
        const T weight_decay = (T)k->weight_decay, decay = (T)k->decay;                                \
        const T beta1 = (T)k->beta1, one_minus_beta1 = (T)k->one_minus_beta1;                          \
        const T beta2 = (T)k->beta2, one_minus_beta2 = (T)k->one_minus_beta2;                          \
        const T bias_correction2_sqrt = (T)k->bias_correction2_sqrt, eps = (T)k->eps;                  \
        const T neg_step_size = (T)k->neg_step_size;                                                   \
        for (size_t i = 0; i < n; i++) {                                                               \
            T g = grad[i];                                                                             \
            if (k->decoupled)                                                                          \
                param[i] = param[i] * decay; /* AdamW: param.mul_(1 - lr * weight_decay) */            \
            else if (k->weight_decay_on)                                                               \
                g = FMA(weight_decay, param[i], g); /* grad = grad.add(param, alpha=weight_decay) */   \
            /* exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1) */                                      \
            exp_avg[i] = FMA(one_minus_beta1, g, exp_avg[i] * beta1);                                  \
            /* exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2) */                         \
            exp_avg_sq[i] = FMA(one_minus_beta2 * g, g, exp_avg_sq[i] * beta2);                        \
            /* denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps) */                        \
            const T denom = SQRT(exp_avg_sq[i]) / bias_correction2_sqrt + eps;                         \
            /* param.addcdiv_(exp_avg, denom, value=-step_size) */                                     \
            param[i] = param[i] + neg_step_size * exp_avg[i] / denom;                                  \
        }                                                                                              \
    }                                                                                                  \
                                                                                                       \
    static double nnrt__sum_squares_##SUFFIX(const T *grad, size_t n) {                                \
        double sum = 0;                                                                                \
        for (size_t i = 0; i < n; i++)                                                                 \
            sum += (double)grad[i] * (double)grad[i];                                                  \
        return sum;                                                                                    \
    }                                                                                                  \
                                                                                                       \
    static void nnrt__scale_##SUFFIX(T *grad, size_t n, double factor) {                               \
        const T f = (T)factor;                                                                         \
        for (size_t i = 0; i < n; i++)                                                                 \
            grad[i] = grad[i] * f; /* g.mul_(clip_coef_clamped) */                                     \
    }

NNRT__DEFINE_LOOPS(float, f32, fmaf, sqrtf)
NNRT__DEFINE_LOOPS(double, f64, fma, sqrt)

void nnrt_optim_step(nnrt_optim *o, void *params, const void *grads) {
    if (nnrt__optim_check(o, "nnrt_optim_step") != NNRT_OK)
        return; /* void by contract; the message stays in nnrt_last_error() */
    if (o->count > 0 && (params == NULL || grads == NULL)) {
        nnrt_fail(NNRT_ERR_ARG, "nnrt_optim_step: params or grads is NULL");
        return;
    }
    const nnrt_optim_config *c = &o->config;
    nnrt__coef k = {.first = o->step == 0, .weight_decay = c->weight_decay};
    o->step++; /* torch: step_t += 1 before the bias corrections */
    if (c->kind == NNRT_OPT_SGD) {
        k.momentum_on = c->momentum != 0;
        k.nesterov = c->nesterov;
        k.weight_decay_on = c->weight_decay != 0;
        k.momentum = c->momentum;
        k.one_minus_dampening = 1 - c->dampening;
        k.neg_lr = -c->lr;
        if (o->dtype == NNRT_F32)
            nnrt__sgd_f32(&k, o->count, params, grads, o->state1);
        else
            nnrt__sgd_f64(&k, o->count, params, grads, o->state1);
        return;
    }
    k.decoupled = c->kind == NNRT_OPT_ADAMW;
    k.weight_decay_on = !k.decoupled && c->weight_decay != 0;
    k.decay = 1 - c->lr * c->weight_decay;
    k.beta1 = c->beta1;
    k.one_minus_beta1 = 1 - c->beta1;
    k.beta2 = c->beta2;
    k.one_minus_beta2 = 1 - c->beta2;
    k.eps = c->eps;
    /* step = step_t.item(); bias_correction1 = 1 - beta1 ** step; ...; Python's ** is C's pow. */
    const double step = (double)o->step;
    const double bias_correction1 = 1 - pow(c->beta1, step);
    const double bias_correction2 = 1 - pow(c->beta2, step);
    k.neg_step_size = -(c->lr / bias_correction1);
    k.bias_correction2_sqrt = sqrt(bias_correction2);
    if (o->dtype == NNRT_F32)
        nnrt__adam_f32(&k, o->count, params, grads, o->state1, o->state2);
    else
        nnrt__adam_f64(&k, o->count, params, grads, o->state1, o->state2);
}

/* ---- Gradient norm and clipping ----------------------------------------------------------- */

static int nnrt__grad_check(nnrt_dtype dtype, const void *grads, size_t count, const char *who) {
    if (dtype != NNRT_F32 && dtype != NNRT_F64)
        return nnrt_fail(NNRT_ERR_ARG, "%s: dtype must be float32 or float64", who);
    if (count > 0 && grads == NULL)
        return nnrt_fail(NNRT_ERR_ARG, "%s: grads is NULL", who);
    return NNRT_OK;
}

double nnrt_grad_norm(nnrt_dtype dtype, const void *grads, size_t count) {
    if (nnrt__grad_check(dtype, grads, count, "nnrt_grad_norm") != NNRT_OK)
        return NAN;
    return sqrt(dtype == NNRT_F32 ? nnrt__sum_squares_f32(grads, count) : nnrt__sum_squares_f64(grads, count));
}

double nnrt_clip_grad_norm(nnrt_dtype dtype, void *grads, size_t count, double max_norm) {
    if (nnrt__grad_check(dtype, grads, count, "nnrt_clip_grad_norm") != NNRT_OK)
        return NAN;
    if (!(max_norm >= 0)) {
        nnrt_fail(NNRT_ERR_ARG, "nnrt_clip_grad_norm: max_norm must be >= 0, got %.10g", max_norm);
        return NAN;
    }
    const double norm = nnrt_grad_norm(dtype, grads, count);
    /* clip_coef = max_norm / (total_norm + 1e-6); grads are scaled when it is below 1. A
     * non-finite norm is the caller's to handle: the gradients stay as they are. */
    const double coef = max_norm / (norm + 1e-6);
    if (isfinite(norm) && coef < 1) {
        if (dtype == NNRT_F32)
            nnrt__scale_f32(grads, count, coef);
        else
            nnrt__scale_f64(grads, count, coef);
    }
    return norm;
}

/* ---- Checkpoints ---------------------------------------------------------------------------- */

/* Arguments of save and load: a valid model and optimizer that agree with each other. */
static int nnrt__ckpt_args(const char *path, const nnrt_model *m, const void *params, const nnrt_optim *o,
                           const char *who) {
    if (path == NULL || m == NULL || params == NULL)
        return nnrt_fail(NNRT_ERR_ARG, "%s: path, model or params is NULL", who);
    int code = nnrt__optim_check(o, path);
    if (code == NNRT_OK)
        code = nnrt__model_check(m, params);
    if (code != NNRT_OK)
        return code;
    const char *name = m->name ? m->name : "(unnamed)";
    if (o->dtype != m->dtype)
        return nnrt_fail(NNRT_ERR_ARG, "%s: model %s is %s but the optimizer is %s", path, name,
                         nnrt_dtype_name(m->dtype), nnrt_dtype_name(o->dtype));
    if (o->count != m->num_params)
        return nnrt_fail(NNRT_ERR_ARG, "%s: model %s has %zu parameters but the optimizer was set up for %zu", path,
                         name, m->num_params, o->count);
    return NNRT_OK;
}

/* A checkpoint's tensors as views: the parameters, then "optim.state1.<name>" and
 * "optim.state2.<name>" (states = 0, 1 or 2 of them), then "optim.step" and "optim.kind" pointing
 * at step and kind. states = -1 describes a plain weights file: the parameters only. */
typedef struct nnrt__ckpt {
    nnrt_tensor *tensors;
    size_t count;
    char *names; /* storage of the state tensors' names */
    int64_t step;
    int32_t kind;
} nnrt__ckpt;

static void nnrt__ckpt_release(nnrt__ckpt *ck) {
    free(ck->tensors);
    free(ck->names);
    ck->tensors = NULL;
    ck->names = NULL;
}

static int nnrt__ckpt_views(const nnrt_model *m, int states, void *params, void *state1, void *state2,
                            nnrt__ckpt *ck) {
    static const char *const prefixes[] = {"optim.state1.", "optim.state2."};
    const size_t n = (size_t)m->num_tensors, elt = nnrt_dtype_size(m->dtype);
    const int layers = states < 0 ? 0 : states;
    size_t name_bytes = 1;
    for (size_t i = 0; i < n; i++)
        name_bytes += (size_t)layers * (strlen(prefixes[0]) + strlen(m->tensors[i].name) + 1);
    ck->count = n * (size_t)(1 + layers) + (states < 0 ? 0 : 2);
    ck->tensors = calloc(ck->count + 1, sizeof *ck->tensors);
    ck->names = malloc(name_bytes);
    if (ck->tensors == NULL || ck->names == NULL) {
        nnrt__ckpt_release(ck);
        return nnrt_fail(NNRT_ERR_NOMEM, "out of memory");
    }
    char *const bases[] = {params, state1, state2};
    char *name = ck->names;
    nnrt_tensor *t = ck->tensors;
    for (int layer = 0; layer <= layers; layer++) {
        for (size_t i = 0; i < n; i++, t++) {
            const nnrt_param_desc *d = &m->tensors[i];
            t->name = d->name;
            if (layer > 0) {
                size_t len = (size_t)sprintf(name, "%s%s", prefixes[layer - 1], d->name);
                t->name = name;
                name += len + 1;
            }
            t->dtype = m->dtype;
            t->ndim = d->ndim;
            t->shape[0] = d->shape[0];
            t->shape[1] = d->ndim > 1 ? d->shape[1] : 0;
            t->data = bases[layer] + d->offset * elt;
        }
    }
    if (states >= 0) {
        *t++ = (nnrt_tensor){.name = "optim.step", .dtype = NNRT_I64, .ndim = 1, .shape = {1}, .data = &ck->step};
        *t++ = (nnrt_tensor){.name = "optim.kind", .dtype = NNRT_I32, .ndim = 1, .shape = {1}, .data = &ck->kind};
    }
    return NNRT_OK;
}

int nnrt_checkpoint_save(const char *path, const nnrt_model *m, const void *params, const nnrt_optim *o) {
    int code = nnrt__ckpt_args(path, m, params, o, "nnrt_checkpoint_save");
    if (code != NNRT_OK)
        return code;
    nnrt__ckpt ck = {.step = o->step, .kind = (int32_t)o->config.kind};
    /* The views serve reads and writes alike, hence the casts; saving only reads through them. */
    code = nnrt__ckpt_views(m, nnrt__optim_states(&o->config), (void *)params, o->state1, o->state2, &ck);
    if (code == NNRT_OK)
        code = nnrt_safetensors_write(path, ck.tensors, ck.count);
    nnrt__ckpt_release(&ck);
    return code;
}

/* Reads the checkpoint as laid out for states (see nnrt__ckpt_views) into scratch, which holds
 * the parameters and then each state array, bytes apart. */
static int nnrt__ckpt_read(const char *path, const nnrt_model *m, int states, char *scratch, size_t bytes,
                           nnrt__ckpt *ck) {
    int code = nnrt__ckpt_views(m, states, scratch, scratch + bytes, scratch + 2 * bytes, ck);
    if (code == NNRT_OK)
        code = nnrt_safetensors_read(path, ck->tensors, ck->count);
    nnrt__ckpt_release(ck);
    return code;
}

/* What a file of the given kind and layout holds, for messages. */
static const char *nnrt__ckpt_what(int32_t kind, int states) {
    if (kind == NNRT_OPT_SGD && states <= 1)
        return states == 1 ? "SGD with momentum" : "SGD without momentum";
    if ((kind == NNRT_OPT_ADAM || kind == NNRT_OPT_ADAMW) && states == 2)
        return nnrt__optim_names[kind];
    return NULL;
}

/* The load failed on a missing or unexpected tensor: tell "this is another optimizer's
 * checkpoint" or "this is a weights file" apart from "this is another model", by reading the
 * file in each other layout. Keeps the original message when none fits. */
static int nnrt__ckpt_diagnose(const char *path, const nnrt_model *m, const nnrt_optim *o, int states,
                               size_t bytes, int code) {
    char original[1024];
    snprintf(original, sizeof original, "%s", nnrt_last_error());
    size_t total;
    char *scratch = nnrt__mul_size(bytes, 3, &total) ? nnrt_alloc(total) : NULL;
    if (scratch == NULL)
        return nnrt_fail(code, "%s", original);
    const char *mine = nnrt__ckpt_what((int32_t)o->config.kind, states);
    for (int other = -1; other <= 2; other++) {
        nnrt__ckpt ck = {0};
        if (other == states || nnrt__ckpt_read(path, m, other, scratch, bytes, &ck) != NNRT_OK)
            continue;
        nnrt_free(scratch);
        if (other < 0)
            return nnrt_fail(NNRT_ERR_ARG, "%s: holds the parameters of model %s but no optimizer state: a weights "
                                           "file, not a checkpoint",
                             path, m->name ? m->name : "(unnamed)");
        const char *theirs = nnrt__ckpt_what(ck.kind, other);
        if (theirs == NULL)
            return nnrt_fail(NNRT_ERR_FORMAT, "%s: optim.kind %d does not fit %d state tensors per parameter", path,
                             (int)ck.kind, other);
        return nnrt_fail(NNRT_ERR_ARG, "%s: the checkpoint holds the state of %s, but this optimizer is %s", path,
                         theirs, mine);
    }
    nnrt_free(scratch);
    return nnrt_fail(code, "%s", original);
}

/* Copies the descriptor's tensors from src to dst, both flat arrays of the model; elements that no
 * tensor covers stay as they are. */
static void nnrt__ckpt_copy(const nnrt_model *m, void *dst, const char *src) {
    const size_t elt = nnrt_dtype_size(m->dtype);
    for (int i = 0; i < m->num_tensors; i++) {
        const nnrt_param_desc *d = &m->tensors[i];
        if (d->count > 0)
            memcpy((char *)dst + d->offset * elt, src + d->offset * elt, d->count * elt);
    }
}

int nnrt_checkpoint_load(const char *path, const nnrt_model *m, void *params, nnrt_optim *o) {
    int code = nnrt__ckpt_args(path, m, params, o, "nnrt_checkpoint_load");
    if (code != NNRT_OK)
        return code;
    /* Read into scratch and copy only once everything checks out, so a failed load leaves params
     * and o as they were. */
    const int states = nnrt__optim_states(&o->config);
    const size_t bytes = o->count * nnrt_dtype_size(o->dtype); /* fits: nnrt_optim_init checked */
    size_t total;
    if (!nnrt__mul_size(bytes, (size_t)(1 + states), &total))
        return nnrt_fail(NNRT_ERR_NOMEM, "%s: out of memory", path);
    char *scratch = nnrt_alloc(total);
    if (scratch == NULL)
        return NNRT_ERR_NOMEM;
    nnrt__ckpt ck = {0};
    code = nnrt__ckpt_read(path, m, states, scratch, bytes, &ck);
    if (code == NNRT_ERR_NAME)
        code = nnrt__ckpt_diagnose(path, m, o, states, bytes, code);
    else if (code == NNRT_OK && ck.kind != o->config.kind)
        code = nnrt_fail(NNRT_ERR_ARG, "%s: the checkpoint holds the state of %s, but this optimizer is %s", path,
                         nnrt__kind_valid(ck.kind) ? nnrt__optim_names[ck.kind] : "an unknown optimizer",
                         nnrt__optim_names[o->config.kind]);
    else if (code == NNRT_OK && ck.step < 0)
        code = nnrt_fail(NNRT_ERR_FORMAT, "%s: optim.step is negative (%lld)", path, (long long)ck.step);
    if (code == NNRT_OK) {
        void *const dst[] = {params, o->state1, o->state2};
        for (int layer = 0; layer <= states; layer++)
            nnrt__ckpt_copy(m, dst[layer], scratch + (size_t)layer * bytes);
        o->step = ck.step;
    }
    nnrt_free(scratch);
    return code;
}
