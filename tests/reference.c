/* reference.c — the naive double-precision forward pass of reference.h.
 *
 * Every formula below is quoted from the PyTorch documentation it must agree with (DESIGN.md
 * "Math"). Weight matrices are PyTorch's: W[rows][cols] row-major, W_ih [G*H][in], W_hh [G*H][H],
 * gate blocks of H rows stacked in PyTorch's order (lstm: i, f, g, o; gru: r, z, n).
 */
#include "reference.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Small helpers ----------------------------------------------------------------------- */

static double sigmoid(double v) { return 1.0 / (1.0 + exp(-v)); }

static double activate(int act, double v)
{
    switch (act) {
    case NNRT_ACT_LINEAR: return v;
    case NNRT_ACT_RELU: return v > 0.0 ? v : 0.0;
    case NNRT_ACT_TANH: return tanh(v);
    case NNRT_ACT_SIGMOID: return sigmoid(v);
    default: abort(); /* ref_check_model rejects unknown activations */
    }
}

/* out[r] = sum_c W[r][c] * v[c] + b[r], for W [rows][cols]. */
static void affine(int rows, int cols, const double *W, const double *b, const double *v,
                   double *out)
{
    for (int r = 0; r < rows; r++) {
        double acc = b[r];
        for (int col = 0; col < cols; col++)
            acc += W[(size_t)r * (size_t)cols + (size_t)col] * v[col];
        out[r] = acc;
    }
}

static int gates_of(int cell)
{
    switch (cell) {
    case NNRT_CELL_RNN_TANH:
    case NNRT_CELL_RNN_RELU: return 1;
    case NNRT_CELL_GRU: return 3;
    case NNRT_CELL_LSTM: return 4;
    default: return 0;
    }
}

const char *ref_cell_name(int cell)
{
    switch (cell) {
    case NNRT_CELL_RNN_TANH: return "rnn_tanh";
    case NNRT_CELL_RNN_RELU: return "rnn_relu";
    case NNRT_CELL_GRU: return "gru";
    case NNRT_CELL_LSTM: return "lstm";
    default: return "?";
    }
}

const char *ref_act_name(int act)
{
    switch (act) {
    case NNRT_ACT_LINEAR: return "linear";
    case NNRT_ACT_RELU: return "relu";
    case NNRT_ACT_TANH: return "tanh";
    case NNRT_ACT_SIGMOID: return "sigmoid";
    default: return "?";
    }
}

