/* The optional oneDNN GEMM backend: a thin wrapper over dnnl_sgemm, which
 * takes row-major operands like rs_gemm. oneDNN runs its own OpenMP threads
 * (OMP_NUM_THREADS), so this is called from the caller's thread, never from
 * inside the ctx pool. */
#include "kernels_isa.h"

#ifdef RECSYS_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>

int rs_gemm_onednn(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A,
                                  lda, B, ldb, beta, C, ldc);
    return st == dnnl_success ? 0 : -1;
}
#else
int rs_gemm_onednn(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    (void)trans_a, (void)trans_b, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda;
    (void)B, (void)ldb, (void)beta, (void)C, (void)ldc;
    return -1;
}
#endif
