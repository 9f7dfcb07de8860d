/* rs_gemm: the library's multi-threaded GEMM entry point. Splits the rows
 * of C across the ctx pool and calls the dispatched single-thread kernel. */
#include "internal.h"

typedef struct gemm_job {
    rs_gemm_fn fn;
    int trans_a, trans_b, M, N, K, lda, ldb, ldc, rows_per_task;
    float alpha, beta;
    const float *A, *B;
    float *C;
} gemm_job;

static void gemm_task(void *arg, int task, int thread)
{
    (void)thread;
    const gemm_job *j = arg;
    int i0 = task * j->rows_per_task;
    int m = j->M - i0 < j->rows_per_task ? j->M - i0 : j->rows_per_task;
    const float *A = j->trans_a ? j->A + i0 : j->A + (size_t)i0 * j->lda;
    j->fn(j->trans_a, j->trans_b, m, j->N, j->K, j->alpha, A, j->lda, j->B, j->ldb, j->beta,
          j->C + (size_t)i0 * j->ldc, j->ldc);
}

void rs_gemm(recsys_ctx *ctx, int trans_a, int trans_b, int M, int N, int K, float alpha,
             const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    int nt = rs_pool_threads(ctx->pool);
    double flops = 2.0 * M * N * K;
    if (nt == 1 || flops < 2e5 || M < 16) {
        ctx->kern.gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    gemm_job j = {ctx->kern.gemm, trans_a, trans_b, M, N, K, lda, ldb, ldc, 0, alpha, beta, A, B, C};
    int tasks = nt * 4;
    j.rows_per_task = (M + tasks - 1) / tasks;
    j.rows_per_task = (j.rows_per_task + 15) & ~15;
    tasks = (M + j.rows_per_task - 1) / j.rows_per_task;
    rs_pool_run(ctx->pool, tasks, gemm_task, &j);
}
