/* nnrt_workers.c — a fixed team of threads that runs one job at a time, for the generated
 * multi-core entry points.
 *
 * The threads are created once, by nnrt_workers_create, and live until nnrt_workers_destroy:
 * a call into the model hands them a job and waits, nothing is created or freed per step. Between
 * jobs a worker spins for a short while (a step arrives every few microseconds in a streaming
 * application, and waking a sleeping thread costs more than the step) and then sleeps on a
 * condition variable, so an idle application does not burn its cores.
 *
 * Memory order. A job is published by a (sequentially consistent, so at least release) increment
 * of the job counter and picked up by an acquire load, so everything the caller wrote before
 * nnrt_workers_run (the job's arguments) is visible to the workers. The barrier is a counter
 * plus a generation: the last thread to arrive (its fetch_add is acq_rel, so it has acquired
 * every earlier arrival's writes) publishes the next generation, which the waiters acquire. The
 * end of a job is the same pattern with the `done` counter, acquired by the caller. A thread
 * that waits too long sleeps on a condition variable; see wait_change for why no wake-up is lost. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "nnrt.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

/* Pause instructions (about 50 ns each) a waiting thread spins before it sleeps: a worker
 * waiting for the next job about 1 ms (a streaming application calls every few microseconds,
 * and waking a sleeping thread costs more than a step); a thread at a barrier about 20 us (the
 * others are normally microseconds away; longer means they lost their core to another program,
 * and spinning would only keep it from them). */
#define JOB_SPINS 20000
#define BARRIER_SPINS 400

/* Each counter on its own cache line: the threads hammer them from different cores. */
typedef struct {
    _Alignas(64) atomic_uint value;
} padded_counter;

struct nnrt_workers {
    int threads;
    pthread_t *ids;
    padded_counter job_seq;  /* bumped once per job (and once to stop) */
    padded_counter done;     /* workers that finished the current job */
    padded_counter arrived;  /* barrier: threads arrived in the current generation */
    padded_counter generation;
    nnrt_job *job;
    void *arg;
    int stop;
    atomic_int sleepers;  /* threads asleep (or about to be) in wait_change */
    pthread_mutex_t lock; /* with wake: sleeping and waking */
    pthread_cond_t wake;
};

typedef struct {
    nnrt_workers *team;
    int id;
} worker_start;

/* Waits until *counter differs from seen and returns its new value: spins, then sleeps until
 * the thread that changes it calls wake_sleepers. The sleeper announces itself (sleepers) before
 * its last look at the counter, and the waker looks at sleepers after changing the counter, each
 * with a sequentially consistent fence between its store and its load: one of the two always
 * sees the other. The fences are not redundant with the seq_cst accesses in practice: under
 * qemu-aarch64 7.2 on x86 (the NEON tests), STLR followed by LDAR was not kept in order, a
 * wake-up was lost about once in five runs of the threads suite, and the team hung. */
static unsigned wait_change(nnrt_workers *w, atomic_uint *counter, unsigned seen, int spins)
{
    unsigned now;
    for (int i = 0; i < spins; ++i) {
        now = atomic_load_explicit(counter, memory_order_acquire);
        if (now != seen) return now;
        cpu_relax();
    }
    pthread_mutex_lock(&w->lock);
    atomic_fetch_add(&w->sleepers, 1);
    atomic_thread_fence(memory_order_seq_cst);
    while ((now = atomic_load(counter)) == seen) pthread_cond_wait(&w->wake, &w->lock);
    atomic_fetch_sub(&w->sleepers, 1);
    pthread_mutex_unlock(&w->lock);
    return now;
}

/* After a change of a counter others may sleep on (made seq_cst). */
static void wake_sleepers(nnrt_workers *w)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load(&w->sleepers) == 0) return;
    pthread_mutex_lock(&w->lock);
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

static void *worker_main(void *p)
{
    worker_start start = *(worker_start *)p;
    free(p);
    nnrt_workers *w = start.team;
    unsigned seen = 0;
    for (;;) {
        seen = wait_change(w, &w->job_seq.value, seen, JOB_SPINS);
        if (w->stop) return NULL;
        w->job(w->arg, start.id, w->threads, w);
        atomic_fetch_add(&w->done.value, 1);
        wake_sleepers(w);
    }
}

