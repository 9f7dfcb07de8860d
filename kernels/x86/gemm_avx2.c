/*
 * AVX2+FMA FP32 GEMM: the blocked driver of gemm_blocked.h around a 6x16
 * register tile (6 rows x 2 ymm = 12 accumulators, 2 B vectors, 1 broadcast:
 * 15 of the 16 ymm registers). Narrower panels (N edges) and fewer rows
 * (M edges) get their own unrolled variants; a partial last vector is
 * loaded with a mask and stored through a small buffer (vmaskmovps stores
 * are slow on AMD cores).
 */
#include "kernels_isa.h"

#include <immintrin.h>

#include "gemm_blocked.h"

#define VW 8      /* floats per ymm */
#define NVMAX 2   /* ymm per tile row: nr = 16 */
#define MR 6      /* tile rows */
#define KC 256    /* K block: C is read and written once per block */
#define NC 256    /* N block: the packed 256 x 256 B block (256 KB) stays in L2 */
#define MC 240    /* M block: 240 rows x 256 of A (240 KB) stay in L2 beside it */
#define AT_PACK_LDA 1024 /* Aᵀ·B copies A from this lda up (gemm_blocked.h) */

/* packed B block, then the packed A tiles of Aᵀ·B (gemm_blocked.h) */
_Static_assert(KC * NC + MC * KC + MC / MR * 16 <= RS_GEMM_SCRATCH_FLOATS,
               "scratch too small for the blocking");

static inline __attribute__((always_inline)) void
ukr_body(const int mr, const int nv, const int ta, const int full, int ncols, int kc,
         const float *a, size_t rsa, size_t csa, const float *bp, size_t rsb, float *c,
         size_t ldc, float alpha, float beta)
{
    __m256 acc[MR][NVMAX];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) acc[r][v] = _mm256_setzero_ps();

    int tail = ncols - (nv - 1) * VW;
    __m256i mtail = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail),
                                       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const float *ar[MR];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
        ar[r] = a + r * rsa;
        /* C is touched only after the K loop: start fetching it now */
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            _mm_prefetch((const char *)(c + r * ldc + v * VW), _MM_HINT_T0);
    }

    /* K in chunks of 16 (one cache line of each A row): each chunk starts
     * fetching one line of each row of the next tile, so A, read from
     * memory once, arrives before it is needed (hardware prefetchers lose
     * time on each of the short row segments). */
    for (int k0 = 0; k0 < kc; k0 += 16) {
        int k1 = k0 + 16 < kc ? k0 + 16 : kc;
        if (!ta)
#pragma GCC unroll 8
            for (int r = 0; r < mr; r++)
                _mm_prefetch((const char *)(ar[r] + MR * rsa + k0), _MM_HINT_T0);
#pragma GCC unroll 4
        for (int k = k0; k < k1; k++) {
            __m256 b[NVMAX];
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                b[v] = v < nv - 1 || full ? _mm256_loadu_ps(bp + v * VW)
                                           : _mm256_maskload_ps(bp + v * VW, mtail);
            bp += rsb;
#pragma GCC unroll 8
            for (int r = 0; r < mr; r++) {
                /* op(A)[r,k]: row r of A, or the r-th of mr adjacent floats of row k of A */
                __m256 x = _mm256_set1_ps(ta ? a[r] : ar[r][k]);
#pragma GCC unroll 4
                for (int v = 0; v < nv; v++) acc[r][v] = _mm256_fmadd_ps(x, b[v], acc[r][v]);
            }
            if (ta) a += csa;
        }
    }

    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
        float *cr = c + r * ldc;
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            __m256 x = _mm256_mul_ps(acc[r][v], va);
            if (v < nv - 1 || full) {
                if (beta != 0.0f) x = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr + v * VW), x);
                _mm256_storeu_ps(cr + v * VW, x);
            } else {
                if (beta != 0.0f)
                    x = _mm256_fmadd_ps(vb, _mm256_maskload_ps(cr + v * VW, mtail), x);
                float t[VW];
                _mm256_storeu_ps(t, x);
                for (int j = 0; j < tail; j++) cr[v * VW + j] = t[j];
            }
        }
    }
}

#define UKR_PARAMS                                                                         \
    int ncols, int kc, const float *a, size_t rsa, size_t csa, const float *bp, size_t rsb, \
        float *c, size_t ldc, float alpha, float beta
#define UKR_ARGS ncols, kc, a, rsa, csa, bp, rsb, c, ldc, alpha, beta
/* full: the last vector of the panel is complete (no masked loads) */
#define UKR_CASE(m, n, ta)                                                                 \
    case (m) * 8 + (n):                                                                    \
        if (ncols == (n) * VW) ukr_body(m, n, ta, 1, UKR_ARGS);                              \
        else ukr_body(m, n, ta, 0, UKR_ARGS);                                              \
        return;
#define UKR_ROW(m, ta) UKR_CASE(m, 1, ta) UKR_CASE(m, 2, ta)

static void ukr_n(int mr, int nv, UKR_PARAMS)
{
    switch (mr * 8 + nv) {
        UKR_ROW(1, 0) UKR_ROW(2, 0) UKR_ROW(3, 0) UKR_ROW(4, 0) UKR_ROW(5, 0) UKR_ROW(6, 0)
    default: return;
    }
}

static void ukr_t(int mr, int nv, UKR_PARAMS)
{
    switch (mr * 8 + nv) {
        UKR_ROW(1, 1) UKR_ROW(2, 1) UKR_ROW(3, 1) UKR_ROW(4, 1) UKR_ROW(5, 1) UKR_ROW(6, 1)
    default: return;
    }
}

void rs_gemm_avx2(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc,
                  float *scratch)
{
    _Static_assert(MR == RS_GEMM_STACK_MR, "the stack buffer's A tiles");
    rs_gemm_run(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, scratch, KC, NC,
                MC, VW, VW * NVMAX, MR, AT_PACK_LDA, ukr_n, ukr_t);
}
