/*
 * Fused causal softmax attention, AVX-512 (F/BW/VL/DQ). Same algorithm as
 * attention_avx2.c with 16-row tiles and opmask registers.
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

static void fwd_tile(const attn_args *a, int i0, int nr)
{
    _Alignas(64) float qt[RS_ATTN_DH_MAX * W];
    _Alignas(64) float ot[RS_ATTN_DH_MAX * W];
    _Alignas(64) float st[BC * W];
    const int ld = a->ld, dh = a->dh;
    const __m512 ninf = _mm512_set1_ps(-INFINITY), ks = _mm512_set1_ps(a->keep_scale);

    load_transposed(a->Q + (size_t)i0 * ld, ld, nr, dh, a->scale, qt);
    memset(ot, 0, sizeof(float) * (size_t)dh * W);
    __m512 m = ninf, l = _mm512_setzero_ps();
    const int jend = i0 + nr; /* keys up to the tile's last row */
    for (int j0 = a->start; j0 < jend; j0 += BC) {
        const int nk = jend - j0 < BC ? jend - j0 : BC;
        scores(qt, a->K + (size_t)j0 * ld, ld, dh, nk, st);
        __m512 bm = ninf;
        for (int j = 0; j < nk; j++) {
            __m512 s = _mm512_load_ps(st + j * W);
            int off = j0 + j - i0;
            if (off > 0) {
                s = _mm512_mask_mov_ps(ninf, causal_mask(off), s);
                _mm512_store_ps(st + j * W, s);
            }
            bm = _mm512_max_ps(bm, s);
        }
        const __m512 mn = _mm512_max_ps(m, bm);
        const __m512 alpha = exp16(_mm512_sub_ps(m, mn));
        __m512 sum = _mm512_setzero_ps();
        for (int j = 0; j < nk; j++) {
            __m512 p = exp16(_mm512_sub_ps(_mm512_load_ps(st + j * W), mn));
            sum = _mm512_add_ps(sum, p);
            if (a->drop) p = _mm512_maskz_mul_ps(keep16(a, i0, j0 + j), p, ks);
            _mm512_store_ps(st + j * W, p);
        }
        l = _mm512_fmadd_ps(l, alpha, sum);
        m = mn;
        accum_transposed(st, a->V + (size_t)j0 * ld, ld, dh, nk, alpha, ot);
    }
    _Alignas(64) float mv[W], lv[W], inv[W];
    _mm512_store_ps(mv, m);
    _mm512_store_ps(lv, l);
    _mm512_store_ps(inv, _mm512_div_ps(_mm512_set1_ps(1.0f), l));
    for (int r = 0; r < nr; r++) a->lse_out[i0 + r] = mv[r] + logf(lv[r]);
    store_transposed(ot, inv, nr, dh, a->Oout + (size_t)i0 * ld, ld);
}

void rs_attn_fwd_avx512(int L, int start, int dh, float scale, const float *Q,
                        const float *K, const float *V, int ld, float drop_p, uint64_t seed,
                        float *O, float *lse)
{
    attn_fwd_run(fwd_tile, L, start, dh, scale, Q, K, V, ld, drop_p, seed, O, lse);
}

static void bwd_tile(const attn_args *a, int i0, int nr)
{
    _Alignas(64) float qt[RS_ATTN_DH_MAX * W];  /* Q^T of the tile */
    _Alignas(64) float gt[RS_ATTN_DH_MAX * W];  /* dO^T */
    _Alignas(64) float dqt[RS_ATTN_DH_MAX * W]; /* dQ^T accumulator */
    _Alignas(64) float pt[BC * W];              /* scores, then dropped weights */
    _Alignas(64) float dt[BC * W];              /* dO·V, then dS */
    _Alignas(64) float dv[W];
    const int ld = a->ld, dh = a->dh;
    const __mmask16 rows = row_mask(nr);
    const __m512 ks = _mm512_set1_ps(a->keep_scale), sc = _mm512_set1_ps(a->scale);

    load_transposed(a->Q + (size_t)i0 * ld, ld, nr, dh, 1.0f, qt);
    load_transposed(a->dO + (size_t)i0 * ld, ld, nr, dh, 1.0f, gt);
    memset(dqt, 0, sizeof(float) * (size_t)dh * W);
    /* D_i = dO_i · O_i = sum_j A_ij dA_ij */
    memset(dv, 0, sizeof dv);
    for (int r = 0; r < nr; r++) {
        const float *g = a->dO + (size_t)(i0 + r) * ld, *o = a->O + (size_t)(i0 + r) * ld;
        __m512 acc = _mm512_setzero_ps();
        for (int c = 0; c < dh; c += W) {
            __mmask16 cm = row_mask(dh - c);
            acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(cm, g + c), _mm512_maskz_loadu_ps(cm, o + c),
                                  acc);
        }
        dv[r] = _mm512_reduce_add_ps(acc);
    }
    const __m512 D = _mm512_load_ps(dv);
    const __m512 lse = _mm512_maskz_loadu_ps(rows, a->lse + i0);

    const int jend = i0 + nr;
    for (int j0 = a->start; j0 < jend; j0 += BC) {
        const int nk = jend - j0 < BC ? jend - j0 : BC;
        scores(qt, a->K + (size_t)j0 * ld, ld, dh, nk, pt);
        scores(gt, a->V + (size_t)j0 * ld, ld, dh, nk, dt);
        for (int j = 0; j < nk; j++) {
            __mmask16 valid = rows & causal_mask(j0 + j - i0);
            __m512 s = _mm512_load_ps(pt + j * W), dp = _mm512_load_ps(dt + j * W);
            __m512 p = _mm512_maskz_mov_ps(valid, exp16(_mm512_fmsub_ps(s, sc, lse)));
            __m512 pd = p;
            if (a->drop) {
                __mmask16 keep = keep16(a, i0, j0 + j);
                pd = _mm512_maskz_mul_ps(keep, p, ks);
                dp = _mm512_maskz_mul_ps(keep, dp, ks);
            }
            __m512 ds = _mm512_mul_ps(_mm512_mul_ps(p, _mm512_sub_ps(dp, D)), sc);
            _mm512_store_ps(pt + j * W, pd);
            _mm512_store_ps(dt + j * W, ds);
        }
        accum_transposed(dt, a->K + (size_t)j0 * ld, ld, dh, nk, _mm512_set1_ps(1.0f), dqt);
        accum_rows(dt, a->Q + (size_t)i0 * ld, nr, dh, nk, j0 - i0, a->dK + (size_t)j0 * ld, ld);
        accum_rows(pt, a->dO + (size_t)i0 * ld, nr, dh, nk, j0 - i0, a->dV + (size_t)j0 * ld, ld);
    }
    static const float ones[W] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    store_transposed(dqt, ones, nr, dh, a->dQ + (size_t)i0 * ld, ld);
}

void rs_attn_bwd_avx512(int L, int start, int dh, float scale, const float *Q,
                        const float *K, const float *V, const float *O, const float *dO,
                        const float *lse, int ld, float drop_p, uint64_t seed, float *dQ,
                        float *dK, float *dV)
{
    attn_bwd_run(bwd_tile, L, start, dh, scale, Q, K, V, O, dO, lse, ld, drop_p, seed, dQ, dK,
                 dV);
}