static const nnrt_param_desc *find_tensor(const nnrt_model *m, const char *name)
{
    for (int i = 0; i < m->num_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return &m->tensors[i];
    return NULL;
}

/* The tensor's data inside the flat double array; the model has passed ref_check_model. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static const double *tensor(const nnrt_model *m, const double *params, const char *fmt, ...)
{
    char name[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const nnrt_param_desc *d = find_tensor(m, name);
    if (!d) {
        fprintf(stderr, "reference: model %s has no tensor %s\n", m->name, name);
        abort();
    }
    return params + d->offset;
}

/* ---- Descriptor check -------------------------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int fail(char *msg, size_t msg_size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msg_size, fmt, ap);
    va_end(ap);
    return -1;
}

/* The tensor `name` exists with shape [rows] (cols == 0) or [rows][cols], lies inside the flat
 * array, and has the default init bound `bound`. */
static int check_tensor(const nnrt_model *m, const char *name, int rows, int cols, double bound,
                        char *msg, size_t msg_size)
{
    const nnrt_param_desc *d = find_tensor(m, name);
    if (!d)
        return fail(msg, msg_size, "%s: no tensor %s", m->name, name);
    int ndim = cols ? 2 : 1;
    if (d->ndim != ndim || d->shape[0] != rows || (ndim == 2 && d->shape[1] != cols)) {
        char want[48], found[48];
        if (ndim == 2) snprintf(want, sizeof want, "[%d, %d]", rows, cols);
        else snprintf(want, sizeof want, "[%d]", rows);
        if (d->ndim == 2)
            snprintf(found, sizeof found, "[%lld, %lld]", (long long)d->shape[0],
                     (long long)d->shape[1]);
        else snprintf(found, sizeof found, "ndim %d, [%lld]", d->ndim, (long long)d->shape[0]);
        return fail(msg, msg_size, "%s: tensor %s: expected shape %s, found %s", m->name, name,
                    want, found);
    }
    size_t count = (size_t)rows * (size_t)(cols ? cols : 1);
    if (d->count != count)
        return fail(msg, msg_size, "%s: tensor %s: count %zu, shape says %zu", m->name, name,
                    d->count, count);
    if (d->offset > m->num_params || d->count > m->num_params - d->offset)
        return fail(msg, msg_size, "%s: tensor %s: [%zu, %zu) outside the %zu parameters", m->name,
                    name, d->offset, d->offset + d->count, m->num_params);
    if (fabs(d->init_bound - bound) > 1e-12 * bound)
        return fail(msg, msg_size, "%s: tensor %s: init_bound %.17g, PyTorch's default is %.17g",
                    m->name, name, d->init_bound, bound);
    return 0;
}

int ref_check_model(const nnrt_model *m, char *msg, size_t msg_size)
{
    char name[64];
    if (m->dtype != NNRT_F32 && m->dtype != NNRT_F64)
        return fail(msg, msg_size, "%s: dtype %d is neither F32 nor F64", m->name, (int)m->dtype);
    if (m->input < 1 || m->batch < 1 || m->seq_len < 1 || m->num_layers < 1 || m->num_heads < 0)
        return fail(msg, msg_size, "%s: input %d, batch %d, seq_len %d, layers %d, heads %d",
                    m->name, m->input, m->batch, m->seq_len, m->num_layers, m->num_heads);
    size_t expected_tensors = 0, expected_params = 0;
    int in = m->input;
    for (int k = 0; k < m->num_layers; k++) {
        const nnrt_layer_desc *L = &m->layers[k];
        int G = gates_of(L->cell), H = L->hidden;
        if (G == 0)
            return fail(msg, msg_size, "%s: layer %d: unknown cell %d", m->name, k, L->cell);
        if (L->input != in || H < 1)
            return fail(msg, msg_size, "%s: layer %d: input %d (expected %d), hidden %d", m->name,
                        k, L->input, in, H);
        double bound = 1.0 / sqrt((double)H);
        snprintf(name, sizeof name, "rnn.weight_ih_l%d", k);
        if (check_tensor(m, name, G * H, in, bound, msg, msg_size)) return -1;
        snprintf(name, sizeof name, "rnn.weight_hh_l%d", k);
        if (check_tensor(m, name, G * H, H, bound, msg, msg_size)) return -1;
        snprintf(name, sizeof name, "rnn.bias_ih_l%d", k);
        if (check_tensor(m, name, G * H, 0, bound, msg, msg_size)) return -1;
        snprintf(name, sizeof name, "rnn.bias_hh_l%d", k);
        if (check_tensor(m, name, G * H, 0, bound, msg, msg_size)) return -1;
        expected_tensors += 4;
        expected_params += (size_t)G * H * ((size_t)in + (size_t)H + 2);
        in = H;
    }
    for (int j = 0; j < m->num_heads; j++) {
        const nnrt_head_desc *D = &m->heads[j];
        if (D->input != in || D->output < 1 || D->act < NNRT_ACT_LINEAR || D->act > NNRT_ACT_SIGMOID)
            return fail(msg, msg_size, "%s: head %d: input %d (expected %d), output %d, act %d",
                        m->name, j, D->input, in, D->output, D->act);
        double bound = 1.0 / sqrt((double)in);
        snprintf(name, sizeof name, "head.%d.weight", j);
        if (check_tensor(m, name, D->output, in, bound, msg, msg_size)) return -1;
        snprintf(name, sizeof name, "head.%d.bias", j);
        if (check_tensor(m, name, D->output, 0, bound, msg, msg_size)) return -1;
        expected_tensors += 2;
        expected_params += (size_t)D->output * ((size_t)in + 1);
        in = D->output;
    }
    if (m->output != in)
        return fail(msg, msg_size, "%s: output %d, the last layer gives %d", m->name, m->output, in);
    if ((size_t)m->num_tensors != expected_tensors)
        return fail(msg, msg_size, "%s: %d tensors, expected %zu", m->name, m->num_tensors,
                    expected_tensors);
    if (m->num_params != expected_params)
        return fail(msg, msg_size, "%s: num_params %zu, the tensors need %zu", m->name,
                    m->num_params, expected_params);
    if (m->params_bytes != m->num_params * nnrt_dtype_size(m->dtype))
        return fail(msg, msg_size, "%s: params_bytes %zu, expected num_params * %zu = %zu", m->name,
                    m->params_bytes, nnrt_dtype_size(m->dtype),
                    m->num_params * nnrt_dtype_size(m->dtype));
    /* No two tensors overlap (with the counts summing to num_params, they then tile the array). */
    for (int a = 0; a < m->num_tensors; a++)
        for (int b = a + 1; b < m->num_tensors; b++) {
            const nnrt_param_desc *A = &m->tensors[a], *B = &m->tensors[b];
            if (A->offset < B->offset + B->count && B->offset < A->offset + A->count)
                return fail(msg, msg_size, "%s: tensors %s and %s overlap", m->name, A->name,
                            B->name);
        }
    if (!m->reset || !m->pack || !m->step || !m->forward)
        return fail(msg, msg_size, "%s: missing entry point", m->name);
    return 0;
}

/* ---- Sizes ------------------------------------------------------------------------------- */

size_t ref_state_offset(const nnrt_model *m, int layer)
{
    size_t off = 0;
    for (int k = 0; k < layer; k++)
        off += (size_t)m->batch * (size_t)m->layers[k].hidden;
    return off;
}

size_t ref_state_count(const nnrt_model *m) { return ref_state_offset(m, m->num_layers); }

size_t ref_x_count(const nnrt_model *m, int T)
{
    return (size_t)T * (size_t)m->batch * (size_t)m->input;
}

size_t ref_y_count(const nnrt_model *m, int T)
{
    return (size_t)(m->output_last ? 1 : T) * (size_t)m->batch * (size_t)m->output;
}

/* ---- Cells: one step of one sequence ------------------------------------------------------
 * x [I], h_prev [H] (and c_prev [H]); the new state is written to h_new (and c_new). */

/* torch.nn.RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)  (relu in place of tanh
 * when nonlinearity = 'relu'). */
static void rnn_cell(int act, int I, int H, const double *W_ih, const double *W_hh,
                     const double *b_ih, const double *b_hh, const double *x, const double *h_prev,
                     double *h_new)
{
    double *gi = malloc((size_t)H * sizeof *gi);
    double *gh = malloc((size_t)H * sizeof *gh);
    if (!gi || !gh) abort();
    affine(H, I, W_ih, b_ih, x, gi);      /* W_ih x + b_ih */
    affine(H, H, W_hh, b_hh, h_prev, gh); /* W_hh h + b_hh */
    for (int j = 0; j < H; j++)
        h_new[j] = activate(act, gi[j] + gh[j]);
    free(gi);
    free(gh);
}

/* torch.nn.GRU, gate blocks r, z, n:
 *   r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
 *   z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
 *   n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
 *   h_t = (1 - z_t) * n_t + z_t * h_{t-1} */
static void gru_cell(int I, int H, const double *W_ih, const double *W_hh, const double *b_ih,
                     const double *b_hh, const double *x, const double *h_prev, double *h_new)
{
    double *gi = malloc((size_t)3 * H * sizeof *gi);
    double *gh = malloc((size_t)3 * H * sizeof *gh);
    if (!gi || !gh) abort();
    affine(3 * H, I, W_ih, b_ih, x, gi);      /* rows [r | z | n] of W_i* x + b_i* */
    affine(3 * H, H, W_hh, b_hh, h_prev, gh); /* rows [r | z | n] of W_h* h + b_h* */
    for (int j = 0; j < H; j++) {
        double r = sigmoid(gi[j] + gh[j]);
        double z = sigmoid(gi[H + j] + gh[H + j]);
        double n = tanh(gi[2 * H + j] + r * gh[2 * H + j]);
        h_new[j] = (1.0 - z) * n + z * h_prev[j];
    }
    free(gi);
    free(gh);
}

/* torch.nn.LSTM, gate blocks i, f, g, o:
 *   i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
 *   f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
 *   g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
 *   o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
 *   c_t = f_t * c_{t-1} + i_t * g_t
 *   h_t = o_t * tanh(c_t) */
static void lstm_cell(int I, int H, const double *W_ih, const double *W_hh, const double *b_ih,
                      const double *b_hh, const double *x, const double *h_prev,
                      const double *c_prev, double *h_new, double *c_new)
{
    double *gi = malloc((size_t)4 * H * sizeof *gi);
    double *gh = malloc((size_t)4 * H * sizeof *gh);
    if (!gi || !gh) abort();
    affine(4 * H, I, W_ih, b_ih, x, gi);      /* rows [i | f | g | o] of W_i* x + b_i* */
    affine(4 * H, H, W_hh, b_hh, h_prev, gh); /* rows [i | f | g | o] of W_h* h + b_h* */
    for (int j = 0; j < H; j++) {
        double i = sigmoid(gi[j] + gh[j]);
        double f = sigmoid(gi[H + j] + gh[H + j]);
        double g = tanh(gi[2 * H + j] + gh[2 * H + j]);
        double o = sigmoid(gi[3 * H + j] + gh[3 * H + j]);
        c_new[j] = f * c_prev[j] + i * g;
        h_new[j] = o * tanh(c_new[j]);
    }
    free(gi);
    free(gh);
}

/* torch.nn.Linear followed by the activation: y = act(x W^T + b); x [in], y [out]. */
static void dense(int act, int in, int out, const double *W, const double *b, const double *x,
                  double *y)
{
    affine(out, in, W, b, x, y);
    for (int r = 0; r < out; r++)
        y[r] = activate(act, y[r]);
}

/* ---- The model --------------------------------------------------------------------------- */

static int max_width(const nnrt_model *m)
{
    int w = m->input;
    for (int k = 0; k < m->num_layers; k++)
        if (m->layers[k].hidden > w) w = m->layers[k].hidden;
    for (int j = 0; j < m->num_heads; j++)
        if (m->heads[j].output > w) w = m->heads[j].output;
    return w;
}

/* The head on one sequence's top hidden state top [H_last] -> out [O]. */
static void head_forward(const nnrt_model *m, const double *params, const double *top, double *out,
                         double *buf_a, double *buf_b)
{
    int in = m->layers[m->num_layers - 1].hidden;
    memcpy(buf_a, top, (size_t)in * sizeof *buf_a);
    for (int j = 0; j < m->num_heads; j++) {
        const nnrt_head_desc *D = &m->heads[j];
        dense(D->act, D->input, D->output, tensor(m, params, "head.%d.weight", j),
              tensor(m, params, "head.%d.bias", j), buf_a, buf_b);
        double *t = buf_a; buf_a = buf_b; buf_b = t;
        in = D->output;
    }
    memcpy(out, buf_a, (size_t)in * sizeof *out); /* in == m->output now */
}

void ref_forward(const nnrt_model *m, const double *params, int T, const double *x, double *y,
                 double *h, double *c)
{
    const int B = m->batch, W = max_width(m);
    double *in_buf = malloc((size_t)W * sizeof *in_buf);
    double *h_new = malloc((size_t)W * sizeof *h_new);
    double *c_new = malloc((size_t)W * sizeof *c_new);
    double *buf_a = malloc((size_t)W * sizeof *buf_a);
    double *buf_b = malloc((size_t)W * sizeof *buf_b);
    if (!in_buf || !h_new || !c_new || !buf_a || !buf_b) abort();

    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++) {
            /* Layer 0 reads x_t of sequence b; layer k > 0 reads layer k-1's new h. */
            memcpy(in_buf, x + ((size_t)t * B + b) * (size_t)m->input,
                   (size_t)m->input * sizeof *in_buf);
            for (int k = 0; k < m->num_layers; k++) {
                const nnrt_layer_desc *L = &m->layers[k];
                const int I = L->input, H = L->hidden;
                const double *W_ih = tensor(m, params, "rnn.weight_ih_l%d", k);
                const double *W_hh = tensor(m, params, "rnn.weight_hh_l%d", k);
                const double *b_ih = tensor(m, params, "rnn.bias_ih_l%d", k);
                const double *b_hh = tensor(m, params, "rnn.bias_hh_l%d", k);
                double *hk = h + ref_state_offset(m, k) + (size_t)b * H;
                double *ck = c + ref_state_offset(m, k) + (size_t)b * H;
                switch (L->cell) {
                case NNRT_CELL_RNN_TANH:
                    rnn_cell(NNRT_ACT_TANH, I, H, W_ih, W_hh, b_ih, b_hh, in_buf, hk, h_new);
                    break;
                case NNRT_CELL_RNN_RELU:
                    rnn_cell(NNRT_ACT_RELU, I, H, W_ih, W_hh, b_ih, b_hh, in_buf, hk, h_new);
                    break;
                case NNRT_CELL_GRU:
                    gru_cell(I, H, W_ih, W_hh, b_ih, b_hh, in_buf, hk, h_new);
                    break;
                case NNRT_CELL_LSTM:
                    lstm_cell(I, H, W_ih, W_hh, b_ih, b_hh, in_buf, hk, ck, h_new, c_new);
                    memcpy(ck, c_new, (size_t)H * sizeof *ck);
                    break;
                default: abort();
                }
                memcpy(hk, h_new, (size_t)H * sizeof *hk);
                memcpy(in_buf, h_new, (size_t)H * sizeof *in_buf);
            }
            /* in_buf holds the top layer's h_t of sequence b. */
            if (!m->output_last)
                head_forward(m, params, in_buf, y + ((size_t)t * B + b) * (size_t)m->output,
                             buf_a, buf_b);
            else if (t == T - 1)
                head_forward(m, params, in_buf, y + (size_t)b * (size_t)m->output, buf_a, buf_b);
        }
    }
    free(in_buf);
    free(h_new);
    free(c_new);
    free(buf_a);
    free(buf_b);
}

