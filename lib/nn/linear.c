/* Linear layer (y = x·Wᵀ + b) on rs_gemm, and the deterministic column sum
 * used for bias gradients. */
#include "nn/nn.h"

#include <string.h>

typedef struct colsum_job {
    int n, m, ld;
    const float *x;
    float *partial;
} colsum_job;

static void colsum_task(void *arg, int task, int thread)
{
    (void)thread;
    const colsum_job *j = arg;
    int i0 = task * RS_NN_CHUNK_ROWS, i1 = rs_nn_chunk_end(i0, j->n);
    float *p = j->partial + (size_t)task * j->m;
    memset(p, 0, sizeof(float) * (size_t)j->m);
    for (int i = i0; i < i1; i++) {
        const float *xi = j->x + (size_t)i * j->ld;
        for (int c = 0; c < j->m; c++) p[c] += xi[c];
    }
}

void rs_nn_colsum_acc(recsys_ctx *ctx, int n, int m, const float *x, int ld, float *out,
                      float *partial)
{
    if (n <= 0 || m <= 0) return;
    colsum_job j = {n, m, ld, x, partial};
    int chunks = rs_nn_chunks(n);
    rs_pool_run(ctx->pool, chunks, colsum_task, &j);
    /* Reduce chunk partials in chunk order: independent of the thread count. */
    for (int t = 0; t < chunks; t++) {
        const float *p = partial + (size_t)t * m;
        for (int c = 0; c < m; c++) out[c] += p[c];
    }
}

typedef struct bias_job {
    int n, m, ld;
    const float *b;
    float *y;
} bias_job;

static void bias_fill_task(void *arg, int task, int thread)
{
    (void)thread;
    const bias_job *j = arg;
    int i0 = task * RS_NN_CHUNK_ROWS, i1 = rs_nn_chunk_end(i0, j->n);
    for (int i = i0; i < i1; i++) memcpy(j->y + (size_t)i * j->ld, j->b, sizeof(float) * (size_t)j->m);
}

void rs_linear_fwd(recsys_ctx *ctx, int n, int in, int out, const float *x, int ldx,
                   const float *W, const float *b, float *y, int ldy)
{
    if (n <= 0) return;
    float beta = 0.0f;
    if (b) {
        /* Start from the bias rows so the GEMM adds onto them in one pass. */
        bias_job j = {n, out, ldy, b, y};
        rs_pool_run(ctx->pool, rs_nn_chunks(n), bias_fill_task, &j);
        beta = 1.0f;
    }
    rs_gemm(ctx, 0, 1, n, out, in, 1.0f, x, ldx, W, in, beta, y, ldy);
}

void rs_linear_bwd(recsys_ctx *ctx, int n, int in, int out, const float *x, int ldx,
                   const float *W, const float *dy, int lddy, float *dx, int lddx,
                   int accumulate_dx, float *dW, float *db, float *partial)
{
    if (n <= 0) return;
    if (dW) rs_gemm(ctx, 1, 0, out, in, n, 1.0f, dy, lddy, x, ldx, 1.0f, dW, in);
    if (db) rs_nn_colsum_acc(ctx, n, out, dy, lddy, db, partial);
    if (dx) rs_gemm(ctx, 0, 0, n, in, out, 1.0f, dy, lddy, W, in, accumulate_dx ? 1.0f : 0.0f, dx, lddx);
}
