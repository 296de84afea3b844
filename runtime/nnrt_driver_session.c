/* nnrt_driver_session.c — the training data (X and TARGET) and the session of one forward
 * and backward, shared by grad and train. */
#include "nnrt_driver.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

/* ---- Training data: X and TARGET ---------------------------------------------------------- */

int is_ce(const nnrt_model *m) { return m->loss_kind == NNRT_LOSS_CROSS_ENTROPY; }

static void dataset_free(dataset *d) {
    nnrt_free(d->classes);
    nnrt_array_free(&d->target);
    nnrt_array_free(&d->x);
}

/* TARGET must match the loss and X: dtype, shape, and class indices in 0..output-1. Prints the
 * mismatch; returns 0 or EXIT_INPUT. */
static int check_target(const nnrt_model *m, const char *tpath, const char *xpath, dataset *d) {
    const nnrt_array *t = &d->target;
    const int ce = is_ce(m);
    if (ce && t->dtype != NNRT_I32 && t->dtype != NNRT_I64) {
        report("%s: expected class indices, int32 or int64 (loss cross_entropy), found %s", tpath,
               nnrt_dtype_name(t->dtype));
        return EXIT_INPUT;
    }
    if (!ce && t->dtype != m->dtype) {
        report("%s: expected dtype %s, the model's (loss %s), found %s", tpath,
               nnrt_dtype_name(m->dtype), loss_name(m->loss_kind), nnrt_dtype_name(t->dtype));
        return EXIT_INPUT;
    }
    int64_t want[3];
    int nd = 0;
    if (!m->output_last) want[nd++] = d->T;
    want[nd++] = m->batch;
    if (!ce) want[nd++] = m->output;
    int same = t->ndim == nd;
    for (int k = 0; same && k < nd; k++) same = t->shape[k] == want[k];
    if (!same) {
        char wanted[80], found[NNRT_MAX_DIMS * 24 + 4], layout[160];
        format_dims(wanted, sizeof wanted, nd, want);
        format_dims(found, sizeof found, t->ndim, t->shape);
        if (m->output_last)
            snprintf(layout, sizeof layout, "%s: output at the last step only",
                     ce ? "[batch] class indices" : "[batch, output]");
        else
            snprintf(layout, sizeof layout, "%s with T = %" PRId64 " as in %s",
                     ce ? "[T, batch] class indices" : "[T, batch, output]", d->T, xpath);
        report("%s: expected shape %s (%s), found %s", tpath, wanted, layout, found);
        return EXIT_INPUT;
    }
    if (!ce) {
        d->tdata = t->data;
        d->t_step =
            m->output_last ? 0 : (size_t)m->batch * (size_t)m->output * nnrt_dtype_size(m->dtype);
        return 0;
    }
    for (size_t i = 0; i < t->count; i++) {
        int64_t v =
            t->dtype == NNRT_I32 ? ((const int32_t *)t->data)[i] : ((const int64_t *)t->data)[i];
        if (v >= 0 && v < m->output) continue;
        char where[64];
        if (m->output_last)
            snprintf(where, sizeof where, "[%zu]", i);
        else
            snprintf(where, sizeof where, "[%zu][%zu]", i / (size_t)m->batch, i % (size_t)m->batch);
        report("%s: target%s = %" PRId64 " is not a class index in 0..%d", tpath, where, v,
               m->output - 1);
        return EXIT_INPUT;
    }
    if (t->dtype == NNRT_I64) {
        if (!(d->classes = nnrt_alloc(t->count * sizeof(int32_t)))) {
            report("out of memory (%zu class indices)", t->count);
            return EXIT_USAGE;
        }
        for (size_t i = 0; i < t->count; i++)
            d->classes[i] = (int32_t)((const int64_t *)t->data)[i];
        d->tdata = (const char *)d->classes;
    } else {
        d->tdata = t->data;
    }
    d->t_step = m->output_last ? 0 : (size_t)m->batch * sizeof(int32_t);
    return 0;
}

