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
#include "kernels_isa.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define W 16  /* query rows per tile = lanes */
#define BC 64 /* keys per block of the online softmax */
#define HP_MAX (RS_ATTN_DH_MAX / 2) /* channel pairs */

typedef struct attn_args {
    int L, start, dh, ld;
    float scale, keep_scale;
    int drop;
    const float *Q, *K, *V, *O, *dO, *lse;
    float *Oout, *lse_out, *dQ, *dK, *dV;
    /* dropout hash constants, one per 64-bit lane; rofs_*: r*L for rows 0-7, 8-15 */
    __m512i seed, c1, c2, c3, c4, thr, rofs_lo, rofs_hi;
} attn_args;

/* e^x, ~1 ulp for x in [-87, 88]; below -87 (and -inf) gives exactly 0.
 * Cody-Waite reduction to |r| <= ln2/2, then a degree-7 Taylor polynomial. */
static inline __m512 exp16(__m512 x)
{
    __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_GE_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(live, p, n);
}

/* rs_dropout_keep for 8 counters at once. keep <=> (x>>40)*2^-24 >= p
 * <=> x >= ceil(p*2^24) << 40, exact in integers (see init_args). */
static inline __mmask8 keep8(const attn_args *a, __m512i ctr)
{
    __m512i x = _mm512_xor_si512(a->seed, _mm512_mullo_epi64(ctr, a->c1));
    x = _mm512_add_epi64(x, a->c2);
    x = _mm512_mullo_epi64(_mm512_xor_si512(x, _mm512_srli_epi64(x, 30)), a->c3);
    x = _mm512_mullo_epi64(_mm512_xor_si512(x, _mm512_srli_epi64(x, 27)), a->c4);
    x = _mm512_xor_si512(x, _mm512_srli_epi64(x, 31));
    return _mm512_cmpgt_epu64_mask(x, a->thr);
}

/* Keep mask of rows i0..i0+15 for key j: counters (i0+r)*L + j. */
static inline __mmask16 keep16(const attn_args *a, int i0, int j)
{
    __m512i base = _mm512_set1_epi64((long long)i0 * a->L + j);
    __mmask8 lo = keep8(a, _mm512_add_epi64(base, a->rofs_lo));
    __mmask8 hi = keep8(a, _mm512_add_epi64(base, a->rofs_hi));
    return (__mmask16)(lo | ((unsigned)hi << 8));
}

static void init_args(attn_args *a, int L, int start, int dh, float scale, int ld, float drop_p,
                      uint64_t seed)
{
    memset(a, 0, sizeof *a);
    a->L = L;
    a->start = start < 0 ? 0 : start;
    a->dh = dh;
    a->ld = ld;
    a->scale = scale;
    a->drop = drop_p > 0.0f;
    a->keep_scale = a->drop ? 1.0f / (1.0f - drop_p) : 1.0f;
    if (a->drop) {
        /* p*2^24 is exact in float, so ceil gives the integer threshold T;
         * keep <=> x > (T<<40) - 1, which also covers T = 2^24 (never keep). */
        uint64_t T = (uint64_t)ceilf(drop_p * 16777216.0f);
        if (T > (1ULL << 24)) T = 1ULL << 24;
        a->thr = _mm512_set1_epi64((long long)((T << 40) - 1));
        a->seed = _mm512_set1_epi64((long long)seed);
        a->c1 = _mm512_set1_epi64((long long)0xd1342543de82ef95ULL);
        a->c2 = _mm512_set1_epi64((long long)0x9e3779b97f4a7c15ULL);
        a->c3 = _mm512_set1_epi64((long long)0xbf58476d1ce4e5b9ULL);
        a->c4 = _mm512_set1_epi64((long long)0x94d049bb133111ebULL);
        long long Ll = L;
        a->rofs_lo = _mm512_set_epi64(7 * Ll, 6 * Ll, 5 * Ll, 4 * Ll, 3 * Ll, 2 * Ll, Ll, 0);
        a->rofs_hi = _mm512_add_epi64(a->rofs_lo, _mm512_set1_epi64(8 * Ll));
    }
}

