/* Element-wise layers split in fixed row chunks: dropout (with or without a
 * recorded mask), ReLU, add, SiLU and multiplicative gating, and the fused bias/ReLU/dropout/residual passes
 * of a feed-forward block (one sweep over memory instead of three). The row
 * work is done by the ctx's point-wise kernels (kernels.h), which are
 * bitwise equal to the scalar loops in kernels/ref/pointwise_ref.c. */
#include "nn/nn.h"

#include <string.h>

typedef struct ew_job {
    int n, m, ld, ldy;
    const float *x, *b, *add1, *add2;
    float *y, *y2;
    float p, scale;
    uint64_t seed;
    const int32_t *row_id;
    uint8_t *mask;
    const uint8_t *cmask;
    const rs_kernels *k;
} ew_job;

#define CHUNK_RANGE(j, task, i0, i1)                                              \
    int i0 = (task) * RS_NN_CHUNK_ROWS;                                           \
    int i1 = i0 + RS_NN_CHUNK_ROWS < (j)->n ? i0 + RS_NN_CHUNK_ROWS : (j)->n

static inline uint64_t row_base(const ew_job *j, int i)
{
    return (uint64_t)(j->row_id ? j->row_id[i] : i) * (uint64_t)j->m;
}

static ew_job job(recsys_ctx *ctx, int n, int m, float p)
{
    ew_job j;
    memset(&j, 0, sizeof j);
    j.k = &ctx->kern;
    j.n = n;
    j.m = m;
    j.ld = j.ldy = m;
    j.p = p;
    j.scale = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
    return j;
}

static void dropout_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_RANGE(j, task, i0, i1);
    for (int i = i0; i < i1; i++)
        j->k->dropout_fwd((size_t)j->m, j->seed, row_base(j, i), j->p, j->scale,
                          j->x + (size_t)i * j->ld, j->y + (size_t)i * j->ld, NULL);
}

static void copy_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_RANGE(j, task, i0, i1);
    for (int i = i0; i < i1; i++)
        memcpy(j->y + (size_t)i * j->ld, j->x + (size_t)i * j->ld, sizeof(float) * (size_t)j->m);
}

void rs_dropout(recsys_ctx *ctx, int n, int m, const float *x, int ld, float p, uint64_t seed,
                const int32_t *row_id, float *y)
{
    if (n <= 0 || (p <= 0.0f && x == y)) return;
    ew_job j = job(ctx, n, m, p);
    j.ld = j.ldy = ld;
    j.x = x;
    j.y = y;
    j.seed = seed;
    j.row_id = row_id;
    rs_pool_run(ctx->pool, rs_nn_chunks(n), p > 0.0f ? dropout_task : copy_task, &j);
}

static void dropout_mask_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_RANGE(j, task, i0, i1);
    const size_t m = (size_t)j->m;
    for (int i = i0; i < i1; i++) /* y may be x */
        j->k->dropout_fwd(m, j->seed, row_base(j, i), j->p, j->scale, j->x + i * m, j->y + i * m,
                          j->mask + i * m);
}

void rs_dropout_fwd_mask(recsys_ctx *ctx, int n, int m, const float *x, float p, uint64_t seed,
                         const int32_t *row_id, float *y, uint8_t *mask)
{
    if (p <= 0.0f) {
        rs_dropout(ctx, n, m, x, m, 0.0f, seed, row_id, y);
        return;
    }
    if (n <= 0) return;
    ew_job j = job(ctx, n, m, p);
    j.x = x;
    j.y = y;
    j.seed = seed;
    j.row_id = row_id;
    j.mask = mask;
    rs_pool_run(ctx->pool, rs_nn_chunks(n), dropout_mask_task, &j);
}

static void dropout_bwd_mask_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_RANGE(j, task, i0, i1);
    size_t a = (size_t)i0 * j->m, e = (size_t)i1 * j->m;
    j->k->dropout_apply(e - a, j->cmask + a, j->scale, j->x + a, j->y + a);
}

