/*
 * Fused causal softmax attention, AVX-512 (F/BW/VL/DQ): the AVX-512 half of
 * the tile driver in attention_tiles.h (which holds the algorithm), with
 * 16-row tiles and opmask registers.
 *
 * A query tile is 16 consecutive rows, one per SIMD lane, so the running
 * max/sum of the online softmax, the causal mask and the dropout decisions
 * are all lane-wise: no horizontal reductions in the inner loops, and any
 * head size works without channel tails. Q (and dO) of the tile are
 * transposed once into [dh][16] stack buffers; the scores of a key come from
 * broadcasting K[j][c] against Q^T[c]. Keys are visited in blocks of BC, only
 * up to the tile's last row (causal) and from `start` (padding skipped); the
 * L x L matrix is never stored, only a BC x 16 block.
 */
#include "attention_avx512_common.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

/* xt[c][r] = X[r][c] * mul for r < nr, 0 for the other lanes. */
static void load_transposed(const float *X, int ld, int nr, int dh, float mul, float *xt)
{
    const __m512 mv = _mm512_set1_ps(mul);
    for (int c0 = 0; c0 < dh; c0 += W) {
        const __mmask16 cm = row_mask(dh - c0);
        __m512 v[16];
#pragma GCC unroll 16
        for (int r = 0; r < W; r++)
            v[r] = r < nr ? _mm512_maskz_loadu_ps(cm, X + (size_t)r * ld + c0) : _mm512_setzero_ps();
        transpose16(v);
#pragma GCC unroll 16
        for (int k = 0; k < W; k++)
            if (c0 + k < dh) _mm512_store_ps(xt + (size_t)(c0 + k) * W, _mm512_mul_ps(v[k], mv));
    }
}

/* st[t][r] = sum_c xt[c][r] * y[t][c] for NK keys (a compile-time constant
 * once inlined), even and odd channels in separate accumulators so that even
 * a lone key has independent FMA chains. */
RS_INLINE void scores_blk(const float *xt, const float *y, size_t ld, int dh, float *st,
                          const int NK)
{
    __m512 a[8], b[8];
#pragma GCC unroll 8
    for (int t = 0; t < NK; t++) a[t] = b[t] = _mm512_setzero_ps();
    int c = 0;
    for (; c + 2 <= dh; c += 2) {
        const __m512 q0 = _mm512_load_ps(xt + (size_t)c * W);
        const __m512 q1 = _mm512_load_ps(xt + (size_t)(c + 1) * W);
#pragma GCC unroll 8
        for (int t = 0; t < NK; t++) {
            a[t] = _mm512_fmadd_ps(q0, _mm512_set1_ps(y[t * ld + c]), a[t]);
            b[t] = _mm512_fmadd_ps(q1, _mm512_set1_ps(y[t * ld + c + 1]), b[t]);
        }
    }
    if (c < dh) {
        const __m512 q0 = _mm512_load_ps(xt + (size_t)c * W);
#pragma GCC unroll 8
        for (int t = 0; t < NK; t++) a[t] = _mm512_fmadd_ps(q0, _mm512_set1_ps(y[t * ld + c]), a[t]);
    }
#pragma GCC unroll 8
    for (int t = 0; t < NK; t++) _mm512_store_ps(st + t * W, _mm512_add_ps(a[t], b[t]));
}

/* st[j][r] = sum_c xt[c][r] * Y[j][c] for the nk keys of a block. */
static void scores(const float *xt, const float *Y, int ld, int dh, int nk, float *st)
{
    const size_t s = (size_t)ld;
    int j = 0;
    for (; j + 8 <= nk; j += 8) scores_blk(xt, Y + j * s, s, dh, st + (size_t)j * W, 8);
    if (j + 4 <= nk) {
        scores_blk(xt, Y + j * s, s, dh, st + (size_t)j * W, 4);
        j += 4;
    }
    if (j + 2 <= nk) {
        scores_blk(xt, Y + j * s, s, dh, st + (size_t)j * W, 2);
        j += 2;
    }
    if (j < nk) scores_blk(xt, Y + j * s, s, dh, st + (size_t)j * W, 1);
}

#include "attention_tiles.h"

void rs_attn_fwd_avx512(int L, int start, int dh, float scale, const float *Q,
                        const float *K, const float *V, int ld, float drop_p, uint64_t seed,
                        float *O, float *lse)
{
    attn_fwd_run(L, start, dh, scale, Q, K, V, ld, drop_p, seed, O, lse);
}

void rs_attn_bwd_avx512(int L, int start, int dh, float scale, const float *Q,
                        const float *K, const float *V, const float *O, const float *dO,
                        const float *lse, int ld, float drop_p, uint64_t seed, float *dQ,
                        float *dK, float *dV)
{
    attn_bwd_run(L, start, dh, scale, Q, K, V, O, dO, lse, ld, drop_p, seed, dQ, dK, dV);
}
