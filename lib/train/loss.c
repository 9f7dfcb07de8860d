/* BCE loss with sampled negatives: logits, a numerically stable loss, dF
 * per position (parallel over positions) and the item-table gradient
 * (parallel over column blocks, so repeated items never race). */
#include "train/loss.h"

#include "nn/nn.h"

#include <math.h>
#include <string.h>

/* softplus(x) = log(1 + e^x), without overflow. */
static inline double softplus(double x) { return (x > 0 ? x : 0.0) + log1p(exp(-fabs(x))); }

static inline float sigmoidf_stable(float x)
{
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

typedef struct bce_job {
    const rs_batch *b;
    const rs_kernels *k;
    int d, n;
    const float *F, *items;
    float *chunk_loss; /* one double per chunk, stored bytewise (any alignment) */
    float *coef;       /* per position: [g_pos, g_neg...] before dividing by count */
    float inv_count;
    float *dF, *d_items;
    int col_block;
} bce_job;

/* Pass 1: logits, loss partials and the unscaled logit gradients. */
static void logits_task(void *arg, int task, int thread)
{
    (void)thread;
    const bce_job *j = arg;
    const rs_batch *b = j->b;
    int r = 1 + b->n_neg;
    int t0 = task * RS_NN_CHUNK_ROWS;
    int t1 = t0 + RS_NN_CHUNK_ROWS < j->n ? t0 + RS_NN_CHUNK_ROWS : j->n;
    double acc = 0.0;
    for (int t = t0; t < t1; t++) {
        float *c = j->coef + (size_t)t * r;
        if (b->pos[t] == 0) {
            memset(c, 0, sizeof(float) * (size_t)r);
            continue;
        }
        const float *f = j->F + (size_t)t * j->d;
        float s = j->k->dot((size_t)j->d, f, j->items + (size_t)b->pos[t] * j->d);
        acc += softplus(-(double)s);         /* -log σ(s) */
        c[0] = sigmoidf_stable(s) - 1.0f;
        for (int q = 0; q < b->n_neg; q++) {
            int32_t it = b->neg[(size_t)t * b->n_neg + q];
            float sn = j->k->dot((size_t)j->d, f, j->items + (size_t)it * j->d);
            acc += softplus((double)sn);     /* -log(1 - σ(s)) */
            c[1 + q] = sigmoidf_stable(sn);
        }
    }
    memcpy(j->chunk_loss + 2 * (size_t)task, &acc, sizeof acc);
}

/* Pass 2: dF_t = Σ g · item, scaled by 1/count. */
static void dF_task(void *arg, int task, int thread)
{
    (void)thread;
    const bce_job *j = arg;
    const rs_batch *b = j->b;
    int r = 1 + b->n_neg, d = j->d;
    int t0 = task * RS_NN_CHUNK_ROWS;
    int t1 = t0 + RS_NN_CHUNK_ROWS < j->n ? t0 + RS_NN_CHUNK_ROWS : j->n;
    for (int t = t0; t < t1; t++) {
        float *g = j->dF + (size_t)t * d;
        memset(g, 0, sizeof(float) * (size_t)d);
        if (b->pos[t] == 0) continue;
        const float *c = j->coef + (size_t)t * r;
        for (int q = 0; q < r; q++) {
            int32_t it = q == 0 ? b->pos[t] : b->neg[(size_t)t * b->n_neg + q - 1];
            const float *e = j->items + (size_t)it * d;
            float w = c[q] * j->inv_count;
            for (int k = 0; k < d; k++) g[k] += w * e[k];
        }
    }
}

/* Pass 3: d_items[item] += g · F_t for one block of columns, positions in
 * order, so the sum for a repeated item is always taken in the same order. */
static void ditems_task(void *arg, int task, int thread)
{
    (void)thread;
    const bce_job *j = arg;
    const rs_batch *b = j->b;
    int r = 1 + b->n_neg, d = j->d;
    int k0 = task * j->col_block, k1 = k0 + j->col_block < d ? k0 + j->col_block : d;
    for (int t = 0; t < j->n; t++) {
        if (b->pos[t] == 0) continue;
        const float *c = j->coef + (size_t)t * r, *f = j->F + (size_t)t * d;
        for (int q = 0; q < r; q++) {
            int32_t it = q == 0 ? b->pos[t] : b->neg[(size_t)t * b->n_neg + q - 1];
            float *e = j->d_items + (size_t)it * d;
            float w = c[q] * j->inv_count;
            for (int k = k0; k < k1; k++) e[k] += w * f[k];
        }
    }
}

size_t rs_loss_bce_scratch_floats(int B, int L, int n_neg)
{
    size_t n = (size_t)B * (size_t)L;
    return 2 * (size_t)rs_nn_chunks((int)n) + n * (1 + (size_t)n_neg);
}

recsys_status rs_loss_bce_ws(recsys_ctx *ctx, const rs_model_config *cfg, const float *items,
                          const rs_batch *b, const float *F, float *dF, float *d_items,
                          float *scratch, double *loss)
{
    if (!ctx || !cfg || !b || !F || !items || !loss || cfg->dim <= 0)
        return rs_error(ctx, RECSYS_E_INVALID, "rs_loss_bce: NULL argument");
    if (b->B < 0 || b->L <= 0 || !b->pos || b->n_neg < 0 || (b->n_neg > 0 && !b->neg))
        return rs_error(ctx, RECSYS_E_INVALID, "rs_loss_bce: batch without targets");
    if ((int64_t)b->B * b->L > INT32_MAX)
        return rs_error(ctx, RECSYS_E_INVALID, "rs_loss_bce: batch of %d x %d is too large", b->B,
                        b->L);
    int n = b->B * b->L, d = cfg->dim, n_items = cfg->n_items;
    int64_t cnt = 0;
    for (int t = 0; t < n; t++) {
        if (b->pos[t] < 0 || b->pos[t] > n_items)
            return rs_error(ctx, RECSYS_E_INVALID, "rs_loss_bce: target item %d out of range 0..%d",
                            (int)b->pos[t], n_items);
        if (b->pos[t] == 0) continue;
        cnt++;
        for (int q = 0; q < b->n_neg; q++) {
            int32_t it = b->neg[(size_t)t * b->n_neg + q];
            if (it < 0 || it > n_items)
                return rs_error(ctx, RECSYS_E_INVALID,
                                "rs_loss_bce: negative item %d out of range 0..%d", (int)it,
                                n_items);
        }
    }
    int chunks = rs_nn_chunks(n);
    /* per-chunk double loss partials (two floats each), then coefficients */
    float *owned = NULL;
    if (!scratch) {
        scratch = owned = rs_malloc(sizeof(float) * rs_loss_bce_scratch_floats(b->B, b->L, b->n_neg));
        if (!scratch) return rs_error(ctx, RECSYS_E_NOMEM, "rs_loss_bce: out of memory");
    }
    bce_job j = {b, &ctx->kern, d, n, F, items, scratch, scratch + 2 * (size_t)chunks,
                 cnt ? 1.0f / (float)cnt : 0.0f, dF, d_items, 16};
    rs_pool_run(ctx->pool, chunks, logits_task, &j);
    double total = 0.0;
    for (int t = 0; t < chunks; t++) {
        double part;
        memcpy(&part, j.chunk_loss + 2 * (size_t)t, sizeof part);
        total += part;
    }
    *loss = cnt ? total / (double)cnt : 0.0;
    if (dF) rs_pool_run(ctx->pool, chunks, dF_task, &j);
    if (d_items && cnt) {
        if ((d + j.col_block - 1) / j.col_block > 8) j.col_block = (d + 7) / 8;
        rs_pool_run(ctx->pool, (d + j.col_block - 1) / j.col_block, ditems_task, &j);
    }
    rs_free(owned);
    return RECSYS_OK;
}

recsys_status rs_loss_bce(recsys_ctx *ctx, const rs_model_config *cfg, const float *items,
                          const rs_batch *b, const float *F, float *dF, float *d_items,
                          double *loss)
{
    return rs_loss_bce_ws(ctx, cfg, items, b, F, dF, d_items, NULL, loss);
}
