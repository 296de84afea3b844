/* classify_app.c — a many-to-one classifier embedded in an application: four sensor streams are
 * fed sample by sample through the step API (batch 4, one call per timestep); after the last
 * sample each stream's logits give its class probabilities.
 *
 *   classify_app WEIGHTS.safetensors
 */
#include <math.h>
#include <stdio.h>

#include "classify.h"

static const char *const CLASSES[CLASSIFY_OUTPUT] = {"sine", "square", "sawtooth"};

/* Sample t of stream b: channel c of a shape with its own phase, plus a little noise. */
static classify_real sample(int shape, int t, int c, nnrt_rng *rng)
{
    double phase = 0.3 * t + 0.7 * c;
    double v = shape == 0 ? sin(phase) : shape == 1 ? (sin(phase) >= 0 ? 1 : -1) : fmod(phase, 2 * M_PI) / M_PI - 1;
    return (classify_real)(v + 0.05 * nnrt_rng_normal(rng));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s WEIGHTS.safetensors\n", argv[0]);
        return 2;
    }
    static classify_params params;
    static classify_weights weights;
    if (classify_load(&params, argv[1]) != NNRT_OK) {
        fprintf(stderr, "classify_app: %s\n", nnrt_last_error());
        return 1;
    }
    classify_pack(&params, &weights); /* the PyTorch tensors -> the kernels' layout */
    nnrt_rng rng;
    nnrt_rng_seed(&rng, 7);
    const int shapes[CLASSIFY_BATCH] = {0, 1, 2, 0};
    classify_state state;
    classify_reset(&state);
    classify_real logits[CLASSIFY_BATCH][CLASSIFY_OUTPUT];
    for (int t = 0; t < CLASSIFY_SEQ_LEN; t++) {
        classify_real x[CLASSIFY_BATCH][CLASSIFY_INPUT];
        for (int b = 0; b < CLASSIFY_BATCH; b++)
            for (int c = 0; c < CLASSIFY_INPUT; c++) x[b][c] = sample(shapes[b], t, c, &rng);
        classify_step(&weights, &state, &x[0][0], &logits[0][0]);
    }
    printf("stream  truth      p(sine)  p(square)  p(sawtooth)\n");
    for (int b = 0; b < CLASSIFY_BATCH; b++) {
        double max = logits[b][0], sum = 0, p[CLASSIFY_OUTPUT];
        for (int k = 1; k < CLASSIFY_OUTPUT; k++) max = fmax(max, logits[b][k]);
        for (int k = 0; k < CLASSIFY_OUTPUT; k++) sum += p[k] = exp(logits[b][k] - max);
        printf("%6d  %-9s %8.3f %10.3f %12.3f\n", b, CLASSES[shapes[b]], p[0] / sum, p[1] / sum, p[2] / sum);
    }
    return 0;
}
