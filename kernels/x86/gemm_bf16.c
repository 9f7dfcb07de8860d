/*
 * AVX-512-BF16 GEMM for the bf16 compute mode: op(A) and op(B) are rounded
 * to bfloat16 (nearest even) while packing, vdpbf16ps multiplies pairs of
 * bf16 along K and accumulates them in fp32; alpha, beta and C stay fp32.
 *
 * Same blocking as the fp32 kernel (gemm_blocked.h), with two differences:
 *  - vdpbf16ps works on pairs (k, k+1), so B is packed as 32-bit words
 *    (bf16 of row 2p | bf16 of row 2p+1 << 16) per column, K padded to even;
 *  - A must be converted too, so each MC-row block of A is packed to bf16
 *    once per K block (reused by every column panel): rows of bf16 for A·B
 *    (consecutive bf16 already form the pairs), pair-major for Aᵀ·B.
 */
#include "kernels_isa.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "gemm_blocked.h"

#define VW 16
#define NVMAX 4
#define MR 6
#define KC 256
#define NC 256
#define MC 240
#define PF_ROWS 8

/* B words: KC/2 x NC; A words: MC x KC/2 (or KC/2 x MC rounded to 16). */
_Static_assert(KC / 2 * NC + (MC + 16) * KC / 2 <= RS_GEMM_SCRATCH_FLOATS, "scratch too small");

/* fp32 -> bf16, round to nearest even; NaN stays a (quiet) NaN. */
static inline uint32_t bf16_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

/* 32 bf16 of cvtne2ps (lo: 0..15, hi: 16..31) -> 16 words lo[i] | hi[i] << 16. */
static inline __m512i interleave_pairs(__m512 lo, __m512 hi)
{
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                         24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                         16, 0);
    __m512i both = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
    return _mm512_permutexvar_epi16(idx, both);
}

static inline __mmask16 first_n(int n)
{
    return (__mmask16)(n >= 16 ? 0xffffu : n <= 0 ? 0u : (1u << n) - 1u);
}

/* Pack op(B)[k0.., j0..] (kc x nc) into word panels of nr columns: panel jr
 * at dst + jr*kcp, kcp = ceil(kc/2) rows of wp words, zero padded. */
static void pack_b(int tb, const float *B, size_t ldb, int k0, int j0, int kc, int nc,
                   uint32_t *restrict dst)
{
    int kcp = (kc + 1) / 2;
    for (int jr = 0; jr < nc; jr += VW * NVMAX) {
        int w = rs_gemm_min(VW * NVMAX, nc - jr), wp = rs_gemm_round_up(w, VW);
        uint32_t *d = dst + (size_t)jr * kcp;
        if (!tb) {
            for (int p = 0; p < kcp; p++) {
                const float *r0 = B + (size_t)(k0 + 2 * p) * ldb + j0 + jr;
                int has1 = 2 * p + 1 < kc;
                for (int j = 0; j < wp; j += VW) {
                    __mmask16 m = first_n(w - j);
                    __m512 lo = _mm512_maskz_loadu_ps(m, r0 + j);
                    __m512 hi = has1 ? _mm512_maskz_loadu_ps(m, r0 + ldb + j) : _mm512_setzero_ps();
                    _mm512_store_si512((void *)(d + (size_t)p * wp + j), interleave_pairs(lo, hi));
                }
            }
        } else {
            for (int p = 0; p < kcp; p++)
                memset(d + (size_t)p * wp + w, 0, sizeof(uint32_t) * (size_t)(wp - w));
            for (int j = 0; j < w; j++) {
                const float *s = B + (size_t)(j0 + jr + j) * ldb + k0;
                for (int p = 0; p < kc / 2; p++)
                    d[(size_t)p * wp + j] = bf16_bits(s[2 * p]) | bf16_bits(s[2 * p + 1]) << 16;
                if (kc & 1) d[(size_t)(kc / 2) * wp + j] = bf16_bits(s[kc - 1]);
            }
        }
    }
}

/* Pack the mc x kc block of op(A) to bf16 words. A·B: row m at dst + m*kcp
 * (consecutive bf16 of a row already are the (k, k+1) pairs). Aᵀ·B: pair p
 * at dst + p*mcp, mcp = mc rounded up to 16 (built from rows 2p and 2p+1 of
 * A). Padding (odd kc) is zero: 0 * anything in B stays 0. */
static void pack_a(int ta, const float *A, size_t lda, int mc, int kc, uint32_t *restrict dst)
{
    int kcp = (kc + 1) / 2;
    if (!ta) {
        for (int m = 0; m < mc; m++) {
            const float *s = A + m * lda;
            uint16_t *d = (uint16_t *)(dst + (size_t)m * kcp);
            for (int k = 0; k < 2 * kcp; k += VW) {
                _mm_prefetch((const char *)(s + PF_ROWS * lda + k), _MM_HINT_T0);
                __m512 x = _mm512_maskz_loadu_ps(first_n(kc - k), s + k);
                __m256i h = (__m256i)_mm512_cvtneps_pbh(x);
                _mm256_mask_storeu_epi16(d + k, first_n(2 * kcp - k), h);
            }
        }
    } else {
        int mcp = rs_gemm_round_up(mc, VW);
        for (int p = 0; p < kcp; p++) {
            const float *r0 = A + (size_t)(2 * p) * lda, *r1 = r0 + lda;
            int has1 = 2 * p + 1 < kc;
            for (int m = 0; m < mcp; m += VW) {
                __mmask16 msk = first_n(mc - m);
                __m512 lo = _mm512_maskz_loadu_ps(msk, r0 + m);
                __m512 hi = has1 ? _mm512_maskz_loadu_ps(msk, r1 + m) : _mm512_setzero_ps();
                _mm512_store_si512((void *)(dst + (size_t)p * mcp + m), interleave_pairs(lo, hi));
            }
        }
    }
}

