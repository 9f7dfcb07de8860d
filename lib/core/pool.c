/* Thread pool: workers sleep on a condition variable between jobs and claim
 * tasks from an atomic counter, so uneven tasks balance themselves. */
#include "core/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

struct rs_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    uint64_t generation;     /* bumped for each job */
    int stopping;
    int busy;                /* workers still in the current job */
    rs_task_fn fn;
    void *arg;
    int n_tasks;
    atomic_int next_task;
    atomic_int running;      /* reentrancy guard */
    int started;             /* workers are started at the first parallel run */
    int start_failed;
};

struct worker_arg { rs_pool *p; int index; };

static void run_tasks(rs_pool *p, int thread)
{
    for (;;) {
        int t = atomic_fetch_add_explicit(&p->next_task, 1, memory_order_relaxed);
        if (t >= p->n_tasks) break;
        p->fn(p->arg, t, thread);
    }
}

static void *worker_main(void *varg)
{
    struct worker_arg *wa = varg;
    rs_pool *p = wa->p;
    int index = wa->index;
    free(wa);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stopping && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->stopping) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        run_tasks(p, index);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Start the workers (under no lock: only the thread holding `running`
 * calls this). On failure the pool keeps the workers it has. */
static void start_workers(rs_pool *p)
{
    p->started = 1;
    p->threads = calloc((size_t)p->n_threads - 1, sizeof *p->threads);
    if (!p->threads) { p->n_threads = 1; return; }
    for (int i = 1; i < p->n_threads; i++) {
        struct worker_arg *wa = malloc(sizeof *wa);
        if (wa) { wa->p = p; wa->index = i; }
        if (!wa || pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) {
            free(wa);
            p->n_threads = i; /* only i-1 workers exist */
            p->start_failed = 1;
            return;
        }
    }
}

rs_pool *rs_pool_new(int n_threads)
{
    if (n_threads < 1) n_threads = 1;
    rs_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next_task, 0);
    atomic_init(&p->running, 0);
    return p;
}

void rs_pool_free(rs_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    if (p->threads && p->started)
        for (int i = 1; i < p->n_threads; i++) pthread_join(p->threads[i - 1], NULL);
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p);
}

int rs_pool_threads(const rs_pool *p) { return p ? p->n_threads : 1; }

void rs_pool_run(rs_pool *p, int n_tasks, rs_task_fn fn, void *arg)
{
    if (n_tasks <= 0) return;
    if (!p || p->n_threads == 1 || n_tasks == 1 ||
        atomic_exchange(&p->running, 1) == 1) {
        for (int t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    if (!p->started) start_workers(p);
    if (p->n_threads == 1) {
        for (int t = 0; t < n_tasks; t++) fn(arg, t, 0);
        atomic_store(&p->running, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store(&p->next_task, 0);
    p->busy = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    atomic_store(&p->running, 0);
}
