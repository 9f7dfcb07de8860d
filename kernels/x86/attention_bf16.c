/*
 * Fused causal softmax attention, AVX-512-BF16 variant (bf16 compute mode).
 * Same tiling as attention_avx512.c (16 query rows per tile, one per lane,
 * online softmax, nothing L x L stored), but the score products Q·K and
 * dO·V and the forward P·V go through vdpbf16ps: both operands rounded to
 * bfloat16 (nearest even), products summed in fp32. Softmax statistics, lse,
 * exp, dropout and the backward dQ/dK/dV accumulations stay fp32.
 *
 * vdpbf16ps multiplies pairs along the reduction dimension, so a 32-bit lane
 * holds (x[2c], x[2c+1]) of one row (low half = even index) and the other
 * operand's pair is broadcast. Odd lengths are padded with a zero pair half.
 */
#include "attention_avx512_common.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define HP_MAX (RS_ATTN_DH_MAX / 2) /* channel pairs */

/* ---- bf16 packing ---- */

/* out[j*hp + c2] = (bf16 X[j][2c2], bf16 X[j][2c2+1]) for nk rows, pairs
 * along the row (channels); hp = (dh+1)/2, the odd tail's high half is 0. */
static void pack_rows(const float *X, size_t ld, int nk, int dh, uint32_t *out, int hp)
{
    for (int j = 0; j < nk; j++) {
        const float *x = X + (size_t)j * ld;
        uint32_t *o = out + (size_t)j * hp;
        for (int c = 0; c < dh; c += 2 * W) {
            __m512 lo = _mm512_maskz_loadu_ps(row_mask(dh - c), x + c);
            __m512 hi = _mm512_maskz_loadu_ps(row_mask(dh - c - W), x + c + W);
            __m512i b = (__m512i)_mm512_cvtne2ps_pbh(hi, lo); /* words = channels in order */
            int n = dh - c < 2 * W ? dh - c : 2 * W;
            _mm512_mask_storeu_epi32(o + c / 2, row_mask((n + 1) / 2), b);
        }
    }
}

/* out[j2*sw + c] = (bf16 X[2j2][c], bf16 X[2j2+1][c]) for c < width, pairs
 * along the rows (keys); a missing odd last row counts as zeros. */
static void pack_cols(const float *X, size_t ld, int n, int width, uint32_t *out, int sw)
{
    /* cvtne2ps gives words a0..a15 b0..b15; interleave to a0 b0 a1 b1 ... */
    const __m512i perm = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                          24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17,
                                          1, 16, 0);
    for (int j = 0; j < n; j += 2) {
        const float *x0 = X + (size_t)j * ld, *x1 = x0 + ld;
        const int has1 = j + 1 < n;
        uint32_t *o = out + (size_t)(j / 2) * sw;
        for (int c = 0; c < width; c += W) {
            const __mmask16 cm = row_mask(width - c);
            __m512 a = _mm512_maskz_loadu_ps(cm, x0 + c);
            __m512 b = has1 ? _mm512_maskz_loadu_ps(cm, x1 + c) : _mm512_setzero_ps();
            __m512i w = _mm512_permutexvar_epi16(perm, (__m512i)_mm512_cvtne2ps_pbh(b, a));
            _mm512_mask_storeu_epi32(o + c, cm, w);
        }
    }
}

/* xp[c2*W + r] = pair c2 of row r of X (nr rows, other lanes 0): the tile's
 * rows transposed into lane-per-row pairs. */
static void pack_tile(const float *X, int ld, int nr, int dh, uint32_t *xp)
{
    uint32_t tmp[W * HP_MAX];
    const int hp = (dh + 1) / 2;
    pack_rows(X, (size_t)ld, nr, dh, tmp, hp);
    for (int c2 = 0; c2 < hp; c2++)
        for (int r = 0; r < W; r++) xp[c2 * W + r] = r < nr ? tmp[r * hp + c2] : 0u;
}

