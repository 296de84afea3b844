/* rnnc_main.c — the main of the benchmark's rnnc binaries: the generated driver plus two commands
 * the comparison needs. bench/build_model.sh compiles it in place of the generated <name>_main.c,
 * with rnnc's own compile command for the model, and -DBENCH_MODEL=<name>_model.
 *
 *   <bin> describe                      the model descriptor as one JSON object (sizes, cells,
 *                                       head, tensors), which the other implementations are
 *                                       built from
 *   <bin> check W X DY OUTDIR           runs the three entry points on weights W (safetensors),
 *                                       inputs X [T][B][I] (.npy, T = seq_len) and DY [T][B][O]:
 *                                       OUTDIR/y_step.npy   y of T calls of step, state carried
 *                                       OUTDIR/y_seq.npy    y of one forward over T steps
 *                                       OUTDIR/y_train.npy  y of forward_train
 *                                       OUTDIR/grads.safetensors  backward of dy (no loss), from
 *                                                           zero gradients, PyTorch names
 *                                       each from the reset (zero) state.
 *   <bin> anything else                 the generated driver (init, forward, grad, train, bench)
 */
#include "nnrt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef BENCH_MODEL
#error "compile with -DBENCH_MODEL=<name>_model"
#endif
extern const nnrt_model BENCH_MODEL;

static const char *const cell_names[] = {"rnn_tanh", "rnn_relu", "gru", "lstm"};
static const char *const act_names[] = {"linear", "relu", "tanh", "sigmoid"};
static const char *const loss_names[] = {"mse", "cross_entropy", "bce"};

static int describe(const nnrt_model *m)
{
    printf("{\"name\": \"%s\", \"isa\": \"%s\", \"dtype\": \"%s\", \"input\": %d, \"output\": %d, "
           "\"seq_len\": %d, \"batch\": %d, \"output_last\": %d, \"loss\": \"%s\", \"num_params\": %zu, "
           "\"weights_bytes\": %zu, \"layers\": [",
           m->name, m->isa ? m->isa : "unknown", nnrt_dtype_name(m->dtype), m->input, m->output, m->seq_len,
           m->batch, m->output_last, loss_names[m->loss_kind], m->num_params, m->weights_bytes);
    for (int k = 0; k < m->num_layers; k++)
        printf("%s{\"cell\": \"%s\", \"input\": %d, \"hidden\": %d}", k ? ", " : "",
               cell_names[m->layers[k].cell], m->layers[k].input, m->layers[k].hidden);
    printf("], \"heads\": [");
    for (int j = 0; j < m->num_heads; j++)
        printf("%s{\"act\": \"%s\", \"input\": %d, \"output\": %d}", j ? ", " : "", act_names[m->heads[j].act],
               m->heads[j].input, m->heads[j].output);
    printf("], \"tensors\": [");
    for (int i = 0; i < m->num_tensors; i++) {
        const nnrt_param_desc *t = &m->tensors[i];
        printf("%s{\"name\": \"%s\", \"shape\": [%" PRId64 "%s", i ? ", " : "", t->name, t->shape[0],
               t->ndim == 2 ? ", " : "");
        if (t->ndim == 2) printf("%" PRId64, t->shape[1]);
        printf("]}");
    }
    printf("]}\n");
    return 0;
}

static int fail(const char *what)
{
    fprintf(stderr, "%s: check: %s: %s\n", BENCH_MODEL.name, what, nnrt_last_error());
    return 1;
}

/* Reads an .npy that must be float of the model's dtype with exactly the given shape. */
static int read_exact(const char *path, const nnrt_model *m, int64_t d0, int64_t d1, int64_t d2, nnrt_array *a)
{
    if (nnrt_npy_read(path, a) != NNRT_OK) return fail(path);
    if (a->dtype != m->dtype || a->ndim != 3 || a->shape[0] != d0 || a->shape[1] != d1 || a->shape[2] != d2) {
        fprintf(stderr, "%s: check: %s: expected %s [%" PRId64 ", %" PRId64 ", %" PRId64 "]\n", m->name, path,
                nnrt_dtype_name(m->dtype), d0, d1, d2);
        return 1;
    }
    return 0;
}

