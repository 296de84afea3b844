/* sine_train.c — training a generated model from C: the sine model learns to predict the next
 * sample of a sine wave from the samples so far.
 *
 * The model has two views of its weights: sine_params, the PyTorch tensors (what the optimizer
 * updates, what is saved), and sine_weights, the same packed for the forward kernels; sine_pack
 * derives the second from the first. Each update draws MICRO windows of SINE_SEQ_LEN samples of
 * sin(phase + 0.2 t), each with its own random phase, and for each one runs
 *
 *     sine_reset(state)                                   every window starts from h = c = 0
 *     sine_forward_train(weights, state, tape, WINDOW, x, y)
 *     sine_loss(WINDOW, y, target, &loss, dy)             target[t] = x[t + 1]: the next sample
 *     sine_backward(params, tape, x, dy, grads, NULL)     adds into grads
 *
 * then averages the accumulated gradients, clips their norm, takes one Adam step
 * (nnrt_optim_step) on the flat parameter array and packs the new parameters with sine_pack.
 * Progress on a fixed validation set is printed
 * a few times; the weights are saved at the end with sine_save (atomic: the file is replaced
 * only once complete). Deterministic: the same seed gives the same weights.
 *
 *   sine_train [--quick] [--seed N] [--steps N] -o WEIGHTS.safetensors
 */
#define _DEFAULT_SOURCE /* M_PI, clock_gettime */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sine.h"

#define WINDOW SINE_SEQ_LEN /* samples per training window */
#define OMEGA 0.2    /* radians per sample, as sine_app feeds */
#define MICRO 4      /* windows per update (gradient accumulation: the model's batch is 1) */
#define VALID 32     /* validation windows */
#define LR 5e-3      /* Adam learning rate, decayed linearly to LR/20 over the run */
#define CLIP 1.0     /* max gradient norm */
#define REPORTS 6    /* progress lines */
_Static_assert(SINE_BATCH == 1 && SINE_INPUT == 1 && SINE_OUTPUT == 1, "one sequence of one feature");

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One window: x[t] = sin(phase + OMEGA t), target[t] = x[t + 1]. */
static void window(double phase, sine_real *x, sine_target *target)
{
    for (int t = 0; t < WINDOW; t++) {
        x[t] = (sine_real)sin(phase + OMEGA * t);
        target[t] = (sine_target)sin(phase + OMEGA * (t + 1));
    }
}

/* Mean validation loss (MSE) over VALID windows with evenly spread phases, inference only. */
static double validate(const sine_weights *weights, sine_work *work)
{
    sine_real x[WINDOW], y[WINDOW];
    sine_target target[WINDOW];
    double sum = 0;
    for (int v = 0; v < VALID; v++) {
        window(2 * M_PI * (v + 0.5) / VALID, x, target);
        sine_state state;
        sine_reset(&state);
        double loss;
        if (sine_forward(weights, &state, work, WINDOW, x, y) != NNRT_OK ||
            sine_loss(WINDOW, y, target, &loss, NULL) != NNRT_OK)
            return NAN;
        sum += loss;
    }
    return sum / VALID;
}

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--quick] [--seed N] [--steps N] -o WEIGHTS.safetensors\n", argv0);
    return 2;
}

int main(int argc, char **argv)
{
    const char *out = NULL;
    unsigned long long seed = 1;
    int steps = 800;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) steps = 300;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
        else return usage(argv[0]);
    }
    if (!out || steps < 1) return usage(argv[0]);

    /* Caller-owned memory: parameters, gradients (the same struct type), packed weights, tape
     * and workspace. */
    sine_params *params = nnrt_alloc(sizeof *params);
    sine_params *grads = nnrt_alloc(sizeof *grads);
    sine_weights *weights = nnrt_alloc(sizeof *weights);
    sine_tape *tape = nnrt_alloc(sizeof *tape);
    sine_work *work = nnrt_alloc(sizeof *work);
    if (!params || !grads || !weights || !tape || !work) {
        fprintf(stderr, "sine_train: out of memory\n");
        return 1;
    }
    sine_init(params, seed);
    sine_pack(params, weights);

    /* Adam over the flat parameter array: sine_params is sine_real[SINE_NUM_PARAMS]. */
    nnrt_optim optim;
    nnrt_optim_config config = nnrt_optim_defaults(NNRT_OPT_ADAM);
    config.lr = LR;
    if (nnrt_optim_init(&optim, &config, sine_model.dtype, SINE_NUM_PARAMS) != NNRT_OK) {
        fprintf(stderr, "sine_train: %s\n", nnrt_last_error());
        return 1;
    }

    printf("training sine (%d parameters): %d updates of %d windows x %d steps, Adam lr %g, seed %llu\n",
           SINE_NUM_PARAMS, steps, MICRO, WINDOW, LR, seed);
    printf("  update   train mse   valid mse   grad norm   time\n");
    nnrt_rng rng;
    nnrt_rng_seed(&rng, seed);
    sine_real x[WINDOW], y[WINDOW], dy[WINDOW];
    sine_target target[WINDOW];
    double start = now_s(), train_sum = 0, norm = 0;
    int train_count = 0;
    for (int step = 1; step <= steps; step++) {
        sine_zero_grad(grads);
        for (int m = 0; m < MICRO; m++) {
            window(2 * M_PI * nnrt_rng_uniform(&rng), x, target);
            sine_state state;
            sine_reset(&state);
            double loss;
            if (sine_forward_train(weights, &state, tape, WINDOW, x, y) != NNRT_OK ||
                sine_loss(WINDOW, y, target, &loss, dy) != NNRT_OK ||
                sine_backward(params, tape, x, dy, grads, NULL) != NNRT_OK) {
                fprintf(stderr, "sine_train: %s\n", nnrt_last_error());
                return 1;
            }
            train_sum += loss;
            train_count++;
        }
        /* The accumulated gradient is a sum over MICRO windows: make it their mean. */
        sine_real *g = (sine_real *)grads;
        for (int i = 0; i < SINE_NUM_PARAMS; i++) g[i] /= MICRO;
        norm = nnrt_clip_grad_norm(sine_model.dtype, grads, SINE_NUM_PARAMS, CLIP);
        optim.config.lr = LR * (1 - 0.95 * (step - 1) / steps); /* read at every step */
        nnrt_optim_step(&optim, params, grads);
        sine_pack(params, weights); /* the forward reads the packed copy */

        if (step * REPORTS / steps != (step - 1) * REPORTS / steps) { /* REPORTS lines, the last at the end */
            printf("  %6d %11.6f %11.6f %11.4f %6.1fs\n", step, train_sum / train_count, validate(weights, work), norm,
                   now_s() - start);
            train_sum = 0;
            train_count = 0;
        }
    }
    double final = validate(weights, work);
    printf("final validation mse %.6f (rms %.4f) after %d updates in %.1f s\n", final, sqrt(final), steps,
           now_s() - start);
    if (!isfinite(final)) {
        fprintf(stderr, "sine_train: training diverged\n");
        return 1;
    }

    if (sine_save(params, out) != NNRT_OK) {
        fprintf(stderr, "sine_train: %s\n", nnrt_last_error());
        return 1;
    }
    printf("saved %s\n", out);
    nnrt_optim_free(&optim);
    nnrt_free(params);
    nnrt_free(grads);
    nnrt_free(weights);
    nnrt_free(tape);
    nnrt_free(work);
    return 0;
}
