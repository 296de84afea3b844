/* nnrt.h — the rnnc runtime: the small library every generated model links against.
 *
 * The header is the manual. Conventions:
 *  - Public names are nnrt_*, private ones nnrt__*, macros NNRT_*.
 *  - Functions that can fail return an NNRT_* result code; NNRT_OK is 0. On failure a detailed,
 *    human-readable message (naming the file and the tensor or field) is kept per thread and
 *    returned by nnrt_last_error(). Library code never prints and never exits.
 *  - Memory passed in stays owned by the caller. Memory the runtime hands out is released with
 *    the matching *_free function named at the allocating call.
 *  - Every file the runtime writes is written atomically: to a temporary file in the same
 *    directory, flushed, synced, then renamed over the target. A failed write leaves the
 *    previous file untouched and no temporary behind; so does a process killed mid-write
 *    (see nnrt_atomic_open). A target that exists must be a regular file (or a symbolic link
 *    to one, which is written through and stays a link): a device, FIFO or socket is refused.
 */
#ifndef NNRT_H
#define NNRT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever the generated code's view of this header changes; generated sources check it
 * at compile time. */
#define NNRT_ABI_VERSION 4

/* ---- Result codes ---------------------------------------------------------------------- */
#define NNRT_OK 0          /* success */
#define NNRT_ERR_NOMEM 1   /* out of memory */
#define NNRT_ERR_IO 2      /* a file could not be opened, read, written or renamed */
#define NNRT_ERR_FORMAT 3  /* a file is malformed, truncated or hostile */
#define NNRT_ERR_DTYPE 4   /* a tensor or array has the wrong element type */
#define NNRT_ERR_SHAPE 5   /* a tensor or array has the wrong shape */
#define NNRT_ERR_NAME 6    /* a tensor is missing, unexpected or duplicated */
#define NNRT_ERR_ARG 7     /* an argument is out of range (e.g. T outside 1..seq_len) */
#define NNRT_ERR_NUMERIC 8 /* a NaN or infinity where a finite number is required */

/* Short fixed text for a result code ("out of memory"); never NULL. */
const char *nnrt_strerror(int code);
/* The detailed message of the last failing call on this thread, e.g.
 * "w.safetensors: tensor rnn.weight_hh_l0: expected shape [128, 32], found [128, 16]".
 * Empty string when nothing has failed yet. Valid until the next runtime call on this thread. */
const char *nnrt_last_error(void);
/* Sets the thread's detailed message (printf-style) and returns code; used by the runtime and
 * by generated code to report argument errors. */