void rs_dropout_bwd_mask(recsys_ctx *ctx, int n, int m, const float *dy, float p,
                         const uint8_t *mask, float *dx)
{
    if (p <= 0.0f) {
        rs_dropout(ctx, n, m, dy, m, 0.0f, 0, NULL, dx);
        return;
    }
    if (n <= 0) return;
    ew_job j = job(ctx, n, m, p);
    j.x = dy;
    j.y = dx;
    j.cmask = mask;
    rs_pool_run(ctx->pool, rs_nn_chunks(n), dropout_bwd_mask_task, &j);
}

static void bias_relu_dropout_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_RANGE(j, task, i0, i1);
    const rs_kernels *k = j->k;
    const size_t m = (size_t)j->m;
    for (int i = i0; i < i1; i++) {
        float *yi = j->y + i * m;
        if (j->b) k->add(m, j->b, yi);
        k->relu(m, yi);
        if (j->p > 0.0f) k->dropout_fwd(m, j->seed, row_base(j, i), j->p, j->scale, yi, yi, NULL);
    }
}

void rs_bias_relu_dropout_fwd(recsys_ctx *ctx, int n, int m, float *y, const float *b, float p,
                              uint64_t seed, const int32_t *row_id)
{
    if (n <= 0) return;
    ew_job j = job(ctx, n, m, p);
    j.y = y;
    j.b = b;
    j.seed = seed;
    j.row_id = row_id;
    rs_pool_run(ctx->pool, rs_nn_chunks(n), bias_relu_dropout_task, &j);
}

static void relu_dropout_bwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_RANGE(j, task, i0, i1);
    size_t a = (size_t)i0 * j->m, e = (size_t)i1 * j->m;
    j->k->relu_bwd(e - a, j->x + a, j->scale, j->y + a);
}

void rs_relu_dropout_bwd(recsys_ctx *ctx, int n, int m, const float *y, float p, float *dy)
{
    if (n <= 0) return;
    ew_job j = job(ctx, n, m, p);
    j.x = y;
    j.y = dy;
    rs_pool_run(ctx->pool, rs_nn_chunks(n), relu_dropout_bwd_task, &j);
}

static void bias_dropout_add_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_RANGE(j, task, i0, i1);
    const rs_kernels *k = j->k;
    const size_t m = (size_t)j->m;
    for (int i = i0; i < i1; i++) {
        size_t o = i * m;
        float *yi = j->y + o;
        if (j->b) k->add(m, j->b, yi);
        if (j->p > 0.0f)
            k->dropout_fwd(m, j->seed, row_base(j, i), j->p, j->scale, yi, yi,
                           j->mask ? j->mask + o : NULL);
        if (j->add1) k->add(m, j->add1 + o, yi);
        if (j->add2) k->add(m, j->add2 + o, yi);
    }
}

void rs_bias_dropout_add_fwd(recsys_ctx *ctx, int n, int m, float *y, const float *b, float p,
                             uint64_t seed, const int32_t *row_id, uint8_t *mask,
                             const float *add1, const float *add2)
{
    if (n <= 0) return;
    ew_job j = job(ctx, n, m, p);
    j.y = y;
    j.b = b;
    j.seed = seed;
    j.row_id = row_id;
    j.mask = mask;
    j.add1 = add1;
    j.add2 = add2;
    rs_pool_run(ctx->pool, rs_nn_chunks(n), bias_dropout_add_task, &j);
}

static void relu_fwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_RANGE(j, task, i0, i1);
    for (int i = i0; i < i1; i++) j->k->relu((size_t)j->m, j->y + (size_t)i * j->ldy);
}

void rs_relu_fwd(recsys_ctx *ctx, int n, int m, float *x, int ld)
{
    if (n <= 0) return;
    ew_job j = job(ctx, n, m, 0.0f);
    j.ld = j.ldy = ld;
    j.x = j.y = x;
    rs_pool_run(ctx->pool, rs_nn_chunks(n), relu_fwd_task, &j);
}

static void relu_bwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_RANGE(j, task, i0, i1);
    for (int i = i0; i < i1; i++)
        j->k->relu_bwd((size_t)j->m, j->x + (size_t)i * j->ld, 1.0f, j->y + (size_t)i * j->ldy);
}