/* ---- Glue to generated models ------------------------------------------------------------ */

void ref_to_double(const nnrt_model *m, const void *src, double *dst, size_t n)
{
    if (m->dtype == NNRT_F32) {
        const float *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = s[i];
    } else {
        memcpy(dst, src, n * sizeof *dst);
    }
}

void ref_from_double(const nnrt_model *m, const double *src, void *dst, size_t n)
{
    if (m->dtype == NNRT_F32) {
        float *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = (float)src[i];
    } else {
        memcpy(dst, src, n * sizeof *src);
    }
}

/* Elements of the generated state struct under the assumed layout. */
static size_t gen_state_count(const nnrt_model *m)
{
    size_t n = 0;
    for (int k = 0; k < m->num_layers; k++)
        n += (size_t)(m->layers[k].cell == NNRT_CELL_LSTM ? 2 : 1) * (size_t)m->batch *
             (size_t)m->layers[k].hidden;
    return n;
}

int ref_state_layout_ok(const nnrt_model *m)
{
    return m->state_bytes == gen_state_count(m) * nnrt_dtype_size(m->dtype);
}

void ref_state_unpack(const nnrt_model *m, const void *state, double *h, double *c)
{
    size_t pos = 0, es = nnrt_dtype_size(m->dtype);
    const unsigned char *s = state;
    for (int k = 0; k < m->num_layers; k++) {
        size_t n = (size_t)m->batch * (size_t)m->layers[k].hidden, off = ref_state_offset(m, k);
        ref_to_double(m, s + pos * es, h + off, n);
        pos += n;
        if (m->layers[k].cell == NNRT_CELL_LSTM) {
            ref_to_double(m, s + pos * es, c + off, n);
            pos += n;
        } else {
            memset(c + off, 0, n * sizeof *c);
        }
    }
}

