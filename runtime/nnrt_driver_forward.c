/* nnrt_driver_forward.c — the driver's forward command: inference over a file of inputs. */
#include "nnrt_driver.h"

#include <inttypes.h>
#include <stdint.h>

enum { FWD_WEIGHTS, FWD_IN, FWD_OUT };
static const option forward_opts[] = {
    [FWD_WEIGHTS] = {"-w", "W.safetensors", 1, "weights file to read"},
    [FWD_IN] = {"-i", "X.npy", 1, "input sequences, time-major"},
    [FWD_OUT] = {"-o", "Y.npy", 1, "outputs to write"},
};

static void explain_forward(const nnrt_model *m, FILE *out) {
    const char *dt = nnrt_dtype_name(m->dtype);
    fprintf(out, "X is %s [T, %d, %d] (T steps, batch %d, input %d), T >= 1; T > %d runs in\n", dt,
            m->batch, m->input, m->batch, m->input, m->seq_len);
    fprintf(out, "chunks of at most %d steps carrying the state, with the same result.\n",
            m->seq_len);
    if (m->output_last)
        fprintf(out, "Y is %s [%d, %d]: the output after the last step.\n", dt, m->batch,
                m->output);
    else
        fprintf(out, "Y is %s [T, %d, %d]: the output at every step.\n", dt, m->batch, m->output);
}

static int run_chunks(const nnrt_model *m, const void *weights, void *state, void *work, int64_t T,
                      const char *x, char *y) {
    size_t esize = nnrt_dtype_size(m->dtype);
    size_t x_step = (size_t)m->batch * (size_t)m->input * esize;
    size_t y_step = m->output_last ? 0 : (size_t)m->batch * (size_t)m->output * esize;
    m->reset(state);
    for (int64_t t0 = 0; t0 < T; t0 += m->seq_len) {
        int n = T - t0 < m->seq_len ? (int)(T - t0) : m->seq_len;
        int rc =
            m->forward(weights, state, work, n, x + (size_t)t0 * x_step, y + (size_t)t0 * y_step);
        if (rc != NNRT_OK) return rc;
    }
    return NNRT_OK;
}

/* forward -w W.safetensors -i X.npy -o Y.npy */
static int cmd_forward(const nnrt_model *m, const char *const *vals) {
    const char *wpath = vals[FWD_WEIGHTS], *xpath = vals[FWD_IN], *ypath = vals[FWD_OUT];
    nnrt_array x = {0}, y = {0};
    void *params = nnrt_alloc(m->params_bytes);
    void *weights = nnrt_alloc(m->weights_bytes);
    void *state = nnrt_alloc(m->state_bytes);
    void *work = nnrt_alloc(m->work_bytes);
    int status = 0, rc;

    if (!params || !weights || !state || !work) {
        report("out of memory (%zu bytes of parameters, weights, state and work)",
               m->params_bytes + m->weights_bytes + m->state_bytes + m->work_bytes);
        status = EXIT_USAGE;
        goto done;
    }
    if ((rc = nnrt_model_load(m, params, wpath)) != NNRT_OK) {
        status = runtime_error(rc, wpath);
        goto done;
    }
    m->pack(params, weights);
    if ((rc = nnrt_npy_read(xpath, &x)) != NNRT_OK) {
        status = runtime_error(rc, xpath);
        goto done;
    }
    if ((status = check_input(m, xpath, &x)) != 0) goto done;

    int64_t T = x.shape[0];
    size_t row = (size_t)m->batch * (size_t)m->output; /* elements of y per step */
    y.dtype = m->dtype;
    if (m->output_last) {
        y.ndim = 2, y.shape[0] = m->batch, y.shape[1] = m->output;
        y.count = row;
    } else {
        if ((uint64_t)T > SIZE_MAX / nnrt_dtype_size(m->dtype) / (row ? row : 1)) {
            report("%s: %" PRId64 " steps are too many to hold the outputs", xpath, T);
            status = EXIT_INPUT;
            goto done;
        }
        y.ndim = 3, y.shape[0] = T, y.shape[1] = m->batch, y.shape[2] = m->output;
        y.count = (size_t)T * row;
    }
    if (!(y.data = nnrt_alloc(y.count * nnrt_dtype_size(m->dtype)))) {
        report("out of memory (%zu outputs)", y.count);
        status = EXIT_USAGE;
        goto done;
    }
    if ((rc = run_chunks(m, weights, state, work, T, x.data, y.data)) != NNRT_OK) {
        status = runtime_error(rc, xpath);
        goto done;
    }
    if ((rc = nnrt_npy_write(ypath, &y)) != NNRT_OK) status = runtime_error(rc, ypath);

done:
    nnrt_array_free(&y);
    nnrt_array_free(&x);
    nnrt_free(work);
    nnrt_free(state);
    nnrt_free(weights);
    nnrt_free(params);
    return status;
}

_Static_assert(COUNT(forward_opts) <= MAX_OPTIONS, "raise MAX_OPTIONS");

const command cmd_forward_command = {
    "forward",
    "run the network over X and write its outputs Y",
    forward_opts, COUNT(forward_opts), cmd_forward, explain_forward,
};
