/* nnrt_driver_forward.c — the driver's forward command: inference over a file of inputs. */
#include "nnrt_driver.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

enum { FWD_WEIGHTS, FWD_IN, FWD_OUT, FWD_THREADS, FWD_CHECK };
static const opt_spec forward_opts[] = {
    [FWD_WEIGHTS] = {"-w", "W.safetensors", 1, "weights file to read"},
    [FWD_IN] = {"-i", "X.npy", 1, "input sequences, time-major"},
    [FWD_OUT] = {"-o", "Y.npy", 1, "outputs to write"},
    [FWD_THREADS] = {"--threads", "N", 0,
                     "threads of the team the forward runs on (default 1; the same numbers for "
                     "any N)"},
    [FWD_CHECK] = {"--check-finite", NULL, 0,
                   "a NaN or infinity in the weights, X or Y is an error naming where it is"},
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
    fprintf(out,
            "\nNon-finite values are computed with, as IEEE arithmetic does: a NaN or infinity in\n"
            "the weights or X makes the outputs it reaches NaN or infinite, and Y holds them (exit\n"
            "0). With --check-finite the weights and X are checked before the run and each chunk's\n"
            "outputs after it; the first non-finite value is an error (exit 1) naming the tensor\n"
            "and index, or the timestep, and Y is not written.\n");
}

/* With --check-finite: the first non-finite element of X, as "x[t][b][i]". Prints; 0 or EXIT_INPUT. */
static int check_x_finite(const nnrt_model *m, const char *xpath, const nnrt_array *x) {
    if (all_finite(m->dtype, x->data, x->count)) return 0;
    for (size_t i = 0; i < x->count; i++) {
        double v = m->dtype == NNRT_F32 ? ((const float *)x->data)[i] : ((const double *)x->data)[i];
        if (isfinite(v)) continue;
        size_t row = (size_t)m->batch * (size_t)m->input;
        report("%s: x[%zu][%zu][%zu] is %s (--check-finite)", xpath, i / row,
               i % row / (size_t)m->input, i % (size_t)m->input, nonfinite_name(v));
        break;
    }
    return EXIT_INPUT;
}

/* With --check-finite: the outputs of the chunk of n steps from t0 (y holds them). */
static int check_y_finite(const nnrt_model *m, int64_t T, int64_t t0, int n, const char *y) {
    size_t row = (size_t)m->batch * (size_t)m->output, count = (m->output_last ? 1 : (size_t)n) * row;
    if (all_finite(m->dtype, y, count)) return 0;
    for (size_t i = 0; i < count; i++) {
        double v = m->dtype == NNRT_F32 ? ((const float *)y)[i] : ((const double *)y)[i];
        if (isfinite(v)) continue;
        int64_t t = m->output_last ? t0 + n - 1 : t0 + (int64_t)(i / row);
        report("the output at step %" PRId64 " (of %" PRId64 ") is %s at [%zu, %zu] (--check-finite)",
               t, T, nonfinite_name(v), i % row / (size_t)m->output, i % (size_t)m->output);
        break;
    }
    return EXIT_INPUT;
}

/* Runs T steps from a zero state, seq_len steps at a time, carrying the state across chunks,
 * with the packed weights, on team (NULL: this thread). With output_last every chunk overwrites
 * y, so the last chunk's output is what remains. With check set, each chunk's outputs must be
 * finite. Returns 0 or an exit code, after printing the problem. */
static int run_chunks(const nnrt_model *m, nnrt_workers *team, const void *weights, void *state,
                      void *work, int64_t T, const char *x, char *y, int check, const char *xpath) {
    size_t esize = nnrt_dtype_size(m->dtype);
    size_t x_step = (size_t)m->batch * (size_t)m->input * esize;
    size_t y_step = m->output_last ? 0 : (size_t)m->batch * (size_t)m->output * esize;
    m->reset(state);
    for (int64_t t0 = 0; t0 < T; t0 += m->seq_len) {
        int n = T - t0 < m->seq_len ? (int)(T - t0) : m->seq_len;
        const char *xc = x + (size_t)t0 * x_step;
        char *yc = y + (size_t)t0 * y_step;
        int rc = team ? m->forward_mt(team, weights, state, work, n, xc, yc)
                      : m->forward(weights, state, work, n, xc, yc);
        if (rc != NNRT_OK) return runtime_error(rc, xpath);
        if (check && check_y_finite(m, T, t0, n, yc)) return EXIT_INPUT;
    }
    return 0;
}

/* forward -w W.safetensors -i X.npy -o Y.npy [--threads N] [--check-finite] */
static int cmd_forward(const nnrt_model *m, const char *const *vals) {
    const char *wpath = vals[FWD_WEIGHTS], *xpath = vals[FWD_IN], *ypath = vals[FWD_OUT];
    const int check = vals[FWD_CHECK] != NULL;
    const file_use files[] = {{"-w", wpath, 0}, {"-i", xpath, 0}, {"-o", ypath, 1}};
    int threads, status, rc;
    if ((status = parse_threads(vals[FWD_THREADS], &threads)) != 0) return status;
    if (threads > 1 && !m->forward_mt) {
        report("model %s has no forward_mt for this runtime: regenerate it", m->name);
        return EXIT_USAGE;
    }
    if ((status = check_files("forward", files, COUNT(files), NULL, NULL)) != 0) return status;
    nnrt_workers *team = NULL;
    nnrt_array x = {0}, y = {0};
    void *params = nnrt_alloc(m->params_bytes);
    void *weights = nnrt_alloc(m->weights_bytes);
    void *state = nnrt_alloc(m->state_bytes);
    void *work = nnrt_alloc(m->work_bytes);

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
    if (check && !all_finite(m->dtype, params, m->num_params)) {
        char what[256];
        report("%s: %s (--check-finite)", wpath,
               describe_nonfinite(m, params, "weight", what, sizeof what));
        status = EXIT_INPUT;
        goto done;
    }
    m->pack(params, weights);
    if ((rc = nnrt_npy_read(xpath, &x)) != NNRT_OK) {
        status = runtime_error(rc, xpath);
        goto done;
    }
    if ((status = check_input(m, xpath, &x)) != 0) goto done;
    if (check && (status = check_x_finite(m, xpath, &x)) != 0) goto done;
    if ((status = open_team(threads, &team)) != 0) goto done;

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
    if ((status = run_chunks(m, team, weights, state, work, T, x.data, y.data, check, xpath)) != 0)
        goto done;
    if ((rc = nnrt_npy_write(ypath, &y)) != NNRT_OK) status = runtime_error(rc, ypath);

done:
    nnrt_workers_destroy(team);
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