void rs_relu_bwd(recsys_ctx *ctx, int n, int m, const float *y, int ldy, float *dx, int lddx)
{
    if (n <= 0) return;
    ew_job j = job(ctx, n, m, 0.0f);
    j.ld = ldy;
    j.ldy = lddx;
    j.x = y;
    j.y = dx;
    rs_pool_run(ctx->pool, rs_nn_chunks(n), relu_bwd_task, &j);
}

static void add_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_RANGE(j, task, i0, i1);
    size_t a = (size_t)i0 * j->m, b = (size_t)i1 * j->m;
    j->k->add(b - a, j->x + a, j->y + a);
}

void rs_nn_add(recsys_ctx *ctx, int n, int m, const float *x, float *y)
{
    if (n <= 0) return;
    ew_job j = job(ctx, n, m, 0.0f);
    j.x = x;
    j.y = y;
    rs_pool_run(ctx->pool, rs_nn_chunks(n), add_task, &j);
}

static void silu_fwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_RANGE(j, task, i0, i1);
    size_t a = (size_t)i0 * j->m, e = (size_t)i1 * j->m;
    j->k->silu_fwd(e - a, j->y + a, j->y2 + a);
}

void rs_silu_fwd(recsys_ctx *ctx, int n, int m, float *x, float *sig)
{
    if (n <= 0) return;
    ew_job j = job(ctx, n, m, 0.0f);
    j.y = x;
    j.y2 = sig;
    rs_pool_run(ctx->pool, rs_nn_chunks(n), silu_fwd_task, &j);
}

static void silu_bwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_RANGE(j, task, i0, i1);
    size_t a = (size_t)i0 * j->m, e = (size_t)i1 * j->m;
    j->k->silu_bwd(e - a, j->x + a, j->b + a, j->y + a);
}

void rs_silu_bwd(recsys_ctx *ctx, int n, int m, const float *sig, const float *y, float *dx)
{
    if (n <= 0) return;
    ew_job j = job(ctx, n, m, 0.0f);
    j.x = sig;
    j.b = y;
    j.y = dx;
    rs_pool_run(ctx->pool, rs_nn_chunks(n), silu_bwd_task, &j);
}

static void mul_fwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_RANGE(j, task, i0, i1);
    for (int i = i0; i < i1; i++) {
        const float *ai = j->x + (size_t)i * j->ld, *bi = j->b + (size_t)i * j->m;
        float *yi = j->y + (size_t)i * j->m;
        for (int c = 0; c < j->m; c++) yi[c] = ai[c] * bi[c];
    }
}

void rs_mul_fwd(recsys_ctx *ctx, int n, int m, const float *a, int lda, const float *b,
                float *y)
{
    if (n <= 0) return;
    ew_job j = job(ctx, n, m, 0.0f);
    j.ld = lda;
    j.x = a;
    j.b = b;
    j.y = y;
    rs_pool_run(ctx->pool, rs_nn_chunks(n), mul_fwd_task, &j);
}

static void mul_bwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_RANGE(j, task, i0, i1);
    for (int i = i0; i < i1; i++) {
        const float *ai = j->x + (size_t)i * j->ld, *bi = j->b + (size_t)i * j->m;
        float *dy = j->y + (size_t)i * j->m, *da = j->y2 + (size_t)i * j->ldy;
        for (int c = 0; c < j->m; c++) {
            da[c] = dy[c] * bi[c];
            dy[c] *= ai[c];
        }
    }
}

void rs_mul_bwd(recsys_ctx *ctx, int n, int m, const float *a, int lda, const float *b,
                float *dy, float *da, int ldda)
{
    if (n <= 0) return;
    ew_job j = job(ctx, n, m, 0.0f);
    j.ld = lda;
    j.ldy = ldda;
    j.x = a;
    j.b = b;
    j.y = dy;
    j.y2 = da;
    rs_pool_run(ctx->pool, rs_nn_chunks(n), mul_bwd_task, &j);
}
