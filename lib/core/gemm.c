/*
 * rs_gemm: the library's GEMM entry point. Chooses the backend (oneDNN, the
 * bf16 kernel or the dispatched fp32 kernel), then splits the work across
 * the ctx pool:
 *  - over blocks of rows of C (and of columns when M alone cannot feed the
 *    threads): each task packs its own B columns, so few row blocks = little
 *    packing;
 *  - over K when C is small and K huge (weight gradients Xᵀ·dY: 50..200
 *    squared outputs, K = batch·length): each thread sums its K chunks into
 *    its own partial C, then the partials are reduced into C.
 * Kernels get per-thread packing buffers from a per-ctx scratch that grows
 * on demand and lives until recsys_ctx_free.
 */
#include "core/internal.h"
#include "kernels_isa.h"

#include <string.h>

#define SERIAL_FLOPS 2e6      /* below this, waking the pool costs more than it saves */
#define ROWS_PER_TASK_MIN 512 /* a row block amortises packing its B block */
#define COLS_ALIGN 64         /* column blocks are whole 64-float AVX-512 panels */
#define ROWS_ALIGN 48         /* row blocks are whole 6-row tiles (and cache lines) */
#define K_CHUNK_MIN 256
#define PARTIAL_FLOATS_MAX ((size_t)1 << 22)
#define MAX_THREADS 1024

typedef struct gemm_job {
    rs_gemm_fn fn;
    int ta, tb, M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
    float *scratch;        /* RS_GEMM_SCRATCH_FLOATS per thread, or NULL */
    int tn, m_chunk, n_chunk; /* 2-D split: task = row block * tn + column block */
    int k_chunk, rows_per_reduce, n_threads; /* K split */
    float *partial;        /* M x N per thread */
} gemm_job;

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }
static int round_up(int x, int m) { return (x + m - 1) / m * m; }

static float *thread_scratch(const gemm_job *j, int thread)
{
    return j->scratch ? j->scratch + (size_t)thread * RS_GEMM_SCRATCH_FLOATS : NULL;
}

/* The ctx scratch, grown to at least n floats; NULL if that fails. */
static float *scratch_reserve(recsys_ctx *ctx, size_t n)
{
    if (ctx->gemm_scratch_floats >= n) return ctx->gemm_scratch;
    rs_free(ctx->gemm_scratch);
    ctx->gemm_scratch_floats = 0;
    ctx->gemm_scratch = rs_malloc(rs_mul_size(n, sizeof(float)));
    if (ctx->gemm_scratch) ctx->gemm_scratch_floats = n;
    return ctx->gemm_scratch;
}

static void task_2d(void *arg, int task, int thread)
{
    const gemm_job *j = arg;
    int i0 = task / j->tn * j->m_chunk, j0 = task % j->tn * j->n_chunk;
    if (i0 >= j->M || j0 >= j->N) return;
    int m = imin(j->m_chunk, j->M - i0), n = imin(j->n_chunk, j->N - j0);
    const float *A = j->ta ? j->A + i0 : j->A + (size_t)i0 * j->lda;
    const float *B = j->tb ? j->B + (size_t)j0 * j->ldb : j->B + j0;
    j->fn(j->ta, j->tb, m, n, j->K, j->alpha, A, j->lda, B, j->ldb, j->beta,
          j->C + (size_t)i0 * j->ldc + j0, j->ldc, thread_scratch(j, thread));
}

static void task_k_chunk(void *arg, int task, int thread)
{
    gemm_job *j = arg;
    int k0 = task * j->k_chunk, k = imin(j->k_chunk, j->K - k0);
    const float *A = j->ta ? j->A + (size_t)k0 * j->lda : j->A + k0;
    const float *B = j->tb ? j->B + k0 : j->B + (size_t)k0 * j->ldb;
    float *P = j->partial + (size_t)task * j->M * j->N; /* one partial per chunk */
    j->fn(j->ta, j->tb, j->M, j->N, k, j->alpha, A, j->lda, B, j->ldb, 0.0f, P, j->N,
          thread_scratch(j, thread));
}

/* C = beta*C + sum of the partials (which already carry alpha), by rows. */
static void task_reduce(void *arg, int task, int thread)
{
    (void)thread;
    const gemm_job *j = arg;
    int i0 = task * j->rows_per_reduce, i1 = imin(j->M, i0 + j->rows_per_reduce);
    for (int i = i0; i < i1; i++) {
        float *c = j->C + (size_t)i * j->ldc;
        if (j->beta == 0.0f) memset(c, 0, sizeof(float) * (size_t)j->N);
        else if (j->beta != 1.0f)
            for (int x = 0; x < j->N; x++) c[x] *= j->beta;
        for (int t = 0; t < j->n_threads; t++) { /* n_threads = chunks here */
            const float *p = j->partial + ((size_t)t * j->M + i) * j->N;
            for (int x = 0; x < j->N; x++) c[x] += p[x];
        }
    }
}

