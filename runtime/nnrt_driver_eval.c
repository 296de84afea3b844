/* nnrt_driver_eval.c — the driver's eval command: the loss of weights on data, no update. */
#include "nnrt_driver.h"

#include <jansson.h>

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

enum { EVAL_WEIGHTS, EVAL_IN, EVAL_TARGET, EVAL_THREADS, EVAL_JSON };
static const opt_spec eval_opts[] = {
    [EVAL_WEIGHTS] = {"-w", "W.safetensors", 1, "weights file to read"},
    [EVAL_IN] = {"-i", "X.npy", 1, "input sequences, time-major; T > seq_len is one long stream"},
    [EVAL_TARGET] = {"-t", "TARGET.npy", 1, "targets of the loss"},
    [EVAL_THREADS] = {"--threads", "N", 0,
                      "threads of the team the forward runs on (default 1; the same numbers for "
                      "any N)"},
    [EVAL_JSON] = {"--json", NULL, 0, "print one JSON object instead of the loss line"},
};

static void explain_eval(const nnrt_model *m, FILE *out) {
    fprintf(out, "X is %s [T, %d, %d], T >= 1.\n", nnrt_dtype_name(m->dtype), m->batch, m->input);
    explain_target(m, out, "T");
    fprintf(out,
            "The loss of W over all of X from the zero state, as train's final loss is taken:\n"
            "T > %d is one stream in chunks of %d steps, the state carried from chunk to chunk,\n"
            "and the loss the mean over all its terms. Nothing is written; a NaN or infinite loss\n"
            "is an error (exit 1).\n"
            "\n"
            "Prints \"loss <value>\" on stdout. --json prints one object instead: model, T,\n"
            "loss (the mean over all of X, 17 significant digits), and chunks, an array of\n"
            "{\"steps\": n, \"loss\": mean over the chunk} in the order of X, so that the loss over\n"
            "any run of whole chunks (a held-out tail, say) is their steps-weighted mean.\n",
            m->seq_len, m->seq_len);
}

/* The figures as one JSON object on one line. Returns 0 or EXIT_USAGE (out of memory). */
static int eval_print_json(const nnrt_model *m, int64_t T, double loss, const double *losses,
                           const int *steps, int64_t nchunks) {
    json_t *o = json_object(), *chunks = json_array();
    int failed = o == NULL || chunks == NULL;
    failed |= json_object_set_new(o, "model", json_string(m->name)) != 0;
    failed |= json_object_set_new(o, "T", json_integer(T)) != 0;
    failed |= json_object_set_new(o, "loss", json_real(loss)) != 0;
    for (int64_t c = 0; c < nchunks && !failed; c++) {
        json_t *e = json_object();
        failed |= e == NULL || json_object_set_new(e, "steps", json_integer(steps[c])) != 0 ||
                  json_object_set_new(e, "loss", json_real(losses[c])) != 0 ||
                  json_array_append_new(chunks, e) != 0;
    }
    failed |= json_object_set(o, "chunks", chunks) != 0;
    json_decref(chunks);
    return print_json(o, failed, 17);
}

/* eval -w W.safetensors -i X.npy -t TARGET.npy [--threads N] [--json] */
static int cmd_eval(const nnrt_model *m, const char *const *vals) {
    const char *xpath = vals[EVAL_IN];
    const file_use files[] = {
        {"-w", vals[EVAL_WEIGHTS], 0}, {"-i", xpath, 0}, {"-t", vals[EVAL_TARGET], 0}};
    session s;
    double loss, *losses = NULL;
    int *steps = NULL;
    int rc, threads, status = parse_threads(vals[EVAL_THREADS], &threads);
    if (status == 0) status = check_files("eval", files, COUNT(files), NULL, NULL);
    if (status != 0) return status;
    status = session_open(m, vals[EVAL_WEIGHTS], xpath, vals[EVAL_TARGET], threads, &s);
    if (status == 0) status = session_check_stream(&s, xpath);
    if (status != 0) goto done;
    losses = malloc((size_t)s.nchunks * sizeof *losses);
    steps = malloc((size_t)s.nchunks * sizeof *steps);
    if (!losses || !steps) {
        report("out of memory (%" PRId64 " chunks)", s.nchunks);
        status = EXIT_USAGE;
        goto done;
    }
    if ((rc = evaluate_chunks(&s, &loss, losses, steps)) != NNRT_OK) {
        status = runtime_error(rc, xpath);
        goto done;
    }
    if (!isfinite(loss)) {
        report("loss is %s", nonfinite_name(loss));
        status = EXIT_INPUT;
        goto done;
    }
    if (vals[EVAL_JSON])
        status = eval_print_json(m, s.d.T, loss, losses, steps, s.nchunks);
    else
        printf("loss %.9g\n", loss);
done:
    free(steps);
    free(losses);
    session_close(&s);
    return status;
}

_Static_assert(COUNT(eval_opts) <= MAX_OPTIONS, "raise MAX_OPTIONS");

const command cmd_eval_command = {
    "eval",
    "the loss of the weights on X and TARGET, as train's final loss; no update, no file written",
    eval_opts, COUNT(eval_opts), cmd_eval, explain_eval,
};
