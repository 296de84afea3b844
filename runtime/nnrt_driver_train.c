/* nnrt_driver_train.c — the driver's train command: the optimizer over X and TARGET,
 * truncated BPTT over long streams, checkpoints and resuming, progress. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, isatty, fileno */

#include "nnrt_driver.h"

#include <jansson.h>

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    TRAIN_WEIGHTS,
    TRAIN_IN,
    TRAIN_TARGET,
    TRAIN_STEPS,
    TRAIN_LR,
    TRAIN_OPTIM,
    TRAIN_MOMENTUM,
    TRAIN_NESTEROV,
    TRAIN_DECAY,
    TRAIN_CLIP,
    TRAIN_CKPT,
    TRAIN_EVERY,
    TRAIN_RESUME,
    TRAIN_LOG,
    TRAIN_THREADS,
    TRAIN_OUT,
    TRAIN_JSON
};
static const opt_spec train_opts[] = {
    [TRAIN_WEIGHTS] = {"-w", "W.safetensors", 1,
                       "initial weights (replaced by the checkpoint's with --resume)"},
    [TRAIN_IN] = {"-i", "X.npy", 1, "input sequences, time-major; T > seq_len is one long stream"},
    [TRAIN_TARGET] = {"-t", "TARGET.npy", 1, "targets of the loss"},
    [TRAIN_STEPS] = {"--steps", "N", 0,
                     "total optimizer steps, resumed ones included (default 100)"},
    [TRAIN_LR] = {"--lr", "R", 0, "learning rate (default 1e-3)"},
    [TRAIN_OPTIM] = {"--optim", "adam|adamw|sgd", 0, "optimizer, as torch.optim's (default adam)"},
    [TRAIN_MOMENTUM] = {"--momentum", "M", 0, "sgd: momentum (default 0)"},
    [TRAIN_NESTEROV] = {"--nesterov", NULL, 0, "sgd: Nesterov momentum (needs --momentum > 0)"},
    [TRAIN_DECAY] = {"--weight-decay", "D", 0,
                     "L2 penalty; decoupled for adamw (default 0, adamw 0.01)"},
    [TRAIN_CLIP] = {"--clip", "NORM", 0, "clip the gradient's global L2 norm to NORM"},
    [TRAIN_CKPT] = {"--checkpoint", "C.safetensors", 0, "save parameters and optimizer state here"},
    [TRAIN_EVERY] = {"--every", "K", 0, "checkpoint every K steps (default: at the end only)"},
    [TRAIN_RESUME] = {"--resume", NULL, 0, "continue from the checkpoint, bit for bit"},
    [TRAIN_LOG] = {"--log-every", "K", 0,
                   "progress line every K steps when stderr is not a terminal"},
    [TRAIN_THREADS] = {"--threads", "N", 0,
                       "threads of the team the forward and backward run on (default 1; the same "
                       "numbers for any N)"},
    [TRAIN_OUT] = {"-o", "W2.safetensors", 1, "trained weights to write (may be W: see below)"},
    [TRAIN_JSON] = {"--json", NULL, 0, "print one JSON object instead of the final loss line"},
};

/* ---- train ---------------------------------------------------------------------------------- */

/* The state carried from chunk to chunk of a stream is not part of a checkpoint
 * (nnrt_checkpoint_save holds parameters and optimizer state), so a streaming run saves it
 * beside the checkpoint, in <C>.stream, just before each checkpoint. The file keeps the states
 * of the last two saves, so a crash between the two writes still leaves the one that matches
 * the checkpoint. Tensors: stream.length I64 [1] (T of X), stream.step I64 [2] (the step of
 * each state, newest first, -1 for none), stream.state [2, elements of the state]. */
typedef struct stream_file {
    char *path;       /* NULL when the run is not a stream or has no checkpoint */
    size_t count;     /* elements of the state */
    int64_t length;   /* T of X */
    int64_t steps[2]; /* step of each saved state, newest first */
    char *states;     /* [2][count] */
} stream_file;

static void stream_tensors(const nnrt_model *m, stream_file *f, int64_t *length, int64_t *steps,
                           nnrt_tensor t[3]) {
    t[0] = (nnrt_tensor){"stream.length", NNRT_I64, 1, {1}, length};
    t[1] = (nnrt_tensor){"stream.step", NNRT_I64, 1, {2}, steps};
    t[2] = (nnrt_tensor){"stream.state", m->dtype, 2, {2, (int64_t)f->count}, f->states};
}

