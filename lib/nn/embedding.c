/* Embedding gather and its scatter-add backward. */
#include "nn/nn.h"

/* Columns per scatter task (16 floats: a cache line), and the most scatter
 * tasks (wider tables get wider blocks). */
#define SCATTER_COL_BLOCK 16
#define SCATTER_MAX_TASKS 8

typedef struct embed_job {
    int n, d, accumulate;
    const float *table, *dy;
    const int32_t *ids;
    float scale;
    float *y, *dtable;
    int col_block;
    const rs_kernels *k;
} embed_job;

static void gather_task(void *arg, int task, int thread)
{
    (void)thread;
    const embed_job *j = arg;
    int i0 = task * RS_NN_CHUNK_ROWS, i1 = rs_nn_chunk_end(i0, j->n);
    j->k->embed_gather(i1 - i0, j->d, j->table, j->ids + i0, j->scale, j->accumulate,
                       j->y + (size_t)i0 * j->d);
}

void rs_embed_fwd(recsys_ctx *ctx, int n, int d, const float *table, const int32_t *ids,
                  float scale, int accumulate, float *y)
{
    if (n <= 0) return;
    embed_job j = {n, d, accumulate, table, NULL, ids, scale, y, NULL, 0, &ctx->kern};
    rs_pool_run(ctx->pool, rs_nn_chunks(n), gather_task, &j);
}

/* Each task owns a block of columns of the whole table, so rows repeated in
 * ids are summed by one task in row order: no races, fixed rounding. */
static void scatter_task(void *arg, int task, int thread)
{
    (void)thread;
    const embed_job *j = arg;
    int c0 = task * j->col_block;
    int c1 = c0 + j->col_block < j->d ? c0 + j->col_block : j->d;
    j->k->embed_scatter(j->n, j->d, c0, c1, j->ids, j->scale, j->dy, j->dtable);
}

void rs_embed_bwd(recsys_ctx *ctx, int n, int d, const int32_t *ids, float scale,
                  const float *dy, float *dtable)
{
    if (n <= 0) return;
    int col_block = SCATTER_COL_BLOCK;
    if ((d + col_block - 1) / col_block > SCATTER_MAX_TASKS)
        col_block = (d + SCATTER_MAX_TASKS - 1) / SCATTER_MAX_TASKS;
    embed_job j = {n, d, 0, NULL, dy, ids, scale, NULL, dtable, col_block, &ctx->kern};
    rs_pool_run(ctx->pool, (d + col_block - 1) / col_block, scatter_task, &j);
}