static inline __attribute__((always_inline)) void
ukr_body(const int mr, const int nv, int ncols, int kcp, const uint32_t *a, size_t rsa,
         size_t csa, const uint32_t *bp, float *c, size_t ldc, float alpha, float beta)
{
    __m512 acc[MR][NVMAX];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) acc[r][v] = _mm512_setzero_ps();
    const size_t wp = (size_t)nv * VW;
#pragma GCC unroll 2
    for (int p = 0; p < kcp; p++) {
        __m512bh b[NVMAX];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            b[v] = (__m512bh)_mm512_load_si512((const void *)(bp + v * VW));
        bp += wp;
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            __m512bh x = (__m512bh)_mm512_set1_epi32((int)a[r * rsa + p * csa]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], x, b[v]);
        }
    }
    __mmask16 mtail = first_n(ncols - (nv - 1) * VW);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
        float *cr = c + r * ldc;
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            __mmask16 m = v == nv - 1 ? mtail : (__mmask16)0xffffu;
            __m512 x = _mm512_mul_ps(acc[r][v], va);
            if (beta != 0.0f) x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, cr + v * VW), x);
            _mm512_mask_storeu_ps(cr + v * VW, m, x);
        }
    }
}

#define UKR_PARAMS                                                                         \
    int ncols, int kcp, const uint32_t *a, size_t rsa, size_t csa, const uint32_t *bp,     \
        float *c, size_t ldc, float alpha, float beta
#define UKR_ARGS ncols, kcp, a, rsa, csa, bp, c, ldc, alpha, beta
#define UKR_CASE(m, n) \
    case (m) * 8 + (n): ukr_body(m, n, UKR_ARGS); return;
#define UKR_ROW(m) UKR_CASE(m, 1) UKR_CASE(m, 2) UKR_CASE(m, 3) UKR_CASE(m, 4)

static void ukr(int mr, int nv, UKR_PARAMS)
{
    switch (mr * 8 + nv) {
        UKR_ROW(1) UKR_ROW(2) UKR_ROW(3) UKR_ROW(4) UKR_ROW(5) UKR_ROW(6)
    default: return;
    }
}

void rs_gemm_avx512_bf16(int trans_a, int trans_b, int M, int N, int K, float alpha,
                         const float *A, int lda, const float *B, int ldb, float beta,
                         float *C, int ldc, float *scratch)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        rs_gemm_scale_c(M, N, beta, C, ldc);
        return;
    }
    /* Without a caller buffer: the small blocks of gemm_blocked.h on the
     * stack, as bf16 pairs: kc/2 x nc words of B, mc x kc/2 of A (14 KB). */
    _Alignas(64) uint32_t local[RS_GEMM_STACK_KC / 2 * RS_GEMM_STACK_NC +
                                RS_GEMM_STACK_MC * RS_GEMM_STACK_KC / 2];
    uint32_t *buf = scratch ? (uint32_t *)scratch : local;
    int kc_max = scratch ? KC : RS_GEMM_STACK_KC, nc_max = scratch ? NC : RS_GEMM_STACK_NC;
    int mc_max = scratch ? MC : RS_GEMM_STACK_MC;
    int kc_step = rs_gemm_block(K, kc_max, 2); /* even blocks: pairs never straddle */
    int nc_step = rs_gemm_block(N, nc_max, VW * NVMAX);
    size_t rsa = trans_a ? 1 : (size_t)lda, csa = trans_a ? (size_t)lda : 1;
    uint32_t *apack = buf + (size_t)(kc_max / 2) * nc_max;
    for (int jc = 0; jc < N; jc += nc_step) {
        int nc = rs_gemm_min(nc_step, N - jc);
        for (int pc = 0; pc < K; pc += kc_step) {
            int kc = rs_gemm_min(kc_step, K - pc), kcp = (kc + 1) / 2;
            pack_b(trans_b, B, (size_t)ldb, pc, jc, kc, nc, buf);
            float b = pc == 0 ? beta : 1.0f;
            for (int ic = 0; ic < M; ic += mc_max) {
                int mc = rs_gemm_min(mc_max, M - ic);
                pack_a(trans_a, A + ic * rsa + pc * csa, (size_t)lda, mc, kc, apack);
                /* word (m, p) of the packed block */
                size_t prsa = trans_a ? 1 : (size_t)kcp;
                size_t pcsa = trans_a ? (size_t)rs_gemm_round_up(mc, VW) : 1;
                for (int jr = 0; jr < nc; jr += VW * NVMAX) {
                    int ncols = rs_gemm_min(VW * NVMAX, nc - jr), nv = (ncols + VW - 1) / VW;
                    for (int ir = 0; ir < mc; ir += MR)
                        ukr(rs_gemm_min(MR, mc - ir), nv, ncols, kcp, apack + ir * prsa, prsa,
                            pcsa, buf + (size_t)jr * kcp,
                            C + (size_t)(ic + ir) * ldc + jc + jr, (size_t)ldc, alpha, b);
                }
            }
        }
    }
}