/* x rounded to bf16 (nearest even) and widened back to fp32. */
static inline __m512 bf_round(__m512 x)
{
    __m256i h = (__m256i)_mm512_cvtneps_pbh(x);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static inline __m512bh bf_load(const uint32_t *p) { return (__m512bh)_mm512_load_si512((const void *)p); }
static inline __m512bh bf_bcast(uint32_t v) { return (__m512bh)_mm512_set1_epi32((int)v); }

/* st[t][r] = sum_c2 xp[c2][r] · y[t][c2] (pairs) for NK keys, two chains per key. */
RS_INLINE void scores_bf_blk(const uint32_t *xp, const uint32_t *y, int hp, float *st,
                             const int NK)
{
    __m512 a[8], b[8];
#pragma GCC unroll 8
    for (int t = 0; t < NK; t++) a[t] = b[t] = _mm512_setzero_ps();
    int c = 0;
    for (; c + 2 <= hp; c += 2) {
        const __m512bh q0 = bf_load(xp + (size_t)c * W), q1 = bf_load(xp + (size_t)(c + 1) * W);
#pragma GCC unroll 8
        for (int t = 0; t < NK; t++) {
            a[t] = _mm512_dpbf16_ps(a[t], q0, bf_bcast(y[t * hp + c]));
            b[t] = _mm512_dpbf16_ps(b[t], q1, bf_bcast(y[t * hp + c + 1]));
        }
    }
    if (c < hp) {
        const __m512bh q0 = bf_load(xp + (size_t)c * W);
#pragma GCC unroll 8
        for (int t = 0; t < NK; t++) a[t] = _mm512_dpbf16_ps(a[t], q0, bf_bcast(y[t * hp + c]));
    }
#pragma GCC unroll 8
    for (int t = 0; t < NK; t++) _mm512_store_ps(st + t * W, _mm512_add_ps(a[t], b[t]));
}

/* Unscaled scores of the nk keys packed in yp (pack_rows layout). */
static void scores_bf(const uint32_t *xp, const uint32_t *yp, int hp, int nk, float *st)
{
    int j = 0;
    for (; j + 8 <= nk; j += 8) scores_bf_blk(xp, yp + (size_t)j * hp, hp, st + (size_t)j * W, 8);
    if (j + 4 <= nk) {
        scores_bf_blk(xp, yp + (size_t)j * hp, hp, st + (size_t)j * W, 4);
        j += 4;
    }
    if (j + 2 <= nk) {
        scores_bf_blk(xp, yp + (size_t)j * hp, hp, st + (size_t)j * W, 2);
        j += 2;
    }
    if (j < nk) scores_bf_blk(xp, yp + (size_t)j * hp, hp, st + (size_t)j * W, 1);
}

/* acc[c][r] = acc[c][r] * alpha[r] + sum_j2 pp[j2][r] · vp[j2][c] (key pairs). */
static void accum_pv_bf(const uint32_t *pp, const uint32_t *vp, int sw, int dh, int np,
                        __m512 alpha, float *acc)
{
    int c = 0;
    for (; c + 8 <= dh; c += 8) {
        float *o = acc + (size_t)c * W;
        __m512 a[8];
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) a[k] = _mm512_mul_ps(_mm512_load_ps(o + k * W), alpha);
        for (int j = 0; j < np; j++) {
            const __m512bh pj = bf_load(pp + (size_t)j * W);
            const uint32_t *v = vp + (size_t)j * sw + c;
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) a[k] = _mm512_dpbf16_ps(a[k], pj, bf_bcast(v[k]));
        }
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) _mm512_store_ps(o + k * W, a[k]);
    }
    for (; c < dh; c++) {
        float *o = acc + (size_t)c * W;
        __m512 a0 = _mm512_mul_ps(_mm512_load_ps(o), alpha), a1 = _mm512_setzero_ps();
        int j = 0;
        for (; j + 2 <= np; j += 2) {
            a0 = _mm512_dpbf16_ps(a0, bf_load(pp + (size_t)j * W), bf_bcast(vp[(size_t)j * sw + c]));
            a1 = _mm512_dpbf16_ps(a1, bf_load(pp + (size_t)(j + 1) * W),
                                  bf_bcast(vp[(size_t)(j + 1) * sw + c]));
        }
        if (j < np)
            a0 = _mm512_dpbf16_ps(a0, bf_load(pp + (size_t)j * W), bf_bcast(vp[(size_t)j * sw + c]));
        _mm512_store_ps(o, _mm512_add_ps(a0, a1));
    }
}

