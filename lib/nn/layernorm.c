/* Layer norm (fused with a residual add) over the kernel table, in row
 * chunks; gain/bias gradients reduced from per-chunk partials in order. */
#include "nn/nn.h"

#include <string.h>

typedef struct ln_job {
    const rs_kernels *k;
    int n, d;
    const float *x, *r, *gamma, *beta, *mean, *rstd, *dy;
    float eps;
    float *y, *mean_out, *rstd_out, *dx, *partial;
    int want_dgamma, want_dbeta;
} ln_job;

static void ln_fwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const ln_job *j = arg;
    int i0 = task * RS_NN_CHUNK_ROWS, m = rs_nn_chunk_end(i0, j->n) - i0;
    size_t off = (size_t)i0 * j->d;
    j->k->layernorm_fwd(m, j->d, j->x + off, j->r ? j->r + off : NULL, j->gamma, j->beta, j->eps,
                        j->y + off, j->mean_out + i0, j->rstd_out + i0);
}

void rs_layernorm_fwd(recsys_ctx *ctx, int n, int d, const float *x, const float *r,
                      const float *gamma, const float *beta, float eps, float *y, float *mean,
                      float *rstd)
{
    if (n <= 0) return;
    ln_job j = {&ctx->kern, n, d, x, r, gamma, beta, NULL, NULL, NULL, eps, y, mean, rstd,
                NULL, NULL, 0, 0};
    rs_pool_run(ctx->pool, rs_nn_chunks(n), ln_fwd_task, &j);
}

static void ln_bwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const ln_job *j = arg;
    int i0 = task * RS_NN_CHUNK_ROWS, m = rs_nn_chunk_end(i0, j->n) - i0;
    size_t off = (size_t)i0 * j->d;
    float *pg = j->partial + (size_t)task * 2 * j->d, *pb = pg + j->d;
    memset(pg, 0, sizeof(float) * 2 * (size_t)j->d);
    j->k->layernorm_bwd(m, j->d, j->x + off, j->r ? j->r + off : NULL, j->gamma, j->mean + i0,
                        j->rstd + i0, j->dy + off, j->dx + off, j->want_dgamma ? pg : NULL,
                        j->want_dbeta ? pb : NULL);
}

void rs_layernorm_bwd(recsys_ctx *ctx, int n, int d, const float *x, const float *r,
                      const float *gamma, const float *mean, const float *rstd, const float *dy,
                      float *dx, float *dgamma, float *dbeta, float *partial)
{
    if (n <= 0) return;
    ln_job j = {&ctx->kern, n, d, x, r, gamma, NULL, mean, rstd, dy, 0.0f, NULL, NULL, NULL,
                dx, partial, dgamma != NULL, dbeta != NULL};
    int chunks = rs_nn_chunks(n);
    rs_pool_run(ctx->pool, chunks, ln_bwd_task, &j);
    for (int t = 0; t < chunks; t++) {
        const float *pg = partial + (size_t)t * 2 * d, *pb = pg + d;
        if (dgamma)
            for (int c = 0; c < d; c++) dgamma[c] += pg[c];
        if (dbeta)
            for (int c = 0; c < d; c++) dbeta[c] += pb[c];
    }
}
