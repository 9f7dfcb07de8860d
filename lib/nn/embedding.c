/* Embedding gather and its scatter-add backward. */
#include "nn/nn.h"

typedef struct embed_job {
    int n, d, accumulate;
    const float *table, *dy;
    const int32_t *ids;
    float scale;
    float *y;
    int col_block;
    const rs_kernels *k;
} embed_job;

static void gather_task(void *arg, int task, int thread)
{
    (void)thread;
    const embed_job *j = arg;
    int i0 = task * RS_NN_CHUNK_ROWS;
    int i1 = i0 + RS_NN_CHUNK_ROWS < j->n ? i0 + RS_NN_CHUNK_ROWS : j->n;
    j->k->embed_gather(i1 - i0, j->d, j->table, j->ids + i0, j->scale, j->accumulate,
                       j->y + (size_t)i0 * j->d);
}

void rs_embed_fwd(recsys_ctx *ctx, int n, int d, const float *table, const int32_t *ids,
                  float scale, int accumulate, float *y)
{
    if (n <= 0) return;
    embed_job j = {n, d, accumulate, table, NULL, ids, scale, y, 0, &ctx->kern};
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
    j->k->embed_scatter(j->n, j->d, c0, c1, j->ids, j->scale, j->dy, (float *)j->table);
}

void rs_embed_bwd(recsys_ctx *ctx, int n, int d, const int32_t *ids, float scale,
                  const float *dy, float *dtable)
{
    if (n <= 0) return;
    /* Blocks of 16 columns (a cache line); at most 8 tasks. */
    int col_block = 16;
    if ((d + col_block - 1) / col_block > 8) col_block = (d + 7) / 8;
    embed_job j = {n, d, 0, dtable, dy, ids, scale, NULL, col_block, &ctx->kern};
    rs_pool_run(ctx->pool, (d + col_block - 1) / col_block, scatter_task, &j);
}

recsys_status rs_pack_positions(recsys_ctx *ctx, const char *model, const rs_model_config *c,
                                const rs_batch *b, int *base, int *len, int32_t *src,
                                int32_t *items, int32_t *pos, int *n_out)
{
    int L = c->max_len, n = 0;
    for (int r = 0; r < b->B; r++) {
        int s0 = b->start[r];
        if (s0 < 0 || s0 > L)
            return rs_error(ctx, RECSYS_E_INVALID, "%s: row %d starts at %d, not in 0..%d",
                            model, r, s0, L);
        base[r] = n;
        len[r] = L - s0;
        for (int t = s0; t < L; t++) {
            int32_t it = b->seq[(size_t)r * L + t];
            if (it < 1 || it > c->n_items)
                return rs_error(ctx, RECSYS_E_INVALID,
                                "%s: row %d position %d holds item %d, not in 1..%d", model, r,
                                t, (int)it, c->n_items);
            src[n] = r * L + t;
            items[n] = it;
            pos[n] = t + 1;
            n++;
        }
    }
    *n_out = n;
    return RECSYS_OK;
}