/* Saves state as the newest entry, the previous save's as the older one. */
static int stream_save(const nnrt_model *m, stream_file *f, const void *state, int64_t step) {
    size_t bytes = f->count * nnrt_dtype_size(m->dtype);
    nnrt_tensor t[3];
    memcpy(f->states, state, bytes);
    f->steps[0] = step;
    stream_tensors(m, f, &f->length, f->steps, t);
    int rc = nnrt_safetensors_write(f->path, t, 3);
    if (rc != NNRT_OK) return runtime_error(rc, f->path);
    memcpy(f->states + bytes, f->states, bytes);
    f->steps[1] = step;
    return 0;
}

/* Restores the state at step (inside the stream) into state. */
static int stream_load(const nnrt_model *m, stream_file *f, void *state, int64_t step,
                       const char *xpath) {
    size_t bytes = f->count * nnrt_dtype_size(m->dtype);
    int64_t length, steps[2];
    nnrt_tensor t[3];
    stream_tensors(m, f, &length, steps, t);
    int rc = nnrt_safetensors_read(f->path, t, 3);
    if (rc != NNRT_OK) {
        runtime_error(rc, f->path);
        report("resuming at step %" PRId64 ", inside the stream, needs the carried state saved "
               "beside the checkpoint",
               step);
        return rc == NNRT_ERR_NOMEM ? EXIT_USAGE : EXIT_INPUT;
    }
    if (length != f->length) {
        report("%s: saved for a stream of %" PRId64 " steps, but %s has %" PRId64, f->path, length,
               xpath, f->length);
        return EXIT_INPUT;
    }
    int k = steps[0] == step ? 0 : steps[1] == step ? 1 : -1;
    if (k < 0) {
        report("%s: holds the carried state of steps %" PRId64 " and %" PRId64
               ", not of step %" PRId64 " where the checkpoint is",
               f->path, steps[0], steps[1], step);
        return EXIT_INPUT;
    }
    memcpy(state, f->states + (size_t)k * bytes, bytes);
    memcpy(f->states + bytes, state, bytes);
    f->steps[0] = -1;
    f->steps[1] = step;
    return 0;
}

/* Progress on stderr: a line redrawn in place on a terminal, plain lines otherwise. */
typedef struct progress {
    int tty; /* stderr is a terminal */
    int64_t first, total, every;
    double start, last_draw;
} progress;

