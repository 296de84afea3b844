/* sine_app.c — how an application embeds a generated model: weights from safetensors, the
 * streaming step API in a loop (one sample in, one prediction out, no allocation), and the
 * sequence forward over the same samples for comparison.
 *
 *   sine_app WEIGHTS.safetensors
 */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "sine.h"

#define STEPS SINE_SEQ_LEN

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s WEIGHTS.safetensors\n", argv[0]);
        return 2;
    }
    /* Caller-owned memory: the parameters and the workspace are large, so they go on the heap. */
    sine_params *params = nnrt_alloc(sizeof *params);
    sine_work *work = nnrt_alloc(sizeof *work);
    if (!params || !work) {
        fprintf(stderr, "sine_app: out of memory\n");
        return 1;
    }
    if (sine_load(params, argv[1]) != NNRT_OK) {
        fprintf(stderr, "sine_app: %s\n", nnrt_last_error());
        return 1;
    }

    /* A sine wave sampled at 0.2 rad per step; the model is asked for the next sample. */
    sine_real x[STEPS], y_step[STEPS], y_sequence[STEPS];
    for (int t = 0; t < STEPS; t++) x[t] = (sine_real)sin(0.2 * t);

    /* Streaming: one timestep per call, state carried in `state`. */
    sine_state state;
    sine_reset(&state);
    double start = now_us();
    for (int t = 0; t < STEPS; t++) sine_step(params, &state, &x[t], &y_step[t]);
    double step_us = (now_us() - start) / STEPS;

    /* The same samples as one sequence. */
    sine_reset(&state);
    if (sine_forward(params, &state, work, STEPS, x, y_sequence) != NNRT_OK) {
        fprintf(stderr, "sine_app: %s\n", nnrt_last_error());
        return 1;
    }

    printf("model sine, %d parameters, weights %s\n\n", SINE_NUM_PARAMS, argv[1]);
    printf("   t      input   next (truth)   prediction   |error|\n");
    double max_gap = 0, sum_sq = 0;
    for (int t = 0; t < STEPS; t++) {
        double truth = sin(0.2 * (t + 1));
        double err = fabs(y_step[t] - truth);
        sum_sq += err * err;
        double gap = fabs(y_step[t] - y_sequence[t]);
        if (gap > max_gap) max_gap = gap;
        if (t % 8 == 7) printf("%4d %10.4f %14.4f %12.4f %9.4f\n", t, x[t], truth, y_step[t], err);
    }
    printf("\nRMS error of the prediction: %.4f\n", sqrt(sum_sq / STEPS));
    printf("streaming step and sequence forward agree to %.2g\n", max_gap);
    printf("one streaming step: %.2f us\n", step_us);
    nnrt_free(params);
    nnrt_free(work);
    return 0;
}