static int load_data(const nnrt_model *m, const char *xpath, const char *tpath, dataset *d) {
    int rc, status;
    if ((rc = nnrt_npy_read(xpath, &d->x)) != NNRT_OK) return runtime_error(rc, xpath);
    if ((status = check_input(m, xpath, &d->x)) != 0) return status;
    d->T = d->x.shape[0];
    d->x_step = (size_t)m->batch * (size_t)m->input * nnrt_dtype_size(m->dtype);
    if ((rc = nnrt_npy_read(tpath, &d->target)) != NNRT_OK) return runtime_error(rc, tpath);
    return check_target(m, tpath, xpath, d);
}

/* ---- A training session: weights, data, and the buffers of one forward and backward ------ */

void session_close(session *s) {
    nnrt_workers_destroy(s->team);
    dataset_free(&s->d);
    nnrt_free(s->dy);
    nnrt_free(s->y);
    nnrt_free(s->tape);
    nnrt_free(s->state);
    nnrt_free(s->weights);
    nnrt_free(s->grads);
    nnrt_free(s->params);
}

/* The forward reads the packed weights, the backward the parameters: after loading or changing
 * the parameters, pack them. */
void session_pack(session *s) { s->m->pack(s->params, s->weights); }

/* Loads W, X and TARGET and allocates what a step needs. Prints what went wrong; returns 0 or
 * an exit code. s must be closed either way. */
int session_open(const nnrt_model *m, const char *wpath, const char *xpath, const char *tpath,
                 int threads, session *s) {
    memset(s, 0, sizeof *s);
    s->m = m;
    if (!m->forward_train_mt || !m->loss || !m->backward_mt || m->tape_bytes == 0 ||
        (m->target_dtype != (is_ce(m) ? NNRT_I32 : m->dtype))) {
        report("model %s has no training entry points for this runtime: regenerate it", m->name);
        return EXIT_USAGE;
    }
    size_t rows = (m->output_last ? 1 : (size_t)m->seq_len) * (size_t)m->batch;
    size_t ybytes = rows * (size_t)m->output * nnrt_dtype_size(m->dtype);
    s->params = nnrt_alloc(m->params_bytes);
    s->weights = nnrt_alloc(m->weights_bytes);
    s->grads = nnrt_alloc(m->params_bytes);
    s->state = nnrt_alloc(m->state_bytes);
    s->tape = nnrt_alloc(m->tape_bytes);
    s->y = nnrt_alloc(ybytes);
    s->dy = nnrt_alloc(ybytes);
    if (!s->params || !s->weights || !s->grads || !s->state || !s->tape || !s->y || !s->dy) {
        report("out of memory (%zu bytes of parameters, weights, gradients, state, tape and "
               "outputs)",
               2 * m->params_bytes + m->weights_bytes + m->state_bytes + m->tape_bytes +
                   2 * ybytes);
        return EXIT_USAGE;
    }
    int rc = nnrt_model_load(m, s->params, wpath);
    if (rc != NNRT_OK) return runtime_error(rc, wpath);
    session_pack(s);
    int status = load_data(m, xpath, tpath, &s->d);
    if (status != 0) return status;
    s->nchunks = 1 + (s->d.T - 1) / m->seq_len;
    return open_team(threads, &s->team);
}

int session_check_stream(const session *s, const char *xpath) {
    const nnrt_model *m = s->m;
    if (s->nchunks == 1 || !m->output_last) return 0;
    report("%s: T = %" PRId64 " steps is more than seq_len %d, and this model's output is at "
           "the last step only: truncated BPTT over a long stream needs output_at = \"all\"; "
           "cut X into sequences of at most %d steps",
           xpath, s->d.T, m->seq_len, m->seq_len);
    return EXIT_INPUT;
}

/* Chunk c of X: forward_train from the current state (which it advances), the loss, and with
 * backward set dloss/dy and the backward pass adding into grads. Returns an NNRT_* code. */
