/* Scalar reference GEMM: the definition every optimised variant is tested
 * against. Accumulates in double so it is also a good oracle. */
#include "kernels.h"

void rs_gemm_ref(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc,
                 float *scratch)
{
    (void)scratch; /* no packing: may be NULL */
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++) {
                float a = trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += (double)a * b;
            }
            float *c = &C[(size_t)i * ldc + j];
            *c = beta == 0.0f ? alpha * (float)acc : alpha * (float)acc + beta * *c;
        }
    }
}