void ref_state_pack(const nnrt_model *m, const double *h, const double *c, void *state)
{
    size_t pos = 0, es = nnrt_dtype_size(m->dtype);
    unsigned char *s = state;
    for (int k = 0; k < m->num_layers; k++) {
        size_t n = (size_t)m->batch * (size_t)m->layers[k].hidden, off = ref_state_offset(m, k);
        ref_from_double(m, h + off, s + pos * es, n);
        pos += n;
        if (m->layers[k].cell == NNRT_CELL_LSTM) {
            ref_from_double(m, c + off, s + pos * es, n);
            pos += n;
        }
    }
}

/* ---- Comparisons ------------------------------------------------------------------------- */

ref_diff ref_compare(const double *got, const double *ref, size_t n, double atol, double rtol)
{
    ref_diff d = {n, 0, 0, 0.0, 0.0};
    for (size_t i = 0; i < n; i++) {
        double err = fabs(got[i] - ref[i]);
        if (isnan(err)) err = INFINITY;
        if (!(err <= atol + rtol * fabs(ref[i]))) {
            if (d.bad == 0) d.first_bad = i;
            d.bad++;
        }
        if (err > d.max_abs) d.max_abs = err;
        if (fabs(ref[i]) >= REF_REL_FLOOR && err / fabs(ref[i]) > d.max_rel)
            d.max_rel = err / fabs(ref[i]);
    }
    return d;
}

void ref_diff_merge(ref_diff *a, ref_diff b)
{
    if (a->bad == 0 && b.bad > 0) a->first_bad = b.first_bad;
    a->count += b.count;
    a->bad += b.bad;
    if (b.max_abs > a->max_abs) a->max_abs = b.max_abs;
    if (b.max_rel > a->max_rel) a->max_rel = b.max_rel;
}

void ref_describe_y(const nnrt_model *m, int t0, size_t i, char *buf, size_t size)
{
    size_t O = (size_t)m->output, B = (size_t)m->batch;
    if (m->output_last)
        snprintf(buf, size, "[b %zu][o %zu]", i / O, i % O);
    else
        snprintf(buf, size, "[t %zu][b %zu][o %zu]", (size_t)t0 + i / (B * O), i / O % B, i % O);
}

void ref_describe_state(const nnrt_model *m, size_t i, char *buf, size_t size)
{
    int k = 0;
    while (k + 1 < m->num_layers && i >= ref_state_offset(m, k + 1)) k++;
    size_t H = (size_t)m->layers[k].hidden, j = i - ref_state_offset(m, k);
    snprintf(buf, size, "layer %d [b %zu][unit %zu]", k, j / H, j % H);
}
