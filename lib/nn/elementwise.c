/* Element-wise layers split in fixed row chunks: dropout (with or without a
 * recorded mask), ReLU, add, and the fused bias/ReLU/dropout/residual passes
 * of a feed-forward block (one sweep over memory instead of three). */
#include "nn.h"

#include <string.h>

typedef struct ew_job {
    int n, m, ld, ldy;
    const float *x, *b, *add1, *add2;
    float *y;
    float p, scale;
    uint64_t seed;
    const int32_t *row_id;
    uint8_t *mask;
    const uint8_t *cmask;
} ew_job;

#define CHUNK_RANGE(j, task, i0, i1)                                              \
    int i0 = (task) * RS_NN_CHUNK_ROWS;                                           \
    int i1 = i0 + RS_NN_CHUNK_ROWS < (j)->n ? i0 + RS_NN_CHUNK_ROWS : (j)->n

static inline uint64_t row_base(const ew_job *j, int i)
{
    return (uint64_t)(j->row_id ? j->row_id[i] : i) * (uint64_t)j->m;
}

/* Dropout decisions of counters base..base+m-1 as bytes. Kept a plain
 * scalar loop: vectorising the 64-bit multiplies without AVX-512 (the
 * library's baseline ISA) is slower than the scalar hash. */
static void keep_bytes(uint64_t seed, uint64_t base, int m, float p, uint8_t *restrict out)
{
    for (int c = 0; c < m; c++) out[c] = (uint8_t)rs_dropout_keep(seed, base + (uint64_t)c, p);
}

#define KEEP_BLOCK 256

static ew_job job(int n, int m, float p)
{
    ew_job j;
    memset(&j, 0, sizeof j);
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
    const int m = j->m;
    uint8_t keep[KEEP_BLOCK];
    for (int i = i0; i < i1; i++) {
        const float *xi = j->x + (size_t)i * j->ld;
        float *yi = j->y + (size_t)i * j->ld;
        uint64_t base = row_base(j, i);
        for (int c0 = 0; c0 < m; c0 += KEEP_BLOCK) {
            int w = m - c0 < KEEP_BLOCK ? m - c0 : KEEP_BLOCK;
            keep_bytes(j->seed, base + (uint64_t)c0, w, j->p, keep);
            for (int c = 0; c < w; c++) yi[c0 + c] = keep[c] ? xi[c0 + c] * j->scale : 0.0f;
        }
    }
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
    ew_job j = job(n, m, p);
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
    const float p = j->p, scale = j->scale;
    const uint64_t seed = j->seed;
    const int m = j->m;
    for (int i = i0; i < i1; i++) {
        const float *xi = j->x + (size_t)i * m;
        float *yi = j->y + (size_t)i * m; /* may be xi: no restrict */
        uint8_t *restrict mi = j->mask + (size_t)i * m;
        uint64_t base = row_base(j, i);
        keep_bytes(seed, base, m, p, mi);
        for (int c = 0; c < m; c++) yi[c] = mi[c] ? xi[c] * scale : 0.0f;
    }
}

void rs_dropout_fwd_mask(recsys_ctx *ctx, int n, int m, const float *x, float p, uint64_t seed,
                         const int32_t *row_id, float *y, uint8_t *mask)
{
    if (p <= 0.0f) {
        rs_dropout(ctx, n, m, x, m, 0.0f, seed, row_id, y);
        return;
    }
    if (n <= 0) return;
    ew_job j = job(n, m, p);
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
    /* locals + restrict: a float store could otherwise alias j->scale */
    size_t a = (size_t)i0 * j->m, e = (size_t)i1 * j->m;
    const float *restrict x = j->x;
    const uint8_t *restrict mk = j->cmask;
    float *restrict y = j->y;
    float scale = j->scale;
    for (size_t k = a; k < e; k++) y[k] = mk[k] ? x[k] * scale : 0.0f;
}

void rs_dropout_bwd_mask(recsys_ctx *ctx, int n, int m, const float *dy, float p,
                         const uint8_t *mask, float *dx)
{
    if (p <= 0.0f) {
        rs_dropout(ctx, n, m, dy, m, 0.0f, 0, NULL, dx);
        return;
    }
    if (n <= 0) return;
    ew_job j = job(n, m, p);
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
    const float *restrict b = j->b;
    const float p = j->p, scale = j->scale;
    const uint64_t seed = j->seed;
    const int m = j->m;
    for (int i = i0; i < i1; i++) {
        float *restrict yi = j->y + (size_t)i * m;
        uint64_t base = row_base(j, i);
        if (b)
            for (int c = 0; c < m; c++) yi[c] += b[c];
        for (int c = 0; c < m; c++) yi[c] = yi[c] > 0.0f ? yi[c] : 0.0f;
        if (p > 0.0f) {
            uint8_t keep[KEEP_BLOCK];
            for (int c0 = 0; c0 < m; c0 += KEEP_BLOCK) {
                int w = m - c0 < KEEP_BLOCK ? m - c0 : KEEP_BLOCK;
                keep_bytes(seed, base + (uint64_t)c0, w, p, keep);
                for (int c = 0; c < w; c++) yi[c0 + c] = keep[c] ? yi[c0 + c] * scale : 0.0f;
            }
        }
    }
}