static int write_y(const nnrt_model *m, const char *dir, const char *name, void *y)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    nnrt_array a = {.dtype = m->dtype, .ndim = 3, .shape = {m->seq_len, m->batch, m->output}};
    a.count = (size_t)m->seq_len * (size_t)m->batch * (size_t)m->output;
    a.data = y;
    return nnrt_npy_write(path, &a) == NNRT_OK ? 0 : fail(path);
}

static int check(const nnrt_model *m, char **argv)
{
    const char *wpath = argv[0], *xpath = argv[1], *dypath = argv[2], *dir = argv[3];
    if (m->output_last) {
        fprintf(stderr, "%s: check: output_at \"last\" models are not benchmarked\n", m->name);
        return 2;
    }
    const size_t es = nnrt_dtype_size(m->dtype);
    const int T = m->seq_len, B = m->batch;
    nnrt_array x = {0}, dy = {0};
    int status = 1;
    void *params = nnrt_alloc(m->params_bytes), *grads = nnrt_alloc(m->params_bytes);
    void *weights = nnrt_alloc(m->weights_bytes), *state = nnrt_alloc(m->state_bytes);
    void *work = nnrt_alloc(m->work_bytes), *tape = nnrt_alloc(m->tape_bytes);
    void *y = nnrt_alloc((size_t)T * B * m->output * es);
    if (!params || !grads || !weights || !state || !work || !tape || !y) {
        fprintf(stderr, "%s: check: out of memory\n", m->name);
        goto done;
    }
    if (nnrt_model_load(m, params, wpath) != NNRT_OK) {
        fail(wpath);
        goto done;
    }
    if (read_exact(xpath, m, T, B, m->input, &x) || read_exact(dypath, m, T, B, m->output, &dy)) goto done;
    m->pack(params, weights);

    m->reset(state);
    const size_t xstep = (size_t)B * m->input * es, ystep = (size_t)B * m->output * es;
    for (int t = 0; t < T; t++) m->step(weights, state, (char *)x.data + t * xstep, (char *)y + t * ystep);
    if (write_y(m, dir, "y_step.npy", y)) goto done;

    m->reset(state);
    if (m->forward(weights, state, work, T, x.data, y) != NNRT_OK) {
        fail("forward");
        goto done;
    }
    if (write_y(m, dir, "y_seq.npy", y)) goto done;

    m->reset(state);
    memset(grads, 0, m->params_bytes);
    if (m->forward_train(weights, state, tape, T, x.data, y) != NNRT_OK ||
        m->backward(params, tape, x.data, dy.data, grads, NULL) != NNRT_OK) {
        fail("training");
        goto done;
    }
    if (write_y(m, dir, "y_train.npy", y)) goto done;
    char path[4096];
    snprintf(path, sizeof path, "%s/grads.safetensors", dir);
    if (nnrt_model_save(m, grads, path) != NNRT_OK) {
        fail(path);
        goto done;
    }
    status = 0;
done:
    nnrt_array_free(&x);
    nnrt_array_free(&dy);
    nnrt_free(y);
    nnrt_free(tape);
    nnrt_free(work);
    nnrt_free(state);
    nnrt_free(weights);
    nnrt_free(grads);
    nnrt_free(params);
    return status;
}

int main(int argc, char **argv)
{
    const nnrt_model *m = &BENCH_MODEL;
    if (argc == 2 && strcmp(argv[1], "describe") == 0) return describe(m);
    if (argc >= 2 && strcmp(argv[1], "check") == 0) {
        if (argc != 6) {
            fprintf(stderr, "usage: %s check W.safetensors X.npy DY.npy OUTDIR\n", argv[0]);
            return 2;
        }
        return check(m, argv + 2);
    }
    return nnrt_driver_main(m, argc, argv);
}
