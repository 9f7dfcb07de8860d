/* Thread pools that fit a service: a ctx with a fixed thread count, and a
 * reference-counted pool several contexts share. rs_pool_run runs a job
 * inline when the pool is busy with another ctx's job, so sharing is safe. */
#include "core/internal.h"

#include <stdatomic.h>
#include <stdlib.h>

struct recsys_threadpool {
    atomic_int refs;
    rs_pool *pool;
};

recsys_status recsys_ctx_new_with_threads(int n_threads, recsys_ctx **out)
{
    rs_enter(NULL);
    if (!out) return RS_BAD_ARGS();
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024) return RS_BAD_ARGS();
    return rs_ctx_create(n_threads, NULL, out);
}

recsys_status recsys_threadpool_new(int n_threads, recsys_threadpool **out)
{
    rs_enter(NULL);
    if (!out) return RS_BAD_ARGS();
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024) return RS_BAD_ARGS();
    recsys_threadpool *tp = calloc(1, sizeof *tp);
    if (!tp) return RECSYS_E_NOMEM;
    tp->pool = rs_pool_new(n_threads);
    if (!tp->pool) { free(tp); return RECSYS_E_NOMEM; }
    atomic_init(&tp->refs, 1);
    *out = tp;
    return RECSYS_OK;
}

void rs_threadpool_unref(recsys_threadpool *tp)
{
    if (tp && atomic_fetch_sub(&tp->refs, 1) == 1) {
        rs_pool_free(tp->pool);
        free(tp);
    }
}

void recsys_threadpool_free(recsys_threadpool *tp) { rs_threadpool_unref(tp); }

recsys_status recsys_ctx_new_shared(recsys_threadpool *pool, recsys_ctx **out)
{
    rs_enter(NULL);
    if (!out) return RS_BAD_ARGS();
    *out = NULL;
    if (!pool) return RS_BAD_ARGS();
    atomic_fetch_add(&pool->refs, 1);
    recsys_status st = rs_ctx_create(0, pool->pool, out);
    if (st) { rs_threadpool_unref(pool); return st; }
    (*out)->shared = pool;
    return RECSYS_OK;
}