int run_chunk(session *s, int64_t c, int backward, double *loss, int *steps) {
    const nnrt_model *m = s->m;
    int64_t t0 = c * m->seq_len;
    int n = s->d.T - t0 < m->seq_len ? (int)(s->d.T - t0) : m->seq_len;
    const char *x = (const char *)s->d.x.data + (size_t)t0 * s->d.x_step;
    const char *target = s->d.tdata + (size_t)t0 * s->d.t_step;
    if (steps) *steps = n;
    int rc = m->forward_train_mt(s->team, s->weights, s->state, s->tape, n, x, s->y);
    if (rc == NNRT_OK) rc = m->loss(n, s->y, target, loss, backward ? s->dy : NULL);
    if (rc == NNRT_OK && backward && isfinite(*loss))
        rc = m->backward_mt(s->team, s->params, s->tape, x, s->dy, s->grads, NULL);
    return rc;
}

/* The loss of the current parameters over all of X from the zero state: with chunks, the mean
 * over all terms, as one loss over the whole stream would take it. */
int evaluate_chunks(session *s, double *loss, double *losses, int *steps) {
    s->m->reset(s->state);
    double sum = 0;
    for (int64_t c = 0; c < s->nchunks; c++) {
        double l;
        int n, rc = run_chunk(s, c, 0, &l, &n);
        if (rc != NNRT_OK) return rc;
        if (losses) losses[c] = l, steps[c] = n;
        sum += l * n;
        if (s->nchunks == 1) *loss = l; /* as it is, not l * n / n */
    }
    if (s->nchunks > 1) *loss = sum / (double)s->d.T;
    return NNRT_OK;
}

int evaluate(session *s, double *loss) { return evaluate_chunks(s, loss, NULL, NULL); }

const char *nonfinite_name(double v) { return isnan(v) ? "nan" : v > 0 ? "inf" : "-inf"; }

int all_finite(nnrt_dtype dtype, const void *p, size_t n) {
    if (dtype == NNRT_F32) {
        for (size_t i = 0; i < n; i++)
            if (!isfinite(((const float *)p)[i])) return 0;
    } else {
        for (size_t i = 0; i < n; i++)
            if (!isfinite(((const double *)p)[i])) return 0;
    }
    return 1;
}

const char *describe_nonfinite(const nnrt_model *m, const void *grads, const char *what,
                               char *buf, size_t size) {
    snprintf(buf, size, "%s is not finite", what);
    for (int k = 0; k < m->num_tensors; k++) {
        const nnrt_param_desc *d = &m->tensors[k];
        for (size_t i = 0; i < d->count; i++) {
            double v = m->dtype == NNRT_F32 ? ((const float *)grads)[d->offset + i]
                                            : ((const double *)grads)[d->offset + i];
            if (isfinite(v)) continue;
            if (d->ndim == 2)
                snprintf(buf, size, "%s %s is %s at [%zu, %zu]", what, d->name, nonfinite_name(v),
                         i / (size_t)d->shape[1], i % (size_t)d->shape[1]);
            else
                snprintf(buf, size, "%s %s is %s at [%zu]", what, d->name, nonfinite_name(v), i);
            return buf;
        }
    }
    return buf;
}

/* Target shapes of this model, for the help text. */
void explain_target(const nnrt_model *m, FILE *out, const char *T) {
    if (is_ce(m) && m->output_last)
        fprintf(out,
                "TARGET is int32 or int64 class indices [%d] in 0..%d (output at the last step).\n",
                m->batch, m->output - 1);
    else if (is_ce(m))
        fprintf(out, "TARGET is int32 or int64 class indices [%s, %d] in 0..%d.\n", T, m->batch,
                m->output - 1);
    else if (m->output_last)
        fprintf(out, "TARGET is %s [%d, %d] (output at the last step), loss %s.\n",
                nnrt_dtype_name(m->dtype), m->batch, m->output, loss_name(m->loss_kind));
    else
        fprintf(out, "TARGET is %s [%s, %d, %d], loss %s.\n", nnrt_dtype_name(m->dtype), T,
                m->batch, m->output, loss_name(m->loss_kind));
}