void rs_bias_relu_dropout_fwd(recsys_ctx *ctx, int n, int m, float *y, const float *b, float p,
                              uint64_t seed, const int32_t *row_id)
{
    if (n <= 0) return;
    ew_job j = job(n, m, p);
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
    const float *restrict y = j->x;
    float *restrict dy = j->y;
    float scale = j->scale;
    for (size_t k = a; k < e; k++) dy[k] = y[k] > 0.0f ? dy[k] * scale : 0.0f;
}

void rs_relu_dropout_bwd(recsys_ctx *ctx, int n, int m, const float *y, float p, float *dy)
{
    if (n <= 0) return;
    ew_job j = job(n, m, p);
    j.x = y;
    j.y = dy;
    rs_pool_run(ctx->pool, rs_nn_chunks(n), relu_dropout_bwd_task, &j);
}

static void bias_dropout_add_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_RANGE(j, task, i0, i1);
    const float *restrict b = j->b, *restrict add1 = j->add1, *restrict add2 = j->add2;
    const float p = j->p, scale = j->scale;
    const uint64_t seed = j->seed;
    const int m = j->m;
    for (int i = i0; i < i1; i++) {
        size_t o = (size_t)i * m;
        float *restrict yi = j->y + o;
        uint8_t *restrict mi = j->mask ? j->mask + o : NULL;
        uint64_t base = row_base(j, i);
        if (b)
            for (int c = 0; c < m; c++) yi[c] += b[c];
        if (p > 0.0f) {
            uint8_t keep[KEEP_BLOCK];
            for (int c0 = 0; c0 < m; c0 += KEEP_BLOCK) {
                int w = m - c0 < KEEP_BLOCK ? m - c0 : KEEP_BLOCK;
                uint8_t *k = mi ? mi + c0 : keep;
                keep_bytes(seed, base + (uint64_t)c0, w, p, k);
                for (int c = 0; c < w; c++) yi[c0 + c] = k[c] ? yi[c0 + c] * scale : 0.0f;
            }
        }
        if (add1)
            for (int c = 0; c < m; c++) yi[c] += add1[o + c];
        if (add2)
            for (int c = 0; c < m; c++) yi[c] += add2[o + c];
    }
}

void rs_bias_dropout_add_fwd(recsys_ctx *ctx, int n, int m, float *y, const float *b, float p,
                             uint64_t seed, const int32_t *row_id, uint8_t *mask,
                             const float *add1, const float *add2)
{
    if (n <= 0) return;
    ew_job j = job(n, m, p);
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
    for (int i = i0; i < i1; i++) {
        float *yi = j->y + (size_t)i * j->ldy;
        for (int c = 0; c < j->m; c++) yi[c] = yi[c] > 0.0f ? yi[c] : 0.0f;
    }
}

void rs_relu_fwd(recsys_ctx *ctx, int n, int m, float *x, int ld)
{
    if (n <= 0) return;
    ew_job j = job(n, m, 0.0f);
    j.ld = j.ldy = ld;
    j.x = j.y = x;
    rs_pool_run(ctx->pool, rs_nn_chunks(n), relu_fwd_task, &j);
}

static void relu_bwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_RANGE(j, task, i0, i1);
    for (int i = i0; i < i1; i++) {
        const float *yi = j->x + (size_t)i * j->ld;
        float *di = j->y + (size_t)i * j->ldy;
        for (int c = 0; c < j->m; c++) di[c] = yi[c] > 0.0f ? di[c] : 0.0f;
    }
}

void rs_relu_bwd(recsys_ctx *ctx, int n, int m, const float *y, int ldy, float *dx, int lddx)
{
    if (n <= 0) return;
    ew_job j = job(n, m, 0.0f);
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
    const float *restrict x = j->x;
    float *restrict y = j->y;
    for (size_t k = a; k < b; k++) y[k] += x[k];
}

void rs_nn_add(recsys_ctx *ctx, int n, int m, const float *x, float *y)
{
    if (n <= 0) return;
    ew_job j = job(n, m, 0.0f);
    j.x = x;
    j.y = y;
    rs_pool_run(ctx->pool, rs_nn_chunks(n), add_task, &j);
}
