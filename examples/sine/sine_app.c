/* sine_app.c — how an application embeds a generated model: weights from safetensors, packed
 * once for the kernels (sine_pack), the streaming step API in a loop (one sample in, one
 * prediction of the next sample out, no allocation), and the sequence forward over the same
 * samples for comparison. The stream is STEPS samples long, longer than the model's seq_len:
 * the step API has no length limit, and the sequence forward covers it in chunks of
 * SINE_SEQ_LEN, carrying the state from one to the next.
 *
 *   sine_app WEIGHTS.safetensors [PREDICTIONS.csv]
 *
 * The CSV has one row per step: t, input x[t], truth x[t + 1], prediction, |error|.
 */
#define _DEFAULT_SOURCE /* clock_gettime */
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "sine.h"

#define STEPS (2 * SINE_SEQ_LEN)
#define OMEGA 0.2 /* radians per sample */

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s WEIGHTS.safetensors [PREDICTIONS.csv]\n", argv[0]);
        return 2;
    }
    /* Caller-owned memory: parameters, packed weights and workspace are large: on the heap. */
    sine_params *params = nnrt_alloc(sizeof *params);
    sine_weights *weights = nnrt_alloc(sizeof *weights);
    sine_work *work = nnrt_alloc(sizeof *work);
    if (!params || !weights || !work) {
        fprintf(stderr, "sine_app: out of memory\n");
        return 1;
    }
    if (sine_load(params, argv[1]) != NNRT_OK) {
        fprintf(stderr, "sine_app: %s\n", nnrt_last_error());
        return 1;
    }
    sine_pack(params, weights); /* the PyTorch tensors -> the kernels' layout, once */

    /* A sine wave sampled at OMEGA rad per step; the model is asked for the next sample. */
    sine_real x[STEPS], y_step[STEPS], y_sequence[STEPS];
    for (int t = 0; t < STEPS; t++) x[t] = (sine_real)sin(OMEGA * t);

    /* Streaming: one timestep per call, state carried in `state`. */
    sine_state state;
    sine_reset(&state);
    double start = now_us();
    for (int t = 0; t < STEPS; t++) sine_step(weights, &state, &x[t], &y_step[t]);
    double step_us = (now_us() - start) / STEPS;

    /* The same samples as sequences of SINE_SEQ_LEN steps, the state carried across calls. */
    sine_reset(&state);
    for (int t0 = 0; t0 < STEPS; t0 += SINE_SEQ_LEN) {
        int n = STEPS - t0 < SINE_SEQ_LEN ? STEPS - t0 : SINE_SEQ_LEN;
        if (sine_forward(weights, &state, work, n, &x[t0], &y_sequence[t0]) != NNRT_OK) {
            fprintf(stderr, "sine_app: %s\n", nnrt_last_error());
            return 1;
        }
    }

    FILE *csv = NULL;
    if (argc == 3 && (csv = fopen(argv[2], "w")) == NULL) {
        perror(argv[2]);
        return 1;
    }
    if (csv) fprintf(csv, "t,input,truth,prediction,abs_error\n");
    printf("model sine, %d parameters, weights %s: %d steps of sin(%.1f t), streamed\n\n", SINE_NUM_PARAMS,
           argv[1], STEPS, OMEGA);
    printf("   t      input   next (truth)   prediction   |error|\n");
    double max_gap = 0, sum_sq = 0, sum_sq_late = 0;
    for (int t = 0; t < STEPS; t++) {
        double truth = sin(OMEGA * (t + 1));
        double err = fabs(y_step[t] - truth);
        sum_sq += err * err;
        if (t >= 8) sum_sq_late += err * err;
        double gap = fabs(y_step[t] - y_sequence[t]);
        if (gap > max_gap) max_gap = gap;
        if (t % 12 == 0 || t == STEPS - 1)
            printf("%4d %10.4f %14.4f %12.4f %9.4f\n", t, x[t], truth, y_step[t], err);
        if (csv) fprintf(csv, "%d,%.6f,%.6f,%.6f,%.6f\n", t, x[t], truth, y_step[t], err);
    }
    if (csv && fclose(csv) != 0) {
        perror(argv[2]);
        return 1;
    }
    /* The first few predictions are guesses: one sample does not tell where on the wave we are. */
    printf("\nRMS error of the prediction: %.4f from step 8 on, %.4f over all %d steps\n",
           sqrt(sum_sq_late / (STEPS - 8)), sqrt(sum_sq / STEPS), STEPS);
    printf("streaming step and sequence forward agree to %.2g\n", max_gap);
    printf("one streaming step: %.2f us\n", step_us);
    if (csv) printf("predictions: %s\n", argv[2]);
    nnrt_free(params);
    nnrt_free(weights);
    nnrt_free(work);
    return 0;
}