/* Lanes < n set (n clamped to [0, 16]). */
static inline __mmask16 row_mask(int n)
{
    return (__mmask16)(n >= W ? 0xFFFF : n <= 0 ? 0 : (1u << n) - 1);
}

/* In-register transpose of a 16 x 16 block: v[i][j] -> v[j][i]. */
static inline void transpose16(__m512 v[16])
{
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
    }
    /* u[4g+k], 128-bit lane l: column 4l+k of rows 4g..4g+3 */
    __m512 u[16];
    for (int g = 0; g < 4; g++) {
        __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
        __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int k = 0; k < 4; k++) {
        __m512 p = _mm512_shuffle_f32x4(u[k], u[4 + k], _MM_SHUFFLE(1, 0, 1, 0));
        __m512 q = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], _MM_SHUFFLE(1, 0, 1, 0));
        __m512 p2 = _mm512_shuffle_f32x4(u[k], u[4 + k], _MM_SHUFFLE(3, 2, 3, 2));
        __m512 q2 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], _MM_SHUFFLE(3, 2, 3, 2));
        v[k] = _mm512_shuffle_f32x4(p, q, _MM_SHUFFLE(2, 0, 2, 0));
        v[4 + k] = _mm512_shuffle_f32x4(p, q, _MM_SHUFFLE(3, 1, 3, 1));
        v[8 + k] = _mm512_shuffle_f32x4(p2, q2, _MM_SHUFFLE(2, 0, 2, 0));
        v[12 + k] = _mm512_shuffle_f32x4(p2, q2, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

/* Y[r][c] = xt[c][r] * rs[r] for rows r < nr (the inverse of load_transposed). */
static void store_transposed(const float *xt, const float *rs, int nr, int dh, float *Y, int ld)
{
    for (int c0 = 0; c0 < dh; c0 += W) {
        const __mmask16 cm = row_mask(dh - c0);
        __m512 v[16];
#pragma GCC unroll 16
        for (int k = 0; k < W; k++)
            v[k] = c0 + k < dh ? _mm512_load_ps(xt + (size_t)(c0 + k) * W) : _mm512_setzero_ps();
        transpose16(v);
#pragma GCC unroll 16
        for (int r = 0; r < W; r++)
            if (r < nr)
                _mm512_mask_storeu_ps(Y + (size_t)r * ld + c0, cm,
                                      _mm512_mul_ps(v[r], _mm512_set1_ps(rs[r])));
    }
}

#define RS_INLINE static inline __attribute__((always_inline))

/* acc[c][r] = acc[c][r] * alpha[r] + sum_j p[j][r] * Y[j][c]. */
static void accum_transposed(const float *p, const float *Y, int ld, int dh, int nk,
                             __m512 alpha, float *acc)
{
    int c = 0;
    for (; c + 8 <= dh; c += 8) {
        float *o = acc + (size_t)c * W;
        __m512 a0 = _mm512_mul_ps(_mm512_load_ps(o), alpha);
        __m512 a1 = _mm512_mul_ps(_mm512_load_ps(o + W), alpha);
        __m512 a2 = _mm512_mul_ps(_mm512_load_ps(o + 2 * W), alpha);
        __m512 a3 = _mm512_mul_ps(_mm512_load_ps(o + 3 * W), alpha);
        __m512 a4 = _mm512_mul_ps(_mm512_load_ps(o + 4 * W), alpha);
        __m512 a5 = _mm512_mul_ps(_mm512_load_ps(o + 5 * W), alpha);
        __m512 a6 = _mm512_mul_ps(_mm512_load_ps(o + 6 * W), alpha);
        __m512 a7 = _mm512_mul_ps(_mm512_load_ps(o + 7 * W), alpha);
        for (int j = 0; j < nk; j++) {
            const float *y = Y + (size_t)j * ld + c;
            __m512 pj = _mm512_load_ps(p + (size_t)j * W);
            a0 = _mm512_fmadd_ps(pj, _mm512_set1_ps(y[0]), a0);
            a1 = _mm512_fmadd_ps(pj, _mm512_set1_ps(y[1]), a1);
            a2 = _mm512_fmadd_ps(pj, _mm512_set1_ps(y[2]), a2);
            a3 = _mm512_fmadd_ps(pj, _mm512_set1_ps(y[3]), a3);
            a4 = _mm512_fmadd_ps(pj, _mm512_set1_ps(y[4]), a4);
            a5 = _mm512_fmadd_ps(pj, _mm512_set1_ps(y[5]), a5);
            a6 = _mm512_fmadd_ps(pj, _mm512_set1_ps(y[6]), a6);
            a7 = _mm512_fmadd_ps(pj, _mm512_set1_ps(y[7]), a7);
        }
        _mm512_store_ps(o, a0);
        _mm512_store_ps(o + W, a1);
        _mm512_store_ps(o + 2 * W, a2);
        _mm512_store_ps(o + 3 * W, a3);
        _mm512_store_ps(o + 4 * W, a4);
        _mm512_store_ps(o + 5 * W, a5);
        _mm512_store_ps(o + 6 * W, a6);
        _mm512_store_ps(o + 7 * W, a7);
    }
    for (; c < dh; c++) { /* channel tail: split the key sum for latency */
        float *o = acc + (size_t)c * W;
        __m512 a0 = _mm512_mul_ps(_mm512_load_ps(o), alpha), a1 = _mm512_setzero_ps(), a2 = a1,
               a3 = a1;
        int j = 0;
        for (; j + 4 <= nk; j += 4) {
            const float *y = Y + (size_t)j * ld + c;
            const float *pj = p + (size_t)j * W;
            a0 = _mm512_fmadd_ps(_mm512_load_ps(pj), _mm512_set1_ps(y[0]), a0);
            a1 = _mm512_fmadd_ps(_mm512_load_ps(pj + W), _mm512_set1_ps(y[ld]), a1);
            a2 = _mm512_fmadd_ps(_mm512_load_ps(pj + 2 * W), _mm512_set1_ps(y[2 * (size_t)ld]), a2);
            a3 = _mm512_fmadd_ps(_mm512_load_ps(pj + 3 * W), _mm512_set1_ps(y[3 * (size_t)ld]), a3);
        }
        for (; j < nk; j++)
            a0 = _mm512_fmadd_ps(_mm512_load_ps(p + (size_t)j * W),
                                 _mm512_set1_ps(Y[(size_t)j * ld + c]), a0);
        _mm512_store_ps(o, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    }
}

/* Y[t][c..] += sum_{r0<=r<nr} w[t][r] * X[r][c..] for NK keys and NCH
 * 16-channel chunks (masks m0, m1), compile-time constants once inlined. Rows
 * are split over RS accumulator sets so that there are >= 8 FMA chains. */
RS_INLINE void rows_blk(const float *w, const float *X, size_t ld, int r0, int nr,
                        __mmask16 m0, __mmask16 m1, float *Y, const int NK, const int NCH)
{
    const int RS = NK * NCH >= 8 ? 1 : 2;
    const __mmask16 mk[2] = {m0, m1};
    __m512 acc[2][4][2];
#pragma GCC unroll 4
    for (int t = 0; t < NK; t++)
#pragma GCC unroll 2
        for (int h = 0; h < NCH; h++) {
            acc[0][t][h] = _mm512_maskz_loadu_ps(mk[h], Y + t * ld + h * W);
            acc[1][t][h] = _mm512_setzero_ps();
        }
    int r = r0;
    for (; r + RS <= nr; r += RS)
#pragma GCC unroll 2
        for (int u = 0; u < RS; u++) {
            __m512 x[2];
#pragma GCC unroll 2
            for (int h = 0; h < NCH; h++)
                x[h] = _mm512_maskz_loadu_ps(mk[h], X + (size_t)(r + u) * ld + h * W);
#pragma GCC unroll 4
            for (int t = 0; t < NK; t++) {
                const __m512 wt = _mm512_set1_ps(w[t * W + r + u]);
#pragma GCC unroll 2
                for (int h = 0; h < NCH; h++) acc[u][t][h] = _mm512_fmadd_ps(wt, x[h], acc[u][t][h]);
            }
        }
    for (; r < nr; r++) {
        __m512 x[2];
#pragma GCC unroll 2
        for (int h = 0; h < NCH; h++) x[h] = _mm512_maskz_loadu_ps(mk[h], X + (size_t)r * ld + h * W);
#pragma GCC unroll 4
        for (int t = 0; t < NK; t++) {
            const __m512 wt = _mm512_set1_ps(w[t * W + r]);
#pragma GCC unroll 2
            for (int h = 0; h < NCH; h++) acc[0][t][h] = _mm512_fmadd_ps(wt, x[h], acc[0][t][h]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NK; t++)
#pragma GCC unroll 2
        for (int h = 0; h < NCH; h++) {
            __m512 v = RS > 1 ? _mm512_add_ps(acc[0][t][h], acc[1][t][h]) : acc[0][t][h];
            _mm512_mask_storeu_ps(Y + t * ld + h * W, mk[h], v);
        }
}

/* NK keys starting at w (weights) / Y (rows), all channels. */
RS_INLINE void rows_keys(const float *w, const float *X, size_t ld, int r0, int nr, int dh,
                         float *Y, const int NK)
{
    int c = 0;
    for (; c + W < dh; c += 2 * W) /* two chunks, the second maybe partial */
        rows_blk(w, X + c, ld, r0, nr, 0xFFFF, row_mask(dh - c - W), Y + c, NK, 2);
    if (c < dh) rows_blk(w, X + c, ld, r0, nr, row_mask(dh - c), 0, Y + c, NK, 1);
}

/* Y[j][:] += sum_{r<nr} w[j][r] * X[r][:] for the nk keys of a block (dK, dV):
 * a small GEMM, register-blocked 4 keys x 32 channels. The weights w[j][r]
 * are zero for rows above the diagonal (r < j - i0 = off0 + j), so the row
 * loop starts at the first row that sees a group's first key. */
static void accum_rows(const float *w, const float *X, int nr, int dh, int nk, int off0, float *Y,
                       int ld)
{
    const size_t s = (size_t)ld;
    int j = 0;
    for (; j + 4 <= nk; j += 4)
        rows_keys(w + (size_t)j * W, X, s, off0 + j > 0 ? off0 + j : 0, nr, dh, Y + j * s, 4);
    if (j + 2 <= nk) {
        rows_keys(w + (size_t)j * W, X, s, off0 + j > 0 ? off0 + j : 0, nr, dh, Y + j * s, 2);
        j += 2;
    }
    if (j < nk) rows_keys(w + (size_t)j * W, X, s, off0 + j > 0 ? off0 + j : 0, nr, dh, Y + j * s, 1);
}

/* Lanes of key j (relative offset off = j - i0) that are on or below the
 * diagonal: row r sees key j iff r >= off. */
static inline __mmask16 causal_mask(int off)
{
    return off <= 0 ? (__mmask16)0xFFFF : (__mmask16)(0xFFFFu << off);
}


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

static void fwd_tile(const attn_args *a, int i0, int nr)
{
    _Alignas(64) uint32_t qp[HP_MAX * W];          /* Q of the tile, lane-per-row pairs */
    _Alignas(64) uint32_t kp[BC * HP_MAX];         /* K block, pairs along channels */
    _Alignas(64) uint32_t vp[BC / 2 * RS_ATTN_DH_MAX]; /* V block, pairs along keys */
    _Alignas(64) uint32_t pp[BC / 2 * W];          /* weights, pairs along keys */
    _Alignas(64) float ot[RS_ATTN_DH_MAX * W];
    _Alignas(64) float st[BC * W];
    const int ld = a->ld, dh = a->dh, hp = (dh + 1) / 2, sw = (dh + W - 1) / W * W;
    const __m512 ninf = _mm512_set1_ps(-INFINITY), ks = _mm512_set1_ps(a->keep_scale),
                 sc = _mm512_set1_ps(a->scale);

    pack_tile(a->Q + (size_t)i0 * ld, ld, nr, dh, qp);
    memset(ot, 0, sizeof(float) * (size_t)dh * W);
    __m512 m = ninf, l = _mm512_setzero_ps();
    const int jend = i0 + nr; /* keys up to the tile's last row */
    for (int j0 = a->start; j0 < jend; j0 += BC) {
        const int nk = jend - j0 < BC ? jend - j0 : BC;
        pack_rows(a->K + (size_t)j0 * ld, (size_t)ld, nk, dh, kp, hp);
        scores_bf(qp, kp, hp, nk, st);
        __m512 bm = ninf;
        for (int j = 0; j < nk; j++) {
            __m512 s = _mm512_mul_ps(_mm512_load_ps(st + j * W), sc);
            int off = j0 + j - i0;
            if (off > 0) s = _mm512_mask_mov_ps(ninf, causal_mask(off), s);
            _mm512_store_ps(st + j * W, s);
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
        pack_cols(st, W, nk, W, pp, W);
        pack_cols(a->V + (size_t)j0 * ld, (size_t)ld, nk, dh, vp, sw);
        accum_pv_bf(pp, vp, sw, dh, (nk + 1) / 2, alpha, ot);
    }
    _Alignas(64) float mv[W], lv[W], inv[W];
    _mm512_store_ps(mv, m);
    _mm512_store_ps(lv, l);
    _mm512_store_ps(inv, _mm512_div_ps(_mm512_set1_ps(1.0f), l));
    for (int r = 0; r < nr; r++) a->lse_out[i0 + r] = mv[r] + logf(lv[r]);
    store_transposed(ot, inv, nr, dh, a->Oout + (size_t)i0 * ld, ld);
}

/* Row tiles of W rows from `start`; the partial tile (if any) goes first,
 * where it has the fewest keys to visit. */
static void for_each_tile(const attn_args *a, void (*tile)(const attn_args *, int, int))
{
    int rows = a->L - a->start;
    if (rows <= 0) return;
    int first = rows % W ? rows % W : W;
    tile(a, a->start, first);
    for (int i0 = a->start + first; i0 < a->L; i0 += W) tile(a, i0, W);
}

void rs_attn_fwd_avx512_bf16(int L, int start, int dh, float scale, const float *Q,
                             const float *K, const float *V, int ld, float drop_p,
                             uint64_t seed, float *O, float *lse)
{
    if (dh > RS_ATTN_DH_MAX) {
        rs_attn_fwd_ref(L, start, dh, scale, Q, K, V, ld, drop_p, seed, O, lse);
        return;
    }
    attn_args a;
    init_args(&a, L, start, dh, scale, ld, drop_p, seed);
    a.Q = Q;
    a.K = K;
    a.V = V;
    a.Oout = O;
    a.lse_out = lse;
    for (int i = 0; i < a.start && i < L; i++) {
        memset(O + (size_t)i * ld, 0, sizeof(float) * (size_t)dh);
        lse[i] = 0.0f;
    }
    for_each_tile(&a, fwd_tile);
}

static void bwd_tile(const attn_args *a, int i0, int nr)
{
    _Alignas(64) uint32_t qp[HP_MAX * W];      /* Q of the tile, lane-per-row pairs */
    _Alignas(64) uint32_t gp[HP_MAX * W];      /* dO of the tile, same layout */
    _Alignas(64) uint32_t kp[BC * HP_MAX];     /* K block, pairs along channels */
    _Alignas(64) uint32_t vp[BC * HP_MAX];     /* V block, same */
    _Alignas(64) float dqt[RS_ATTN_DH_MAX * W]; /* dQ^T accumulator */
    _Alignas(64) float pt[BC * W];              /* scores, then dropped weights */
    _Alignas(64) float dt[BC * W];              /* dO·V, then dS */
    _Alignas(64) float dv[W];
    const int ld = a->ld, dh = a->dh, hp = (dh + 1) / 2;
    const __mmask16 rows = row_mask(nr);
    const __m512 ks = _mm512_set1_ps(a->keep_scale), sc = _mm512_set1_ps(a->scale);

    pack_tile(a->Q + (size_t)i0 * ld, ld, nr, dh, qp);
    pack_tile(a->dO + (size_t)i0 * ld, ld, nr, dh, gp);
    memset(dqt, 0, sizeof(float) * (size_t)dh * W);
    /* D_i = dO_i · O_i = sum_j A_ij dA_ij, summed in fp32 but with dO rounded
     * to bf16 like in dO·V, so that dP - D still cancels (rows of dS sum to ~0). */
    memset(dv, 0, sizeof dv);
    for (int r = 0; r < nr; r++) {
        const float *g = a->dO + (size_t)(i0 + r) * ld, *o = a->O + (size_t)(i0 + r) * ld;
        __m512 acc = _mm512_setzero_ps();
        for (int c = 0; c < dh; c += W) {
            __mmask16 cm = row_mask(dh - c);
            acc = _mm512_fmadd_ps(bf_round(_mm512_maskz_loadu_ps(cm, g + c)),
                                  _mm512_maskz_loadu_ps(cm, o + c), acc);
        }
        dv[r] = _mm512_reduce_add_ps(acc);
    }
    const __m512 D = _mm512_load_ps(dv);
    const __m512 lse = _mm512_maskz_loadu_ps(rows, a->lse + i0);

    const int jend = i0 + nr;
    for (int j0 = a->start; j0 < jend; j0 += BC) {
        const int nk = jend - j0 < BC ? jend - j0 : BC;
        pack_rows(a->K + (size_t)j0 * ld, (size_t)ld, nk, dh, kp, hp);
        pack_rows(a->V + (size_t)j0 * ld, (size_t)ld, nk, dh, vp, hp);
        scores_bf(qp, kp, hp, nk, pt);
        scores_bf(gp, vp, hp, nk, dt);
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

void rs_attn_bwd_avx512_bf16(int L, int start, int dh, float scale, const float *Q,
                             const float *K, const float *V, const float *O, const float *dO,
                             const float *lse, int ld, float drop_p, uint64_t seed, float *dQ,
                             float *dK, float *dV)
{
    if (dh > RS_ATTN_DH_MAX) {
        rs_attn_bwd_ref(L, start, dh, scale, Q, K, V, O, dO, lse, ld, drop_p, seed, dQ, dK, dV);
        return;
    }
    attn_args a;
    init_args(&a, L, start, dh, scale, ld, drop_p, seed);
    a.Q = Q;
    a.K = K;
    a.V = V;
    a.O = O;
    a.dO = dO;
    a.lse = lse;
    a.dQ = dQ;
    a.dK = dK;
    a.dV = dV;
    for (int i = 0; i < L; i++) {
        if (i < a.start) memset(dQ + (size_t)i * ld, 0, sizeof(float) * (size_t)dh);
        memset(dK + (size_t)i * ld, 0, sizeof(float) * (size_t)dh);
        memset(dV + (size_t)i * ld, 0, sizeof(float) * (size_t)dh);
    }
    for_each_tile(&a, bwd_tile);
}
