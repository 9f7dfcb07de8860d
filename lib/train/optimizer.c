/* Adam / AdamW: state and step. The per-element update is the ctx's adam
 * kernel; here the vector is cut into chunks for the pool. */
#include "train/optimizer.h"

#include <math.h>
#include <string.h>

/* Chunks per worker thread: a few, so uneven threads even out. */
#define ADAM_TASKS_PER_THREAD 4
/* Chunk lengths are multiples of this many floats (64 bytes: whole cache
 * lines and whole AVX-512 vectors per task). */
#define ADAM_CHUNK_ALIGN 16

recsys_status rs_adam_init(rs_adam *a, const recsys_opts *opts, size_t n)
{
    memset(a, 0, sizeof *a);
    a->lr = (float)rs_opt_float(opts, RS_OPT_TRAINER_LR);
    a->beta1 = (float)rs_opt_float(opts, RS_OPT_TRAINER_BETA1);
    a->beta2 = (float)rs_opt_float(opts, RS_OPT_TRAINER_BETA2);
    a->eps = (float)rs_opt_float(opts, RS_OPT_TRAINER_EPS);
    a->weight_decay = (float)rs_opt_float(opts, RS_OPT_TRAINER_WEIGHT_DECAY);
    a->decoupled_wd = rs_opt_is(opts, RS_OPT_TRAINER_OPTIMIZER, "adamw");
    a->n = n;
    a->m = rs_calloc(n, sizeof(float));
    a->v = rs_calloc(n, sizeof(float));
    return a->m && a->v ? RECSYS_OK : RECSYS_E_NOMEM;
}

void rs_adam_free(rs_adam *a)
{
    if (!a) return;
    rs_free(a->m);
    rs_free(a->v);
    a->m = a->v = NULL;
}

typedef struct adam_job {
    const rs_kernels *kern;
    const rs_adam *a;
    float *params, *grads;
    size_t chunk;
    float bc1, bc2; /* bias corrections 1 - beta^t */
} adam_job;

static void adam_task(void *arg, int task, int thread)
{
    (void)thread;
    const adam_job *j = arg;
    const rs_adam *a = j->a;
    size_t i0 = (size_t)task * j->chunk, n = a->n;
    size_t len = n - i0 < j->chunk ? n - i0 : j->chunk;
    float *p = j->params + i0, *g = j->grads + i0;
    if (a->weight_decay > 0 && !a->decoupled_wd) /* classic L2: add to the gradient */
        for (size_t i = 0; i < len; i++) g[i] += a->weight_decay * p[i];
    j->kern->adam(len, p, g, a->m + i0, a->v + i0, a->lr, a->beta1, a->beta2, a->eps,
                  a->decoupled_wd ? a->weight_decay : 0.0f, j->bc1, j->bc2);
}

void rs_adam_step(recsys_ctx *ctx, rs_adam *a, float *params, float *grads)
{
    if (a->step < INT64_MAX) a->step++; /* saturates (the bias corrections are 1 by then) */
    adam_job j = {&ctx->kern, a, params, grads, 0, 1.0f - powf(a->beta1, (float)a->step),
                  1.0f - powf(a->beta2, (float)a->step)};
    size_t n = a->n;
    int tasks = rs_pool_threads(ctx->pool) * ADAM_TASKS_PER_THREAD;
    j.chunk = (n + (size_t)tasks - 1) / (size_t)tasks;
    j.chunk = (j.chunk + ADAM_CHUNK_ALIGN - 1) & ~(size_t)(ADAM_CHUNK_ALIGN - 1);
    tasks = (int)((n + j.chunk - 1) / j.chunk);
    rs_pool_run(ctx->pool, tasks, adam_task, &j);
}
