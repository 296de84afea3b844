/* nnrt_loss.c — mean-reduced losses as PyTorch computes them, with their gradients. */
#include <math.h>

#include "nnrt_internal.h"

/* One element type at a time: the loops are the same for float and double. */
#define DEFINE_LOSSES(real, suffix)                                                                  \
    static double mse_##suffix(size_t n, const real *y, const real *t, real *dy)                     \
    {                                                                                                \
        double sum = 0;                                                                              \
        for (size_t i = 0; i < n; i++) {                                                             \
            const real diff = y[i] - t[i];                                                           \
            sum += (double)diff * diff;                                                              \
            if (dy) dy[i] = (real)(2.0 / (double)n) * diff;                                          \
        }                                                                                            \
        return sum / (double)n;                                                                      \
    }                                                                                                \
    /* BCEWithLogits: max(y, 0) - y t + log(1 + exp(-|y|)), stable for any logit. */                \
    static double bce_##suffix(size_t n, const real *y, const real *t, real *dy)                     \
    {                                                                                                \
        double sum = 0;                                                                              \
        for (size_t i = 0; i < n; i++) {                                                             \
            const double v = y[i], target = t[i];                                                    \
            sum += (v > 0 ? v : 0) - v * target + log1p(exp(-fabs(v)));                              \
            if (dy) dy[i] = (real)((1.0 / (1.0 + exp(-v)) - target) / (double)n);                    \
        }                                                                                            \
        return sum / (double)n;                                                                      \
    }                                                                                                \
    /* CrossEntropy with class indices: logsumexp(y_row) - y_row[target], softmax - onehot. */       \
    static int cross_entropy_##suffix(size_t rows, int classes, const real *y, const int32_t *t,     \
                                      real *dy, double *loss)                                        \
    {                                                                                                \
        double sum = 0;                                                                              \
        for (size_t r = 0; r < rows; r++) {                                                          \
            const real *logits = y + r * (size_t)classes;                                            \
            if (t[r] < 0 || t[r] >= classes)                                                         \
                return nnrt_fail(NNRT_ERR_ARG, "loss: target[%zu] = %d is not a class index in 0..%d", \
                                 r, (int)t[r], classes - 1);                                         \
            double max = logits[0];                                                                  \
            for (int k = 1; k < classes; k++) max = fmax(max, logits[k]);                            \
            double total = 0;                                                                        \
            for (int k = 0; k < classes; k++) total += exp(logits[k] - max);                         \
            const double log_total = log(total);                                                     \
            sum += max + log_total - logits[t[r]];                                                   \
            if (dy) {                                                                                \
                real *d = dy + r * (size_t)classes;                                                  \
                for (int k = 0; k < classes; k++)                                                    \
                    d[k] = (real)((exp(logits[k] - max - log_total) - (k == t[r])) / (double)rows);  \
            }                                                                                        \
        }                                                                                            \
        *loss = sum / (double)rows;                                                                  \
        return NNRT_OK;                                                                              \
    }

DEFINE_LOSSES(float, f32)
DEFINE_LOSSES(double, f64)

int nnrt_loss(int kind, nnrt_dtype dtype, size_t rows, int outputs, const void *y, const void *target,
              double *loss, void *dy)
{
    if (dtype != NNRT_F32 && dtype != NNRT_F64)
        return nnrt_fail(NNRT_ERR_DTYPE, "loss: outputs must be float32 or float64, got %s", nnrt_dtype_name(dtype));
    if (rows == 0 || outputs < 1) return nnrt_fail(NNRT_ERR_ARG, "loss: empty output (%zu rows of %d)", rows, outputs);
    const size_t n = rows * (size_t)outputs;
    const int f32 = dtype == NNRT_F32;
    switch (kind) {
    case NNRT_LOSS_MSE:
        *loss = f32 ? mse_f32(n, y, target, dy) : mse_f64(n, y, target, dy);
        return NNRT_OK;
    case NNRT_LOSS_BCE:
        *loss = f32 ? bce_f32(n, y, target, dy) : bce_f64(n, y, target, dy);
        return NNRT_OK;
    case NNRT_LOSS_CROSS_ENTROPY:
        return f32 ? cross_entropy_f32(rows, outputs, y, target, dy, loss)
                   : cross_entropy_f64(rows, outputs, y, target, dy, loss);
    default:
        return nnrt_fail(NNRT_ERR_ARG, "loss: unknown loss kind %d", kind);
    }
}
