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
    int i0 = (task) * RS_NN_CHUNK_ROWS, i1 = rs_nn_chunk_end(i0, (j)->n)
/* The chunk as a flat element range [a, e) of contiguous rows of width m. */
#define CHUNK_ELEMS(j, task, a, e)                                                \
    size_t a = (size_t)(task) * RS_NN_CHUNK_ROWS * (size_t)(j)->m,                \
           e = (size_t)rs_nn_chunk_end((task) * RS_NN_CHUNK_ROWS, (j)->n) * (size_t)(j)->m

static inline uint64_t row_base(const ew_job *j, int i)
{
    return (uint64_t)(j->row_id ? j->row_id[i] : i) * (uint64_t)j->m;
}

/* Run fn over the row chunks of j, completing j: the sizes, the kernels,
 * the dropout scale, and row strides left 0 default to m. */
static void ew_run(recsys_ctx *ctx, rs_task_fn fn, int n, int m, float p, ew_job j)
{
    if (n <= 0) return;
    j.k = &ctx->kern;
    j.n = n;
    j.m = m;
    if (!j.ld) j.ld = m;
    if (!j.ldy) j.ldy = m;
    j.p = p;
    j.scale = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
    rs_pool_run(ctx->pool, rs_nn_chunks(n), fn, &j);
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
    if (p <= 0.0f && x == y) return;
    ew_run(ctx, p > 0.0f ? dropout_task : copy_task, n, m, p,
           (ew_job){.ld = ld, .ldy = ld, .x = x, .y = y, .seed = seed, .row_id = row_id});
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
    ew_run(ctx, dropout_mask_task, n, m, p,
           (ew_job){.x = x, .y = y, .seed = seed, .row_id = row_id, .mask = mask});
}

static void dropout_bwd_mask_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_ELEMS(j, task, a, e);
    j->k->dropout_apply(e - a, j->cmask + a, j->scale, j->x + a, j->y + a);
}

void rs_dropout_bwd_mask(recsys_ctx *ctx, int n, int m, const float *dy, float p,
                         const uint8_t *mask, float *dx)
{
    if (p <= 0.0f) {
        rs_dropout(ctx, n, m, dy, m, 0.0f, 0, NULL, dx);
        return;
    }
    ew_run(ctx, dropout_bwd_mask_task, n, m, p, (ew_job){.x = dy, .y = dx, .cmask = mask});
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
    ew_run(ctx, bias_relu_dropout_task, n, m, p,
           (ew_job){.y = y, .b = b, .seed = seed, .row_id = row_id});
}

static void relu_dropout_bwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_ELEMS(j, task, a, e);
    j->k->relu_bwd(e - a, j->x + a, j->scale, j->y + a);
}

void rs_relu_dropout_bwd(recsys_ctx *ctx, int n, int m, const float *y, float p, float *dy)
{
    ew_run(ctx, relu_dropout_bwd_task, n, m, p, (ew_job){.x = y, .y = dy});
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
    ew_run(ctx, bias_dropout_add_task, n, m, p,
           (ew_job){.y = y, .b = b, .seed = seed, .row_id = row_id, .mask = mask, .add1 = add1,
                    .add2 = add2});
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
    ew_run(ctx, relu_fwd_task, n, m, 0.0f, (ew_job){.ld = ld, .ldy = ld, .x = x, .y = x});
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
    ew_run(ctx, relu_bwd_task, n, m, 0.0f, (ew_job){.ld = ldy, .ldy = lddx, .x = y, .y = dx});
}

static void add_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_ELEMS(j, task, a, b);
    j->k->add(b - a, j->x + a, j->y + a);
}

void rs_nn_add(recsys_ctx *ctx, int n, int m, const float *x, float *y)
{
    ew_run(ctx, add_task, n, m, 0.0f, (ew_job){.x = x, .y = y});
}

static void silu_fwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_ELEMS(j, task, a, e);
    j->k->silu_fwd(e - a, j->y + a, j->y2 + a);
}

void rs_silu_fwd(recsys_ctx *ctx, int n, int m, float *x, float *sig)
{
    ew_run(ctx, silu_fwd_task, n, m, 0.0f, (ew_job){.y = x, .y2 = sig});
}

static void silu_bwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_ELEMS(j, task, a, e);
    j->k->silu_bwd(e - a, j->x + a, j->b + a, j->y + a);
}

void rs_silu_bwd(recsys_ctx *ctx, int n, int m, const float *sig, const float *y, float *dx)
{
    ew_run(ctx, silu_bwd_task, n, m, 0.0f, (ew_job){.x = sig, .b = y, .y = dx});
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
    ew_run(ctx, mul_fwd_task, n, m, 0.0f, (ew_job){.ld = lda, .x = a, .b = b, .y = y});
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
    ew_run(ctx, mul_bwd_task, n, m, 0.0f,
           (ew_job){.ld = lda, .ldy = ldda, .x = a, .b = b, .y = dy, .y2 = da});
}