int nnrt_fail(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- Aligned memory -------------------------------------------------------------------- */
#define NNRT_ALIGN 64 /* bytes: one cache line, one AVX-512 vector */
/* n elements of type, rounded up to whole NNRT_ALIGN blocks: the length of each array in a
 * generated work or tape struct, so that every array starts on a cache line of its own when the
 * struct does (nnrt_alloc). A vector load then never straddles two lines. */
#define NNRT_ALIGNED_COUNT(type, n) ((((n) * sizeof(type) + NNRT_ALIGN - 1) / NNRT_ALIGN) * NNRT_ALIGN / sizeof(type))
/* Zero-filled block aligned to NNRT_ALIGN; NULL when out of memory. nnrt_alloc(0) returns a
 * valid, freeable pointer. Release with nnrt_free (NULL is accepted). */
void *nnrt_alloc(size_t bytes);
void nnrt_free(void *p);

/* ---- Deterministic random numbers ---------------------------------------------------------
 * xoshiro256** seeded through splitmix64: the same seed gives the same stream on every machine. */
typedef struct nnrt_rng {
    uint64_t s[4];
} nnrt_rng;
void nnrt_rng_seed(nnrt_rng *rng, uint64_t seed);
uint64_t nnrt_rng_u64(nnrt_rng *rng);
double nnrt_rng_uniform(nnrt_rng *rng); /* [0, 1), 53 random bits */
double nnrt_rng_normal(nnrt_rng *rng);  /* standard normal */
/* Fill n values with U(lo, hi), drawing one nnrt_rng_uniform per value in index order. */
void nnrt_fill_uniform_f32(float *dst, size_t n, double lo, double hi, nnrt_rng *rng);
void nnrt_fill_uniform_f64(double *dst, size_t n, double lo, double hi, nnrt_rng *rng);

/* ---- Element types ----------------------------------------------------------------------- */
typedef enum nnrt_dtype { NNRT_F32 = 0, NNRT_F64 = 1, NNRT_I32 = 2, NNRT_I64 = 3 } nnrt_dtype;
size_t nnrt_dtype_size(nnrt_dtype dtype);      /* 4 or 8 */
const char *nnrt_dtype_name(nnrt_dtype dtype); /* "float32", "float64", "int32", "int64" */

#define NNRT_MAX_DIMS 8

/* ---- Atomic file writes ------------------------------------------------------------------ */
typedef struct nnrt_atomic_file {
    FILE *fp;
    char *path;     /* the target */
    char *tmp_path; /* the temporary beside it */
    int failed;     /* a write failed: commit will refuse */
    int unnamed;    /* the temporary is an O_TMPFILE with no name until commit */
} nnrt_atomic_file;
/* Opens a temporary file beside path (same directory, so rename is atomic), created with mode
 * 0666 less the umask like any ordinary file. Where the filesystem supports it the temporary has
 * no name until commit (O_TMPFILE), so a killed process leaves nothing; elsewhere it is
 * "<path>.tmp.<pid>.XXXXXX", and the next nnrt_atomic_open of path removes those of processes
 * that no longer exist. A file that is replaced keeps its permission bits. A directory, device,
 * FIFO or socket at path is an error. */
int nnrt_atomic_open(nnrt_atomic_file *f, const char *path);
int nnrt_atomic_write(nnrt_atomic_file *f, const void *data, size_t bytes);
/* Flushes, fsyncs and renames over path; on any failure removes the temporary. Always releases f. */
int nnrt_atomic_commit(nnrt_atomic_file *f);
/* Removes the temporary and releases f; the target is untouched. Safe after a failed open. */
void nnrt_atomic_abort(nnrt_atomic_file *f);

/* ---- safetensors ---------------------------------------------------------------------------
 * A tensor as the caller describes it: name, dtype, shape and a caller-owned buffer holding the
 * product of the shape elements, C order. */
typedef struct nnrt_tensor {
    const char *name;
    nnrt_dtype dtype;
    int ndim;
    int64_t shape[NNRT_MAX_DIMS];
    void *data;
} nnrt_tensor;

/* Writes the tensors (in the given order, 8-byte-aligned data, little endian) atomically, with
 * "__metadata__": {"format": "pt"}. Names must be non-empty and unique (NNRT_ERR_NAME). */
int nnrt_safetensors_write(const char *path, const nnrt_tensor *tensors, size_t count);
/* Reads a file that must hold exactly these tensors, with these names, dtypes and shapes (the
 * optional "__metadata__" entry is allowed), and copies each into its data buffer. The first
 * mismatch is reported by name: a missing or extra tensor is NNRT_ERR_NAME, a wrong dtype
 * NNRT_ERR_DTYPE, a wrong shape NNRT_ERR_SHAPE. A malformed, truncated or hostile file (header
 * length past the end or over 100 MB, invalid JSON, offsets out of order, past the end,
 * overlapping or leaving holes, sizes that disagree with the shape) is NNRT_ERR_FORMAT; nothing is
 * read outside the file. All names, dtypes and shapes are checked before any data is copied, so
 * only an I/O failure while copying can leave the buffers partly written. path must be a regular
 * file (its size bounds every length read from it). */
int nnrt_safetensors_read(const char *path, const nnrt_tensor *tensors, size_t count);

/* ---- .npy ----------------------------------------------------------------------------------
 * Format versions 1.0, 2.0 and 3.0; dtypes <f4, <f8, <i4, <i8 (and '|'/'=' byte orders where
 * meaningless or native); C order only. Anything else is a clear NNRT_ERR_FORMAT or
 * NNRT_ERR_DTYPE naming the file and what was found. */
typedef struct nnrt_array {
    nnrt_dtype dtype;
    int ndim;
    int64_t shape[NNRT_MAX_DIMS];
    size_t count; /* product of shape (1 for ndim 0) */
    void *data;   /* count elements, NNRT_ALIGN-aligned */
} nnrt_array;
/* Reads path into *out (data allocated with nnrt_alloc; release with nnrt_array_free). On failure
 * *out is zeroed and owns nothing. path must be a regular file. */
int nnrt_npy_read(const char *path, nnrt_array *out);
/* Writes a (version 1.0, C order, little endian) atomically. */
int nnrt_npy_write(const char *path, const nnrt_array *a);
void nnrt_array_free(nnrt_array *a); /* frees data and zeroes *a; NULL-safe */

/* ---- Model descriptors ---------------------------------------------------------------------
 * Every generated model exports `const nnrt_model <name>_model`: its architecture, its parameter
 * tensors, and its entry points through untyped pointers, so that generic code (the driver,
 * tests, benchmarks) can run any model. Typed entry points are in the model's own header. */
enum nnrt_cell { NNRT_CELL_RNN_TANH = 0, NNRT_CELL_RNN_RELU = 1, NNRT_CELL_GRU = 2, NNRT_CELL_LSTM = 3 };
enum nnrt_act { NNRT_ACT_LINEAR = 0, NNRT_ACT_RELU = 1, NNRT_ACT_TANH = 2, NNRT_ACT_SIGMOID = 3 };
enum nnrt_loss { NNRT_LOSS_MSE = 0, NNRT_LOSS_CROSS_ENTROPY = 1, NNRT_LOSS_BCE = 2 };

typedef struct nnrt_layer_desc {
    int cell;   /* enum nnrt_cell */
    int input;  /* features in */
    int hidden; /* H */
} nnrt_layer_desc;

typedef struct nnrt_head_desc {
    int act; /* enum nnrt_act */
    int input;
    int output;
} nnrt_head_desc;

/* One parameter tensor inside the flat parameter array, in PyTorch layout and naming. */
typedef struct nnrt_param_desc {
    const char *name; /* "rnn.weight_ih_l0", "head.1.bias", ... */
    int ndim;         /* 1 or 2 */
    int64_t shape[2];
    size_t offset;     /* in elements from the start of the flat array */
    size_t count;      /* elements */
    double init_bound; /* default init draws U(-init_bound, init_bound) */
} nnrt_param_desc;

typedef struct nnrt_workers nnrt_workers; /* a team of threads: see "Worker threads" below */

typedef struct nnrt_model {
    int abi_version; /* NNRT_ABI_VERSION at generation time */
    const char *name;
    const char *isa;  /* backend the code was generated for: "scalar", "avx2", ... */
    nnrt_dtype dtype; /* NNRT_F32 or NNRT_F64: element type of params, state, x and y */
    int input, output, seq_len, batch;
    int output_last; /* 1 when output_at = "last": y is [B][O] instead of [T][B][O] */
    int loss_kind;   /* enum nnrt_loss */
    int num_layers;
    const nnrt_layer_desc *layers;
    int num_heads;
    const nnrt_head_desc *heads;
    size_t num_params; /* elements in the flat parameter array */
    int num_tensors;
    const nnrt_param_desc *tensors;
    size_t params_bytes, weights_bytes, state_bytes, work_bytes, tape_bytes; /* sizes of the model's structs */
    nnrt_dtype target_dtype; /* NNRT_I32 class indices for cross_entropy, else dtype */
    /* Entry points, the typed ones of the model header behind void pointers. The forward ones
     * read the packed weights (pack: params -> weights, after every change of params); the
     * backward reads the canonical params. */
    void (*reset)(void *state);
    void (*pack)(const void *params, void *weights);
    void (*step)(const void *weights, void *state, const void *x, void *y);
    /* T in 1..seq_len; with output_last, y is the output after the last step of this call.
     * On failure returns an NNRT_* code with a message naming the model (nnrt_last_error). */
    int (*forward)(const void *weights, void *state, void *work, int T, const void *x, void *y);
    /* Training: forward recording the tape; mean loss and dloss/dy; backward adding into grads
     * (same layout as params) and writing dloss/dx when dx is not NULL. See the model header. */
    int (*forward_train)(const void *weights, void *state, void *tape, int T, const void *x, void *y);
    int (*loss)(int T, const void *y, const void *target, double *loss, void *dy);
    int (*backward)(const void *params, void *tape, const void *x, const void *dy, void *grads, void *dx);
    /* The same on a team of threads (see nnrt_workers below; NULL: the caller's thread). */
    void (*step_mt)(nnrt_workers *team, const void *weights, void *state, const void *x, void *y);
    int (*forward_mt)(nnrt_workers *team, const void *weights, void *state, void *work, int T, const void *x, void *y);
    int (*forward_train_mt)(nnrt_workers *team, const void *weights, void *state, void *tape, int T, const void *x,
                            void *y);
    int (*backward_mt)(nnrt_workers *team, const void *params, void *tape, const void *x, const void *dy, void *grads,
                       void *dx);
} nnrt_model;

/* PyTorch-style default init of the flat parameter array: each tensor, in descriptor order,
 * U(-init_bound, init_bound) from one stream seeded with seed. An inconsistent descriptor (wrong
 * ABI, dtype, or a tensor outside num_params) leaves params untouched and sets nnrt_last_error();
 * load and save report the same as NNRT_ERR_ARG. */
void nnrt_model_init(const nnrt_model *m, void *params, uint64_t seed);
/* Loads/saves the flat parameter array from/to a safetensors file with the descriptor's names,
 * shapes and dtype (nnrt_safetensors_read's checks apply). */
int nnrt_model_load(const nnrt_model *m, void *params, const char *path);
int nnrt_model_save(const nnrt_model *m, const void *params, const char *path);

/* ---- Losses -------------------------------------------------------------------------------
 * Mean-reduced as PyTorch's MSELoss, CrossEntropyLoss (class indices) and BCEWithLogitsLoss over
 * rows x outputs values y (dtype F32 or F64). target: [rows][outputs] of the same dtype for mse and
 * bce, int32 class indices [rows] for cross_entropy. *loss receives the mean, accumulated in
 * double; dy (optional, same shape as y) receives dloss/dy. A class index outside 0..outputs-1
 * is NNRT_ERR_ARG naming the row. */
int nnrt_loss(int kind, nnrt_dtype dtype, size_t rows, int outputs, const void *y, const void *target,
              double *loss, void *dy);

/* ---- Optimizers over the flat parameter array ----------------------------------------------
 * Each update is PyTorch's exactly (torch.optim.SGD, Adam, AdamW with foreach/fused off): the
 * same formulas in the same order, arithmetic in the parameters' dtype, hyper-parameters and
 * bias corrections in double as Python computes them, rounded once to the dtype. Where torch's
 * CPU kernels fuse a multiply and an add (x.add(y, alpha=a) is fma(a, y, x); addcmul is
 * fma(v * y, z, x)), so does the runtime, on every machine. Against Debian's torch 1.13 on x86-64
 * the parameters match bit for bit (tests/test_optim.c); torch 2.x computes Adam's exp_avg with
 * lerp_, which moves results by about one rounding. */
enum nnrt_optimizer { NNRT_OPT_SGD = 0, NNRT_OPT_ADAM = 1, NNRT_OPT_ADAMW = 2 };

typedef struct nnrt_optim_config {
    int kind;            /* enum nnrt_optimizer */
    double lr;           /* learning rate */
    double weight_decay; /* SGD and Adam: L2 added to the gradient; AdamW: decoupled */
    double momentum;     /* SGD */
    double dampening;    /* SGD */
    int nesterov;        /* SGD: needs momentum > 0 and dampening == 0 */
    double beta1, beta2; /* Adam, AdamW */
    double eps;          /* Adam, AdamW */
} nnrt_optim_config;
/* Fields that kind does not use are ignored. Between steps the caller may change the
 * hyper-parameters in nnrt_optim.config (a learning-rate schedule, as torch's param_groups), but
 * not kind, nor SGD's momentum from 0 to non-zero: the state was allocated for them. */

/* PyTorch's defaults for kind: SGD lr 1e-3, momentum 0, dampening 0, weight_decay 0, no Nesterov;
 * Adam lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0; AdamW the same with weight_decay 0.01.
 * Any other kind gives a config that nnrt_optim_init rejects. */
nnrt_optim_config nnrt_optim_defaults(int kind);

typedef struct nnrt_optim {
    nnrt_optim_config config;
    nnrt_dtype dtype; /* NNRT_F32 or NNRT_F64, that of params and grads */
    size_t count;     /* elements of the flat arrays */
    int64_t step;     /* updates done so far (Adam's bias corrections use it) */
    void *state1;     /* SGD: momentum buffer; Adam(W): exp_avg. NULL when unused */
    void *state2;     /* Adam(W): exp_avg_sq. NULL when unused */
} nnrt_optim;

/* Validates config (NNRT_ERR_ARG with a message "optimizer config: <kind>: <field> must be ...":
 * lr, weight_decay, momentum or eps negative or not finite, betas outside [0, 1), nesterov
 * without momentum or with dampening, an unknown kind) and dtype (F32 or F64), then allocates
 * the state with nnrt_alloc, zeroed, step 0: a momentum buffer for SGD with momentum != 0,
 * exp_avg and exp_avg_sq for Adam(W). count may be 0. NNRT_ERR_NOMEM when the state does not
 * fit. On failure *o is zeroed and owns nothing. Release with nnrt_optim_free. */
int nnrt_optim_init(nnrt_optim *o, const nnrt_optim_config *config, nnrt_dtype dtype, size_t count);
void nnrt_optim_free(nnrt_optim *o); /* NULL-safe, zeroes *o */
/* One update of params (count elements) from grads (count elements, not overlapping params or
 * the state); increments o->step first, as torch does. When o is NULL or unusable (not
 * initialised, momentum switched on after init) or an array is NULL, nothing changes and
 * nnrt_last_error() says why. */
void nnrt_optim_step(nnrt_optim *o, void *params, const void *grads);

/* The gradient's global L2 norm, accumulated in double. NaN, with nnrt_last_error() set, for a
 * dtype other than F32/F64 or NULL grads with count > 0. */
double nnrt_grad_norm(nnrt_dtype dtype, const void *grads, size_t count);
/* torch.nn.utils.clip_grad_norm_ (L2): with coef = max_norm / (norm + 1e-6), computed in double,
 * scales grads by coef rounded to the dtype whenever coef < 1 (also when norm == max_norm, as
 * torch does). Returns the norm before clipping. A non-finite norm (inf or NaN in grads) is
 * returned with grads untouched, for the caller to act on. A negative or NaN max_norm, a bad
 * dtype or NULL grads return NaN with nnrt_last_error() set, grads untouched. */
double nnrt_clip_grad_norm(nnrt_dtype dtype, void *grads, size_t count, double max_norm);

/* Checkpoints: the parameters under their tensor names plus the optimizer's state as tensors
 * "optim.state1.<name>", "optim.state2.<name>" (those in use) and "optim.step" (I64 [1]) and
 * "optim.kind" (I32 [1]), one safetensors file, written atomically. Hyper-parameters are not
 * stored: after a load, o's own config applies. Loading checks that the file matches the model
 * and the optimizer and restores both bit-exactly, so training resumes as if it had not stopped.
 * Both calls need o set up for m (same dtype, o->count == m->num_params; else NNRT_ERR_ARG).
 * Load errors: another model is reported by nnrt_safetensors_read (NNRT_ERR_NAME, _DTYPE or
 * _SHAPE naming the tensor); another optimizer ("the checkpoint holds the state of Adam, but this
 * optimizer is SGD with momentum") or a plain weights file is NNRT_ERR_ARG; a negative optim.step
 * or an optim.kind that does not fit the state tensors is NNRT_ERR_FORMAT. Load reads into a
 * temporary copy (the size of the parameters plus the state) and changes params and o only when
 * everything checked out: a failed load leaves both as they were. */
int nnrt_checkpoint_save(const char *path, const nnrt_model *m, const void *params, const nnrt_optim *o);
int nnrt_checkpoint_load(const char *path, const nnrt_model *m, void *params, nnrt_optim *o);

/* The generated driver program: `<name> init|forward|grad|train ...` as DESIGN.md specifies;
 * `<name> <command> --help` documents each command for the model at hand. Prints its own
 * errors to stderr as "<name>: error: ..." and returns the process exit code (0 ok, 1 bad input,
 * 2 usage or internal error such as out of memory or an ABI mismatch). grad prints
 * "loss <value>" and train "final loss <value>" (the trained weights' loss over all of X) on
 * stdout; train's progress goes to stderr. train --checkpoint C on a stream (T > seq_len) also
 * writes C.stream, the state carried between chunks, which --resume inside the stream needs. */
int nnrt_driver_main(const nnrt_model *m, int argc, char **argv);

/* ---- Worker threads ------------------------------------------------------------------------
 * A team of threads the caller creates once and passes to the generated *_mt entry points, so
 * the application decides how many cores a model uses and when its threads exist. Thread 0 is
 * the caller's own thread; nnrt_workers_create starts the other threads - 1, which wait for
 * jobs (spinning briefly, then sleeping). Nothing is created or freed per call. A team runs one
 * job at a time: share it between models only from one thread. */
#define NNRT_MAX_THREADS 64
/* A job runs on every thread of the team at once: id in 0..count-1 (0 is the caller). */
typedef void nnrt_job(void *arg, int id, int count, nnrt_workers *team);
int nnrt_workers_create(int threads, nnrt_workers **out); /* threads in 1..NNRT_MAX_THREADS */
void nnrt_workers_destroy(nnrt_workers *team);            /* NULL is accepted */
int nnrt_workers_threads(const nnrt_workers *team);       /* 1 for NULL */
/* Runs job on every thread and returns when all have finished. A NULL team runs it on the
 * caller alone (id 0, count 1). */
void nnrt_workers_run(nnrt_workers *team, nnrt_job *job, void *arg);
/* Inside a job: waits until every thread of the team has arrived here. Everything a thread
 * wrote before the barrier is visible to every thread after it (acquire/release). */
void nnrt_workers_sync(nnrt_workers *team);
/* A progress counter one thread publishes and others wait on (the layer wavefront: "layer l has
 * finished t steps"), on its own cache line. Zero-initialise it; set values only grow. */
typedef struct nnrt_flag {
    unsigned value;
#if defined(__GNUC__)
} __attribute__((aligned(64))) nnrt_flag;
#else
    unsigned pad[15];
} nnrt_flag;
#endif
/* Publishes value (release): everything written before is visible to a thread whose
 * nnrt_flag_wait returns because of it. */
void nnrt_flag_set(nnrt_workers *team, nnrt_flag *flag, unsigned value);
/* Waits until the flag reaches at_least (acquire); spins, then sleeps. */
void nnrt_flag_wait(nnrt_workers *team, nnrt_flag *flag, unsigned at_least);
/* Thread id's share [*lo, *hi) of n items: contiguous, in order, sizes differing by at most one. */
static inline void nnrt_share(int n, int id, int count, int *lo, int *hi)
{
    *lo = (int)((long long)n * id / count);
    *hi = (int)((long long)n * (id + 1) / count);
}

#ifdef __cplusplus
}
#endif
#endif /* NNRT_H */