/* ---- the products of attention_tiles.h in bf16 ---- */
#define ATTN_CUSTOM_PRODUCTS
#define ATTN_SCORES_SCALED 0 /* the bf16 scores are scaled in fp32 afterwards */
typedef struct fwd_ws {
    _Alignas(64) uint32_t qp[HP_MAX * W];              /* Q of the tile, lane-per-row pairs */
    _Alignas(64) uint32_t kp[BC * HP_MAX];             /* K block, pairs along channels */
    _Alignas(64) uint32_t vp[BC / 2 * RS_ATTN_DH_MAX]; /* V block, pairs along keys */
    _Alignas(64) uint32_t pp[BC / 2 * W];              /* weights, pairs along keys */
} fwd_ws;
typedef struct bwd_ws {
    _Alignas(64) uint32_t qp[HP_MAX * W];  /* Q of the tile, lane-per-row pairs */
    _Alignas(64) uint32_t gp[HP_MAX * W];  /* dO of the tile, same layout */
    _Alignas(64) uint32_t kp[BC * HP_MAX]; /* K block, pairs along channels */
    _Alignas(64) uint32_t vp[BC * HP_MAX]; /* V block, same */
} bwd_ws;
struct attn_args;
static inline void fwd_prepare(fwd_ws *w, const struct attn_args *a, int i0, int nr);
static inline void fwd_scores(fwd_ws *w, const struct attn_args *a, int j0, int nk, float *st);
static inline void fwd_accum(fwd_ws *w, const struct attn_args *a, const float *p, int j0, int nk,
                             vf alpha, float *ot);
static inline void bwd_prepare(bwd_ws *w, const struct attn_args *a, int i0, int nr);
static inline void bwd_scores(bwd_ws *w, const struct attn_args *a, int j0, int nk, float *pt,
                              float *dt);
/* D_i = dO_i · O_i is summed in fp32 but with dO rounded to bf16 like in
 * dO·V, so that dP - D still cancels (rows of dS sum to ~0). */
static inline vf bwd_dO_part(const float *p, int n) { return bf_round(v_load_part(p, n)); }

#include "attention_tiles.h"

static inline void fwd_prepare(fwd_ws *w, const attn_args *a, int i0, int nr)
{
    pack_tile(a->Q + (size_t)i0 * a->ld, a->ld, nr, a->dh, w->qp);
}

static inline void fwd_scores(fwd_ws *w, const attn_args *a, int j0, int nk, float *st)
{
    const int hp = (a->dh + 1) / 2;
    pack_rows(a->K + (size_t)j0 * a->ld, (size_t)a->ld, nk, a->dh, w->kp, hp);
    scores_bf(w->qp, w->kp, hp, nk, st);
}

static inline void fwd_accum(fwd_ws *w, const attn_args *a, const float *p, int j0, int nk,
                             vf alpha, float *ot)
{
    const int sw = (a->dh + W - 1) / W * W;
    pack_cols(p, W, nk, W, w->pp, W);
    pack_cols(a->V + (size_t)j0 * a->ld, (size_t)a->ld, nk, a->dh, w->vp, sw);
    accum_pv_bf(w->pp, w->vp, sw, a->dh, (nk + 1) / 2, alpha, ot);
}

static inline void bwd_prepare(bwd_ws *w, const attn_args *a, int i0, int nr)
{
    pack_tile(a->Q + (size_t)i0 * a->ld, a->ld, nr, a->dh, w->qp);
    pack_tile(a->dO + (size_t)i0 * a->ld, a->ld, nr, a->dh, w->gp);
}

static inline void bwd_scores(bwd_ws *w, const attn_args *a, int j0, int nk, float *pt,
                              float *dt)
{
    const int hp = (a->dh + 1) / 2;
    pack_rows(a->K + (size_t)j0 * a->ld, (size_t)a->ld, nk, a->dh, w->kp, hp);
    pack_rows(a->V + (size_t)j0 * a->ld, (size_t)a->ld, nk, a->dh, w->vp, hp);
    scores_bf(w->qp, w->kp, hp, nk, pt);
    scores_bf(w->gp, w->vp, hp, nk, dt);
}

void rs_attn_fwd_avx512_bf16(int L, int start, int dh, float scale, const float *Q,
                             const float *K, const float *V, int ld, float drop_p,
                             uint64_t seed, float *O, float *lse)
{
    attn_fwd_run(L, start, dh, scale, Q, K, V, ld, drop_p, seed, O, lse);
}

void rs_attn_bwd_avx512_bf16(int L, int start, int dh, float scale, const float *Q,
                             const float *K, const float *V, const float *O, const float *dO,
                             const float *lse, int ld, float drop_p, uint64_t seed, float *dQ,
                             float *dK, float *dV)
{
    attn_bwd_run(L, start, dh, scale, Q, K, V, O, dO, lse, ld, drop_p, seed, dQ, dK, dV);
}
