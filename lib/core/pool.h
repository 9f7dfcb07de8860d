/* A fixed pool of worker threads owned by a recsys_ctx. */
#ifndef RS_POOL_H
#define RS_POOL_H

typedef struct rs_pool rs_pool;

/* Task body: task index in [0, n_tasks), thread index in [0, n_threads). */
typedef void (*rs_task_fn)(void *arg, int task, int thread);

/* n_threads >= 1 (the calling thread counts as one). NULL on failure. */
rs_pool *rs_pool_new(int n_threads);
void rs_pool_free(rs_pool *p);
int rs_pool_threads(const rs_pool *p);
/* Run fn for every task, claimed dynamically; returns when all are done.
 * The caller takes part as thread 0. Not reentrant: a task must not call
 * rs_pool_run on the same pool (it then runs the inner tasks inline). */
void rs_pool_run(rs_pool *p, int n_tasks, rs_task_fn fn, void *arg);

#endif