/* Split K when the output is small and K dwarfs it (the 2-D split would
 * give each thread a sliver of a 50..200-wide C). */
static int want_k_split(int M, int N, int K, int nt)
{
    return K >= 4 * K_CHUNK_MIN && K >= 4 * M && K >= 4 * N && M < ROWS_PER_TASK_MIN * 2 &&
           (size_t)M * N * 16 <= PARTIAL_FLOATS_MAX;
}

static void run_k_split(recsys_ctx *ctx, gemm_job *j, int nt)
{
    /* Chunking depends on K only, and partials are summed in chunk order:
     * the result is the same for any thread count and any scheduling. */
    int chunks = imax(1, imin(16, j->K / K_CHUNK_MIN));
    size_t kern = (size_t)nt * RS_GEMM_SCRATCH_FLOATS;
    float *s = scratch_reserve(ctx, kern + (size_t)chunks * j->M * j->N);
    if (!s) {
        j->tn = 1;
        j->m_chunk = j->M;
        j->n_chunk = j->N;
        j->scratch = NULL;
        rs_pool_run(ctx->pool, 1, task_2d, j);
        return;
    }
    j->scratch = s;
    j->partial = s + kern;
    j->k_chunk = (j->K + chunks - 1) / chunks;
    chunks = (j->K + j->k_chunk - 1) / j->k_chunk;
    j->n_threads = chunks;
    rs_pool_run(ctx->pool, chunks, task_k_chunk, j);
    j->rows_per_reduce = imax(1, (j->M + 2 * nt - 1) / (2 * nt));
    rs_pool_run(ctx->pool, (j->M + j->rows_per_reduce - 1) / j->rows_per_reduce, task_reduce, j);
}

/* Row blocks first (tall-skinny model GEMMs: rows only); more tasks than
 * threads when rows are plentiful, so a core shared with another process
 * does not hold everyone up; column blocks only when rows run out. */
static void run_2d(recsys_ctx *ctx, gemm_job *j, int nt)
{
    j->scratch = scratch_reserve(ctx, (size_t)nt * RS_GEMM_SCRATCH_FLOATS);
    int want = j->M >= 4 * ROWS_PER_TASK_MIN * nt ? 4 * nt : nt;
    int row_tasks = imax(1, imin(want, j->M / ROWS_PER_TASK_MIN));
    int col_tasks = 1;
    if (row_tasks < want)
        col_tasks = imax(1, imin((want + row_tasks - 1) / row_tasks,
                                 (j->N + COLS_ALIGN - 1) / COLS_ALIGN));
    if (row_tasks * col_tasks < nt) /* small M and N: thinner row blocks */
        row_tasks = imax(1, imin(nt / col_tasks, j->M / ROWS_ALIGN));
    j->m_chunk = round_up((j->M + row_tasks - 1) / row_tasks, ROWS_ALIGN);
    j->n_chunk = round_up((j->N + col_tasks - 1) / col_tasks, COLS_ALIGN);
    row_tasks = (j->M + j->m_chunk - 1) / j->m_chunk;
    col_tasks = (j->N + j->n_chunk - 1) / j->n_chunk;
    j->tn = col_tasks;
    rs_pool_run(ctx->pool, row_tasks * col_tasks, task_2d, j);
}

void rs_gemm(recsys_ctx *ctx, int trans_a, int trans_b, int M, int N, int K, float alpha,
             const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    /* oneDNN runs its own threads: called here, never from a pool task. On
     * failure, the native kernels do the work. */
    if (ctx->gemm_onednn &&
        rs_gemm_onednn(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0)
        return;
    rs_gemm_fn fn = ctx->bf16 && ctx->kern.gemm_bf16 ? ctx->kern.gemm_bf16 : ctx->kern.gemm;
    int nt = imin(rs_pool_threads(ctx->pool), MAX_THREADS);
    int ksplit = 2.0 * M * N * (K > 0 ? K : 0) >= SERIAL_FLOPS && want_k_split(M, N, K, nt);
    if (!ksplit && (nt == 1 || 2.0 * M * N * (K > 0 ? K : 0) < SERIAL_FLOPS)) {
        float *s = scratch_reserve(ctx, RS_GEMM_SCRATCH_FLOATS);
        fn(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, s);
        return;
    }
    gemm_job j = {.fn = fn, .ta = trans_a, .tb = trans_b, .M = M, .N = N, .K = K,
                  .lda = lda, .ldb = ldb, .ldc = ldc, .alpha = alpha, .beta = beta,
                  .A = A, .B = B, .C = C};
    if (ksplit)
        run_k_split(ctx, &j, nt);
    else
        run_2d(ctx, &j, nt);
}
