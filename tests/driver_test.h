/* driver_test.h — what the driver's suites share (test_driver*.c, defined in driver_test.c).
 *
 * The hand-written models are tiny and linear so every expected value can be worked out by hand:
 *   h_t = W x_t + b + h_{t-1},  y_t = h_t        (input 2, output 2, batch 2, seq_len 3)
 * with W = rnn.weight_ih_l0 [2, 2] and b = rnn.bias_ih_l0 [2]. Variants: f32 with outputs at
 * every step, f32 with the output after the last step, f64, one whose forward fails on its
 * second call, and one with seq_len 16. Each forward logs the T it was called with, so chunking
 * is visible.
 *
 * The driver runs in-process with argv arrays; files live in a mkdtemp directory per test
 * (tcase() sets up the fixture); stdout and stderr are captured to assert on messages. */
#ifndef DRIVER_TEST_H
#define DRIVER_TEST_H

#include <check.h>
#include <stdint.h>
#include <string.h>

#include "nnrt.h"

/* ---- The tiny models ---------------------------------------------------------------------- */

enum { TINY_I = 2, TINY_O = 2, TINY_B = 2, TINY_SEQ = 3 };
enum { TINY_W = 0, TINY_BIAS = 4, TINY_NPARAMS = 6 }; /* offsets in the flat parameter array */

extern int fwd_calls[64]; /* T of each forward call since the last reset of the log */
extern int fwd_ncalls;
extern const nnrt_model tiny, tiny_last, tiny64, tiny_fails, tiny_long;

/* Element i of an f32 (f64 set) array, as a double. */
double ld(const void *p, size_t i, int f64);
/* The recurrence in double over all T steps at once: y[T][B][O]. */
void reference(const double *params, int T, const double *x, double *y);

/* ---- Files and running the driver ------------------------------------------------------------ */

extern char tmpdir[64];
extern char g_out[8192], g_err[8192]; /* what the last run printed */
extern int g_pty; /* when >= 0: a pseudo-terminal master; run() gives stderr its slave */

/* A test case whose tests each get a fresh test directory. */
TCase *tcase(const char *name);
/* A path inside the test directory; the last 16 results stay valid. */
const char *P(const char *name);
/* Names in the test directory, sorted, joined with spaces: shows stray temporaries. */
const char *listing(void);
int exists(const char *path);
/* Runs `tiny ARGS...` (NULL-terminated) with stdout and stderr captured into g_out and g_err;
 * returns the exit code. */
int run(const nnrt_model *m, ...);
/* Writes an array of dtype dt (any of the four) with the given shape from double values. */
void write_npy(const char *path, nnrt_dtype dt, int ndim, const int64_t *shape, const double *vals);
/* x of shape [T][B][I] (dtype dt) with deterministic values in [-1, 1), returned in xs. */
void write_x(const char *path, nnrt_dtype dt, int T, double *xs);
/* Weights W = [[1, 2], [3, 4]], b = [0.5, -0.5] written by hand, in dtype dt. */
extern const double known_params[TINY_NPARAMS];
/* Two steps of input [2][B][I] and what the known weights make of them, [2][B][O]. */
extern const double known_x[8], known_y[8];
void write_known_weights(const char *path, nnrt_dtype dt);
/* Reads path, which must have the given dtype and shape, and compares it with ref using
 * |got - ref| <= atol + rtol*|ref|; the first mismatches are reported as [t][b][o]. */
void check_npy(const char *path, nnrt_dtype dt, int ndim, const int64_t *shape, const double *ref,
               double atol, double rtol);
int file_equals(const char *path, const char *content);
void write_text(const char *path, const char *content);

/* `tiny forward -w W -i X -o Y` with the three files in the test directory. */
#define FORWARD(m, w, x, y) run(m, "forward", "-w", P(w), "-i", P(x), "-o", P(y), NULL)

#define ERR_PREFIX "tiny: error: "
#define ASSERT_ERR_STARTS(text)                                                                    \
    ck_assert_msg(strncmp(g_err, ERR_PREFIX text, strlen(ERR_PREFIX text)) == 0, "stderr: %s",     \
                  g_err)
#define ASSERT_ERR_HAS(text) ck_assert_msg(strstr(g_err, text) != NULL, "stderr: %s", g_err)

/* `M grad -w W -i X -t T -o G` with the files in the test directory. */
#define GRAD(m, w, x, t, g) run(m, "grad", "-w", P(w), "-i", P(x), "-t", P(t), "-o", P(g), NULL)

/* ---- Generated models: grad, train and bench ------------------------------------------------
 * Real models from the test registry (tests/specs/grad are f64 with every loss and output_at;
 * tests/specs/forward adds f32). Expected values come from the model's descriptor directly:
 * the driver must do exactly what a program calling the descriptor would do, bit for bit. */

const nnrt_model *model_named(const char *name);
int is_ce(const nnrt_model *m);
extern uint64_t lcg;
double urand(void); /* [0, 1) from lcg */
/* X [T][B][I] in the model's dtype, uniform in [-1, 1). */
void write_model_x(const nnrt_model *m, const char *path, int64_t T, uint64_t seed);
/* The shape of the target for T steps: [T][B][O], [T][B], [B][O] or [B]. */
int target_shape(const nnrt_model *m, int64_t T, int64_t *shape, size_t *count);
/* A target for T steps: class indices of dtype cdt for cross_entropy, otherwise the model's
 * dtype, uniform in [-1, 1) for mse and [0, 1) for bce. */
void write_model_target(const nnrt_model *m, const char *path, int64_t T, nnrt_dtype cdt,
                        uint64_t seed);
nnrt_array read_npy(const char *path);
/* The target as the loss takes it: int32 class indices (converted from int64), else as read. */
void *loss_target(const nnrt_model *m, const nnrt_array *t);
void *read_params(const nnrt_model *m, const char *path);
/* The whole file; *size receives its length. Free with free(). */
char *read_bytes(const char *path, size_t *size);
int same_bytes(const char *a, const char *b);

/* What the descriptor does by hand: the buffers of one chunk. */
typedef struct hand {
    const nnrt_model *m;
    void *weights, *grads, *state, *tape, *y, *dy;
    int64_t T, nchunks;
    size_t x_step, t_step;
} hand;

hand hand_open(const nnrt_model *m, int64_t T);
void hand_close(hand *h);
/* Chunk c from the current state: pack, forward_train, loss, and (with backward) the gradient
 * into the zeroed h->grads. Returns the loss; *steps receives the chunk's length. */
double hand_chunk(hand *h, const void *params, const char *x, const char *target, int64_t c,
                  int backward, int *steps);
/* The loss of params over all of X from the zero state, chunk by chunk: the mean over all terms. */
double hand_eval(hand *h, const void *params, const char *x, const char *target);
/* Training by hand as DESIGN.md describes it: one optimizer step per chunk, the state carried
 * from chunk to chunk, the zero state when the stream wraps. Trains params in place and
 * returns the final loss over all of X. */
double hand_train(const nnrt_model *m, void *params, const char *xpath, const char *tpath,
                  int64_t steps, const nnrt_optim_config *cfg, double clip);
/* "<prefix><value>\n" as the driver prints a loss. */
const char *loss_line(const char *prefix, double loss);
/* `M init --seed S -o W` */
void init_weights(const nnrt_model *m, const char *w, const char *seed);

#endif /* DRIVER_TEST_H */
