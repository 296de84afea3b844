/* nnrt_driver_grad.c — the driver's grad command: one forward and backward, the gradients. */
#include "nnrt_driver.h"

#include <inttypes.h>
#include <math.h>

enum { GRAD_WEIGHTS, GRAD_IN, GRAD_TARGET, GRAD_OUT, GRAD_THREADS };
static const opt_spec grad_opts[] = {
    [GRAD_WEIGHTS] = {"-w", "W.safetensors", 1, "weights file to read"},
    [GRAD_IN] = {"-i", "X.npy", 1, "input sequences, time-major, T <= seq_len"},
    [GRAD_TARGET] = {"-t", "TARGET.npy", 1, "targets of the loss"},
    [GRAD_OUT] = {"-o", "G.safetensors", 1, "gradients to write (the weights' names and shapes)"},
    [GRAD_THREADS] = {"--threads", "N", 0,
                      "threads of the team the forward and backward run on (default 1; the same "
                      "numbers for any N)"},
};

static void explain_grad(const nnrt_model *m, FILE *out) {
    fprintf(out, "X is %s [T, %d, %d] with 1 <= T <= %d: one sequence from the zero state.\n",
            nnrt_dtype_name(m->dtype), m->batch, m->input, m->seq_len);
    explain_target(m, out, "T");
    fprintf(out,
            "Prints \"loss <value>\" (the mean loss) on stdout; G holds dloss/dW under the\n"
            "weights' tensor names and shapes. A NaN or infinite loss or gradient is an error\n"
            "(exit 1) that names the first bad gradient element; nothing is written.\n");
}

/* grad -w W.safetensors -i X.npy -t TARGET.npy -o G.safetensors [--threads N] */
static int cmd_grad(const nnrt_model *m, const char *const *vals) {
    const char *xpath = vals[GRAD_IN], *gpath = vals[GRAD_OUT];
    const file_use files[] = {
        {"-w", vals[GRAD_WEIGHTS], 0}, {"-i", xpath, 0}, {"-t", vals[GRAD_TARGET], 0}, {"-o", gpath, 1}};
    session s;
    double loss;
    int rc, threads, status = parse_threads(vals[GRAD_THREADS], &threads);
    if (status == 0) status = check_files("grad", files, COUNT(files), NULL, NULL);
    if (status != 0) return status;
    status = session_open(m, vals[GRAD_WEIGHTS], xpath, vals[GRAD_TARGET], threads, &s);
    if (status != 0) goto done;
    if (s.d.T > m->seq_len) {
        report("%s: T = %" PRId64 " steps is more than seq_len %d: grad takes one sequence of at "
               "most %d steps; use 'train' for truncated BPTT over a longer stream",
               xpath, s.d.T, m->seq_len, m->seq_len);
        status = EXIT_INPUT;
        goto done;
    }
    m->reset(s.state);
    if ((rc = run_chunk(&s, 0, 1, &loss, NULL)) != NNRT_OK) {
        status = runtime_error(rc, xpath);
        goto done;
    }
    if (!isfinite(loss)) {
        report("loss is %s", nonfinite_name(loss));
        status = EXIT_INPUT;
        goto done;
    }
    if (!all_finite(m->dtype, s.grads, m->num_params)) {
        char what[256];
        report("%s (loss %.9g)", describe_nonfinite(m, s.grads, "the gradient of", what, sizeof what),
               loss);
        status = EXIT_INPUT;
        goto done;
    }
    if ((rc = nnrt_model_save(m, s.grads, gpath)) != NNRT_OK) {
        status = runtime_error(rc, gpath);
        goto done;
    }
    printf("loss %.9g\n", loss);
done:
    session_close(&s);
    return status;
}

_Static_assert(COUNT(grad_opts) <= MAX_OPTIONS, "raise MAX_OPTIONS");

const command cmd_grad_command = {
    "grad",
    "one forward and backward from the zero state: print the loss, write the gradients",
    grad_opts, COUNT(grad_opts), cmd_grad, explain_grad,
};
