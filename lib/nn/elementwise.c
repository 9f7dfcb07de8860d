/* Element-wise layers split in fixed row chunks: dropout, ReLU, add. */
#include "nn.h"

#include <string.h>

typedef struct ew_job {
    int n, m, ld, ldy;
    const float *x;
    float *y;
    float p;
    uint64_t seed;
    const int32_t *row_id;
} ew_job;

#define CHUNK_RANGE(j, task, i0, i1)                                              \
    int i0 = (task) * RS_NN_CHUNK_ROWS;                                           \
    int i1 = i0 + RS_NN_CHUNK_ROWS < (j)->n ? i0 + RS_NN_CHUNK_ROWS : (j)->n

static void dropout_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_RANGE(j, task, i0, i1);
    float keep_scale = 1.0f / (1.0f - j->p);
    for (int i = i0; i < i1; i++) {
        const float *xi = j->x + (size_t)i * j->ld;
        float *yi = j->y + (size_t)i * j->ld;
        uint64_t base = (uint64_t)(j->row_id ? j->row_id[i] : i) * (uint64_t)j->m;
        for (int c = 0; c < j->m; c++)
            yi[c] = rs_dropout_keep(j->seed, base + (uint64_t)c, j->p) ? xi[c] * keep_scale : 0.0f;
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
    ew_job j = {n, m, ld, ld, x, y, p, seed, row_id};
    rs_pool_run(ctx->pool, rs_nn_chunks(n), p > 0.0f ? dropout_task : copy_task, &j);
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
    ew_job j = {n, m, ld, ld, x, x, 0.0f, 0, NULL};
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
        for (int c = 0; c < j->m; c++)
            if (!(yi[c] > 0.0f)) di[c] = 0.0f;
    }
}

void rs_relu_bwd(recsys_ctx *ctx, int n, int m, const float *y, int ldy, float *dx, int lddx)
{
    if (n <= 0) return;
    ew_job j = {n, m, ldy, lddx, y, dx, 0.0f, 0, NULL};
    rs_pool_run(ctx->pool, rs_nn_chunks(n), relu_bwd_task, &j);
}

static void add_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    CHUNK_RANGE(j, task, i0, i1);
    size_t a = (size_t)i0 * j->m, b = (size_t)i1 * j->m;
    for (size_t k = a; k < b; k++) j->y[k] += j->x[k];
}

void rs_nn_add(recsys_ctx *ctx, int n, int m, const float *x, float *y)
{
    if (n <= 0) return;
    ew_job j = {n, m, m, m, x, y, 0.0f, 0, NULL};
    rs_pool_run(ctx->pool, rs_nn_chunks(n), add_task, &j);
}