#define BAR_WIDTH 20

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void format_duration(char *buf, size_t size, double s) {
    if (s < 60)
        snprintf(buf, size, "%.1fs", s);
    else if (s < 3600)
        snprintf(buf, size, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else if (s < 1e8)
        snprintf(buf, size, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else
        snprintf(buf, size, "-");
}

static void progress_update(progress *p, int64_t step, double loss) {
    double now = now_seconds(), elapsed = now - p->start;
    double rate = elapsed > 0 ? (double)(step - p->first) / elapsed : 0;
    int last = step == p->total;
    if (p->tty) {
        if (!last && now - p->last_draw < 0.1) return;
        p->last_draw = now;
        char bar[BAR_WIDTH + 1], eta[32];
        int fill = (int)((double)step / (double)p->total * BAR_WIDTH);
        for (int k = 0; k < BAR_WIDTH; k++) bar[k] = k < fill ? '#' : '.';
        bar[BAR_WIDTH] = '\0';
        format_duration(eta, sizeof eta, rate > 0 ? (double)(p->total - step) / rate : 1e9);
        fprintf(stderr, "\rstep %" PRId64 "/%" PRId64 " [%s] loss %.4g  %.0f steps/s  ETA %s\033[K",
                step, p->total, bar, loss, rate, eta);
        if (last) fputc('\n', stderr);
        line_open = !last;
        fflush(stderr);
    } else if (step % p->every == 0 || last) {
        fprintf(stderr, "step %" PRId64 "/%" PRId64 " loss %.4g %.1f steps/s\n", step, p->total,
                loss, rate);
    }
}

static void explain_train(const nnrt_model *m, FILE *out) {
    fprintf(out, "X is %s [T, %d, %d], T >= 1.\n", nnrt_dtype_name(m->dtype), m->batch, m->input);
    explain_target(m, out, "T");
    fprintf(out, "T <= %d: every step trains on the whole sequence from the zero state.\n",
            m->seq_len);
    if (m->output_last)
        fprintf(out, "T > %d is an error: this model's output is at the last step only.\n",
                m->seq_len);
    else
        fprintf(
            out,
            "T > %d: X is one long stream, trained with truncated BPTT: chunks of %d steps (the\n"
            "last one shorter), the state carried from chunk to chunk with no gradient across,\n"
            "the zero state again when the stream wraps; one optimizer step per chunk.\n",
            m->seq_len, m->seq_len);
    fprintf(
        out,
        "\n"
        "Each step: forward, loss, backward, optional clipping, the optimizer's update. A NaN\n"
        "or infinite loss or gradient stops the run (exit 1) before the update; -o and the\n"
        "checkpoint are never written with bad parameters.\n"
        "\n"
        "--steps is the total: --resume restores parameters, optimizer state and step count\n"
        "from the checkpoint and continues up to N, so `train --steps 10` equals\n"
        "`train --steps 6 --checkpoint C` followed by `train --steps 10 --checkpoint C --resume`\n"
        "bit for bit, given the same options: the checkpoint holds the optimizer's kind and\n"
        "state but not its hyper-parameters. A stream also saves the state it carries from\n"
        "chunk to chunk beside C, in C.stream, which resuming inside the stream needs.\n"
        "Without --resume, a new run replaces C at its first save.\n"
        "\n"
        "Progress goes to stderr. At the end \"final loss <value>\" on stdout: the loss of the\n"
        "trained weights over all of X, from the zero state (what eval prints for them).\n"
        "--json prints one object instead: model, first_step (0, or the resumed step), steps,\n"
        "losses (the training loss of each step run, in order) and final_loss.\n"
        "\n"
        "-o may name W itself: W is read whole before the first step and replaced, atomically,\n"
        "only once training has succeeded. No other output may be the same file as an input\n"
        "or another output, and every output is checked before the first step: a directory\n"
        "that does not exist or a file that is not a regular one fails at once.\n");
}

typedef struct train_config {
    int64_t steps, every, log_every;
    double clip; /* 0: off */
    nnrt_optim_config optim;
    const char *checkpoint;
    int resume;
    int threads;
} train_config;

/* Reads train's options into c; prints the problem and returns EXIT_USAGE on a bad one. */
static int parse_train(const char *const *vals, train_config *c) {
    static const struct {
        const char *name;
        int kind;
    } optimizers[] = {{"adam", NNRT_OPT_ADAM}, {"adamw", NNRT_OPT_ADAMW}, {"sgd", NNRT_OPT_SGD}};
    int kind = NNRT_OPT_ADAM;
    if (vals[TRAIN_OPTIM]) {
        int k = 0;
        while (k < COUNT(optimizers) && strcmp(vals[TRAIN_OPTIM], optimizers[k].name) != 0) k++;
        if (k == COUNT(optimizers)) {
            report("option --optim: expected adam, adamw or sgd, found '%s'", vals[TRAIN_OPTIM]);
            return EXIT_USAGE;
        }
        kind = optimizers[k].kind;
    }
    memset(c, 0, sizeof *c);
    c->steps = 100;
    c->optim = nnrt_optim_defaults(kind);
    if (parse_threads(vals[TRAIN_THREADS], &c->threads)) return EXIT_USAGE;
    if (vals[TRAIN_STEPS] && parse_count("--steps", vals[TRAIN_STEPS], &c->steps))
        return EXIT_USAGE;
    if (vals[TRAIN_LR] && parse_real("--lr", vals[TRAIN_LR], 0, &c->optim.lr)) return EXIT_USAGE;
    for (int k = TRAIN_MOMENTUM; k <= TRAIN_NESTEROV; k++)
        if (vals[k] && kind != NNRT_OPT_SGD) {
            report("option %s applies to --optim sgd only", train_opts[k].flag);
            return EXIT_USAGE;
        }
    if (vals[TRAIN_MOMENTUM] &&
        parse_real("--momentum", vals[TRAIN_MOMENTUM], 0, &c->optim.momentum))
        return EXIT_USAGE;
    if (vals[TRAIN_NESTEROV]) {
        if (!(c->optim.momentum > 0)) {
            report("option --nesterov needs --momentum > 0");
            return EXIT_USAGE;
        }
        c->optim.nesterov = 1;
    }
    if (vals[TRAIN_DECAY] &&
        parse_real("--weight-decay", vals[TRAIN_DECAY], 0, &c->optim.weight_decay))
        return EXIT_USAGE;
    if (vals[TRAIN_CLIP] && parse_real("--clip", vals[TRAIN_CLIP], 1, &c->clip)) return EXIT_USAGE;
    c->checkpoint = vals[TRAIN_CKPT];
    c->resume = vals[TRAIN_RESUME] != NULL;
    for (int k = TRAIN_EVERY; k <= TRAIN_RESUME; k++)
        if (vals[k] && !c->checkpoint) {
            report("option %s needs --checkpoint", train_opts[k].flag);
            return EXIT_USAGE;
        }
    if (vals[TRAIN_EVERY] && parse_count("--every", vals[TRAIN_EVERY], &c->every))
        return EXIT_USAGE;
    if (vals[TRAIN_LOG] && parse_count("--log-every", vals[TRAIN_LOG], &c->log_every))
        return EXIT_USAGE;
    if (!vals[TRAIN_LOG]) c->log_every = c->steps / 20 + (c->steps % 20 != 0); /* ~20 lines */
    return 0;
}

/* The files of a run, checked before it starts: -w and -o may be one file, no other pair. */
static int check_train_files(const char *const *vals, const train_config *c) {
    char *stream = NULL;
    if (c->checkpoint) {
        if (!(stream = malloc(strlen(c->checkpoint) + sizeof ".stream"))) {
            report("out of memory");
            return EXIT_USAGE;
        }
        strcat(strcpy(stream, c->checkpoint), ".stream");
    }
    const file_use files[] = {
        {"-w", vals[TRAIN_WEIGHTS], 0},   {"-i", vals[TRAIN_IN], 0},
        {"-t", vals[TRAIN_TARGET], 0},    {"--checkpoint", c->checkpoint, 1},
        {"--checkpoint's .stream", stream, 2}, {"-o", vals[TRAIN_OUT], 1},
    };
    int status = check_files("train", files, COUNT(files), "-w", "-o");
    free(stream);
    return status;
}

/* Saves the checkpoint (after the stream's carried state, when there is one). */
static int save_checkpoint(const nnrt_model *m, session *s, const train_config *c,
                           const nnrt_optim *o, stream_file *f) {
    int status;
    if (f->path && (status = stream_save(m, f, s->state, o->step)) != 0) return status;
    int rc = nnrt_checkpoint_save(c->checkpoint, m, s->params, o);
    return rc == NNRT_OK ? 0 : runtime_error(rc, c->checkpoint);
}

/* The run as one JSON object on one line. Returns 0 or EXIT_USAGE (out of memory). */
static int train_print_json(const nnrt_model *m, int64_t first, int64_t steps,
                            const double *losses, double final) {
    json_t *o = json_object(), *list = json_array();
    int failed = o == NULL || list == NULL;
    failed |= json_object_set_new(o, "model", json_string(m->name)) != 0;
    failed |= json_object_set_new(o, "first_step", json_integer(first)) != 0;
    failed |= json_object_set_new(o, "steps", json_integer(steps)) != 0;
    for (int64_t k = 0; k < steps - first && !failed; k++)
        failed |= json_array_append_new(list, json_real(losses[k])) != 0;
    failed |= json_object_set(o, "losses", list) != 0;
    json_decref(list);
    failed |= json_object_set_new(o, "final_loss", json_real(final)) != 0;
    return print_json(o, failed, 17);
}

/* train -w W -i X -t TARGET [options] -o W2 */
static int cmd_train(const nnrt_model *m, const char *const *vals) {
    const char *xpath = vals[TRAIN_IN], *opath = vals[TRAIN_OUT];
    train_config c;
    int status = parse_train(vals, &c), rc;
    if (status == 0) status = check_train_files(vals, &c);
    if (status != 0) return status;
    const int json = vals[TRAIN_JSON] != NULL;
    double *losses = NULL; /* with --json: the loss of each step run */

    session s;
    nnrt_optim o = {0};
    stream_file f = {0};
    progress p = {0};
    status = session_open(m, vals[TRAIN_WEIGHTS], xpath, vals[TRAIN_TARGET], c.threads, &s);
    if (status != 0) goto done;
    if ((status = session_check_stream(&s, xpath)) != 0) goto done;
    if ((rc = nnrt_optim_init(&o, &c.optim, m->dtype, m->num_params)) != NNRT_OK) {
        report("%s", nnrt_last_error());
        status = EXIT_USAGE;
        goto done;
    }
    if (s.nchunks > 1 && c.checkpoint) {
        size_t es = nnrt_dtype_size(m->dtype);
        if (m->state_bytes % es != 0) {
            report("malformed model descriptor (state of %zu bytes)", m->state_bytes);
            status = EXIT_USAGE;
            goto done;
        }
        f.count = m->state_bytes / es;
        f.length = s.d.T;
        f.steps[0] = f.steps[1] = -1;
        f.path = malloc(strlen(c.checkpoint) + sizeof ".stream");
        f.states = nnrt_alloc(2 * m->state_bytes);
        if (!f.path || !f.states) {
            report("out of memory");
            status = EXIT_USAGE;
            goto done;
        }
        strcat(strcpy(f.path, c.checkpoint), ".stream");
    }

    m->reset(s.state);
    if (c.resume) {
        if ((rc = nnrt_checkpoint_load(c.checkpoint, m, s.params, &o)) != NNRT_OK) {
            status = runtime_error(rc, c.checkpoint);
            goto done;
        }
        session_pack(&s);
        if (o.step > c.steps) {
            report("%s: the checkpoint is at step %" PRId64 ", past --steps %" PRId64
                   " (--steps counts all the steps, the resumed ones included)",
                   c.checkpoint, o.step, c.steps);
            status = EXIT_INPUT;
            goto done;
        }
        /* Inside the stream (f.path is set: --resume implies --checkpoint): the carried state. */
        if (o.step % s.nchunks != 0 && (status = stream_load(m, &f, s.state, o.step, xpath)) != 0)
            goto done;
    }

    const int64_t first = o.step;
    int64_t saved = c.resume ? first : -1; /* step of the last checkpoint on disk */
    p.tty = isatty(fileno(stderr));
    p.first = first, p.total = c.steps, p.every = c.log_every;
    p.start = now_seconds();
    for (int64_t k = first; k < c.steps; k++) {
        const int64_t chunk = k % s.nchunks, step = k + 1;
        double loss;
        if (chunk == 0) m->reset(s.state);
        memset(s.grads, 0, m->params_bytes);
        if ((rc = run_chunk(&s, chunk, 1, &loss, NULL)) != NNRT_OK) {
            report("step %" PRId64 ": %s", step, nnrt_last_error());
            status = rc == NNRT_ERR_NOMEM ? EXIT_USAGE : EXIT_INPUT;
            goto done;
        }
        if (!isfinite(loss)) {
            report("step %" PRId64 ": loss is %s", step, nonfinite_name(loss));
            status = EXIT_INPUT;
            goto done;
        }
        /* nnrt_clip_grad_norm leaves non-finite gradients as they are */
        if (c.clip > 0) nnrt_clip_grad_norm(m->dtype, s.grads, m->num_params, c.clip);
        if (!all_finite(m->dtype, s.grads, m->num_params)) {
            char what[256];
            report("step %" PRId64 ": %s (loss %.9g)", step,
                   describe_nonfinite(m, s.grads, "the gradient of", what, sizeof what), loss);
            status = EXIT_INPUT;
            goto done;
        }
        nnrt_optim_step(&o, s.params, s.grads);
        session_pack(&s);
        if (o.step != step || !all_finite(m->dtype, s.params, m->num_params)) {
            if (o.step != step)
                report("step %" PRId64 ": %s", step, nnrt_last_error());
            else
                report("step %" PRId64 ": the update made the parameters non-finite (lower --lr, "
                       "or use --clip)",
                       step);
            status = EXIT_INPUT;
            goto done;
        }
        if (c.every && step % c.every == 0) {
            if ((status = save_checkpoint(m, &s, &c, &o, &f)) != 0) goto done;
            saved = step;
        }
        progress_update(&p, step, loss);
        if (json) {
            if ((k - first) % 1024 == 0) {
                double *more = realloc(losses, (size_t)(k - first + 1024) * sizeof *losses);
                if (!more) {
                    report("out of memory (the losses of %" PRId64 " steps)", k - first + 1);
                    status = EXIT_USAGE;
                    goto done;
                }
                losses = more;
            }
            losses[k - first] = loss;
        }
    }
    if (line_open) fputc('\n', stderr);
    line_open = 0;

    /* The checkpoint first: it holds the carried state, which the evaluation replaces. */
    if (c.checkpoint && saved != c.steps && (status = save_checkpoint(m, &s, &c, &o, &f)) != 0)
        goto done;
    double final;
    if ((rc = evaluate(&s, &final)) != NNRT_OK) {
        status = runtime_error(rc, xpath);
        goto done;
    }
    if (!isfinite(final)) {
        report("final loss is %s", nonfinite_name(final));
        status = EXIT_INPUT;
        goto done;
    }
    if ((rc = nnrt_model_save(m, s.params, opath)) != NNRT_OK) {
        status = runtime_error(rc, opath);
        goto done;
    }
    if (json)
        status = train_print_json(m, first, c.steps, losses, final);
    else
        printf("final loss %.9g\n", final);
done:
    free(losses);
    nnrt_free(f.states);
    free(f.path);
    nnrt_optim_free(&o);
    session_close(&s);
    return status;
}

_Static_assert(COUNT(train_opts) <= MAX_OPTIONS, "raise MAX_OPTIONS");

const command cmd_train_command = {
    "train",
    "train on X and TARGET (truncated BPTT when T > seq_len), write the weights",
    train_opts, COUNT(train_opts), cmd_train, explain_train,
};