int nnrt_workers_create(int threads, nnrt_workers **out)
{
    *out = NULL;
    if (threads < 1 || threads > NNRT_MAX_THREADS)
        return nnrt_fail(NNRT_ERR_ARG, "workers: %d threads requested, expected 1..%d", threads, NNRT_MAX_THREADS);
    nnrt_workers *w = calloc(1, sizeof *w);
    if (!w) return nnrt_fail(NNRT_ERR_NOMEM, "workers: out of memory");
    w->threads = threads;
    w->ids = calloc((size_t)threads, sizeof *w->ids);
    if (!w->ids || pthread_mutex_init(&w->lock, NULL) != 0) {
        free(w->ids);
        free(w);
        return nnrt_fail(NNRT_ERR_NOMEM, "workers: out of memory");
    }
    pthread_cond_init(&w->wake, NULL);
    /* Worker 0 is the calling thread; the others are created here. */
    for (int i = 1; i < threads; ++i) {
        worker_start *start = malloc(sizeof *start);
        if (start) *start = (worker_start){w, i};
        if (!start || pthread_create(&w->ids[i], NULL, worker_main, start) != 0) {
            free(start);
            w->threads = i; /* stop the ones already running */
            nnrt_workers_destroy(w);
            return nnrt_fail(NNRT_ERR_NOMEM, "workers: cannot create thread %d of %d", i + 1, threads);
        }
    }
    *out = w;
    return NNRT_OK;
}

static void publish(nnrt_workers *w)
{
    atomic_fetch_add(&w->job_seq.value, 1);
    wake_sleepers(w);
}

void nnrt_workers_destroy(nnrt_workers *w)
{
    if (!w) return;
    if (w->threads > 1) {
        w->stop = 1;
        publish(w);
        for (int i = 1; i < w->threads; ++i) pthread_join(w->ids[i], NULL);
    }
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w->ids);
    free(w);
}

int nnrt_workers_threads(const nnrt_workers *w) { return w ? w->threads : 1; }

void nnrt_workers_run(nnrt_workers *w, nnrt_job *job, void *arg)
{
    if (!w || w->threads == 1) {
        job(arg, 0, 1, w);
        return;
    }
    w->job = job;
    w->arg = arg;
    atomic_store_explicit(&w->done.value, 0, memory_order_relaxed);
    publish(w);
    job(arg, 0, w->threads, w);
    /* The workers' last writes are acquired with their `done` increments. Waiting here only
     * spins: the job just ran on every thread, so they finish about when we do. */
    for (unsigned done = 0; done != (unsigned)(w->threads - 1);)
        done = wait_change(w, &w->done.value, done, BARRIER_SPINS);
}

/* The flag's counter as the C11 atomic it is used as (same size and representation; the public
 * header keeps a plain unsigned so that C++ can include it). */
static atomic_uint *flag_counter(nnrt_flag *f) { return (atomic_uint *)&f->value; }

void nnrt_flag_set(nnrt_workers *w, nnrt_flag *f, unsigned value)
{
    atomic_store(flag_counter(f), value);
    if (w) wake_sleepers(w);
}

void nnrt_flag_wait(nnrt_workers *w, nnrt_flag *f, unsigned at_least)
{
    atomic_uint *counter = flag_counter(f);
    unsigned now = atomic_load_explicit(counter, memory_order_acquire);
    while (now < at_least) now = wait_change(w, counter, now, BARRIER_SPINS);
}

void nnrt_workers_sync(nnrt_workers *w)
{
    if (!w || w->threads == 1) return;
    unsigned gen = atomic_load_explicit(&w->generation.value, memory_order_acquire);
    if (atomic_fetch_add_explicit(&w->arrived.value, 1, memory_order_acq_rel) == (unsigned)(w->threads - 1)) {
        atomic_store_explicit(&w->arrived.value, 0, memory_order_relaxed);
        atomic_store(&w->generation.value, gen + 1);
        wake_sleepers(w);
        return;
    }
    wait_change(w, &w->generation.value, gen, BARRIER_SPINS);
}
