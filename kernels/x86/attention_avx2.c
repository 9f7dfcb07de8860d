/*
 * Fused causal softmax attention, AVX2 + FMA.
 *
 * A query tile is 8 consecutive rows, one per SIMD lane, so the running
 * max/sum of the online softmax, the causal mask and the dropout decisions
 * are all lane-wise: no horizontal reductions in the inner loops, and any
 * head size works without channel tails. Q (and dO) of the tile are
 * transposed once into [dh][8] stack buffers; the scores of a key come from
 * broadcasting K[j][c] against Q^T[c]. Keys are visited in blocks of BC, only
 * up to the tile's last row (causal) and from `start` (padding skipped); the
 * L x L matrix is never stored, only a BC x 8 block. attention_avx512.c is
 * the same algorithm with 16-row tiles.
 */
#include "kernels_isa.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define W 8   /* query rows per tile = lanes */
#define BC 64 /* keys per block of the online softmax */

typedef struct attn_args {
    int L, start, dh, ld;
    float scale, keep_scale;
    int drop;
    const float *Q, *K, *V, *O, *dO, *lse;
    float *Oout, *lse_out, *dQ, *dK, *dV;
    /* dropout hash: 64-bit constants split in 32-bit halves (AVX2 has no
     * 64-bit multiply), threshold, r*L for rows 0-3 and 4-7 */
    __m256i seed, c_lo[3], c_hi[3], c2, thr, rofs_lo, rofs_hi;
} attn_args;

static const uint64_t hash_mul[3] = {0xd1342543de82ef95ULL, 0xbf58476d1ce4e5b9ULL,
                                     0x94d049bb133111ebULL};

/* e^x, ~1 ulp for x in [-87, 88]; below -87 (and -inf) gives exactly 0.
 * Cody-Waite reduction to |r| <= ln2/2, then a degree-7 Taylor polynomial. */
static inline __m256 exp8(__m256 x)
{
    __m256 live = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_GE_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* n in [-126, 127]: 2^n is a normal float built from its exponent bits */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
                                  23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), live);
}

/* x * c mod 2^64 per 64-bit lane from 32x32->64 products. */
static inline __m256i mul64(__m256i x, __m256i c_lo, __m256i c_hi)
{
    __m256i lo = _mm256_mul_epu32(x, c_lo);
    __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(x, 32), c_lo),
                                     _mm256_mul_epu32(x, c_hi));
    return _mm256_add_epi64(lo, _mm256_slli_epi64(cross, 32));
}

/* rs_dropout_keep's hash of 4 counters, returned as x >> 40 per 64-bit lane. */
static inline __m256i hash4(const attn_args *a, __m256i ctr)
{
    __m256i x = _mm256_xor_si256(a->seed, mul64(ctr, a->c_lo[0], a->c_hi[0]));
    x = _mm256_add_epi64(x, a->c2);
    x = mul64(_mm256_xor_si256(x, _mm256_srli_epi64(x, 30)), a->c_lo[1], a->c_hi[1]);
    x = mul64(_mm256_xor_si256(x, _mm256_srli_epi64(x, 27)), a->c_lo[2], a->c_hi[2]);
    x = _mm256_xor_si256(x, _mm256_srli_epi64(x, 31));
    return _mm256_srli_epi64(x, 40);
}

/* Keep mask (all-ones lanes) of rows i0..i0+7 for key j: counters (i0+r)*L + j.
 * keep <=> t*2^-24 >= p <=> t >= ceil(p*2^24) = T, t = x>>40 < 2^24. */
static inline __m256 keep8(const attn_args *a, int i0, int j)
{
    __m256i base = _mm256_set1_epi64x((long long)i0 * a->L + j);
    __m256i t0 = hash4(a, _mm256_add_epi64(base, a->rofs_lo));
    __m256i t1 = hash4(a, _mm256_add_epi64(base, a->rofs_hi));
    /* gather the low 32-bit halves in row order 0..7 */
    __m256 pk = _mm256_shuffle_ps(_mm256_castsi256_ps(t0), _mm256_castsi256_ps(t1),
                                  _MM_SHUFFLE(2, 0, 2, 0));
    __m256i t = _mm256_permute4x64_epi64(_mm256_castps_si256(pk), _MM_SHUFFLE(3, 1, 2, 0));
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(t, a->thr));
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
        /* p*2^24 is exact in float, so ceil gives the integer threshold T */
        long long T = (long long)ceilf(drop_p * 16777216.0f);
        if (T > (1LL << 24)) T = 1LL << 24;
        a->thr = _mm256_set1_epi32((int)(T - 1));
        a->seed = _mm256_set1_epi64x((long long)seed);
        for (int i = 0; i < 3; i++) {
            a->c_lo[i] = _mm256_set1_epi64x((long long)(hash_mul[i] & 0xffffffffULL));
            a->c_hi[i] = _mm256_set1_epi64x((long long)(hash_mul[i] >> 32));
        }
        a->c2 = _mm256_set1_epi64x((long long)0x9e3779b97f4a7c15ULL);
        long long Ll = L;
        a->rofs_lo = _mm256_set_epi64x(3 * Ll, 2 * Ll, Ll, 0);
        a->rofs_hi = _mm256_add_epi64(a->rofs_lo, _mm256_set1_epi64x(4 * Ll));
    }
}

/* All-ones in lanes < n. */
static inline __m256i lanes_below(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Lanes of key j (offset off = j - i0) on or below the diagonal: r >= off. */
static inline __m256 causal_mask(int off)
{
    return _mm256_castsi256_ps(
        _mm256_cmpgt_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(off - 1)));
}

static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* In-register transpose of an 8 x 8 block: v[i][j] -> v[j][i]. */
static inline void transpose8(__m256 v[8])
{
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]);
    }
    /* u[4g+k], 128-bit lane l: column 4l+k of rows 4g..4g+3 */
    for (int g = 0; g < 2; g++) {
        u[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_permute2f128_ps(u[k], u[4 + k], 0x20);
        v[4 + k] = _mm256_permute2f128_ps(u[k], u[4 + k], 0x31);
    }
}

/* xt[c][r] = X[r][c] * mul for r < nr, 0 for the other lanes. */
static void load_transposed(const float *X, int ld, int nr, int dh, float mul, float *xt)
{
    const __m256 mv = _mm256_set1_ps(mul);
    for (int c0 = 0; c0 < dh; c0 += W) {
        const __m256i cm = lanes_below(dh - c0);
        __m256 v[8];
#pragma GCC unroll 8
        for (int r = 0; r < W; r++)
            v[r] = r < nr ? _mm256_maskload_ps(X + (size_t)r * ld + c0, cm) : _mm256_setzero_ps();
        transpose8(v);
#pragma GCC unroll 8
        for (int k = 0; k < W; k++)
            if (c0 + k < dh) _mm256_store_ps(xt + (size_t)(c0 + k) * W, _mm256_mul_ps(v[k], mv));
    }
}

/* Y[r][c] = xt[c][r] * rs[r] for rows r < nr (the inverse of load_transposed). */
static void store_transposed(const float *xt, const float *rs, int nr, int dh, float *Y, int ld)
{
    for (int c0 = 0; c0 < dh; c0 += W) {
        const __m256i cm = lanes_below(dh - c0);
        __m256 v[8];
#pragma GCC unroll 8
        for (int k = 0; k < W; k++)
            v[k] = c0 + k < dh ? _mm256_load_ps(xt + (size_t)(c0 + k) * W) : _mm256_setzero_ps();
        transpose8(v);
#pragma GCC unroll 8
        for (int r = 0; r < W; r++)
            if (r < nr)
                _mm256_maskstore_ps(Y + (size_t)r * ld + c0, cm,
                                    _mm256_mul_ps(v[r], _mm256_set1_ps(rs[r])));
    }
}

#define RS_INLINE static inline __attribute__((always_inline))

/* st[t][r] = sum_c xt[c][r] * y[t][c] for NK keys (a compile-time constant
 * once inlined), even and odd channels in separate accumulators so that even
 * a lone key has independent FMA chains. */
RS_INLINE void scores_blk(const float *xt, const float *y, size_t ld, int dh, float *st,
                          const int NK)
{
    __m256 a[4], b[4];
#pragma GCC unroll 4
    for (int t = 0; t < NK; t++) a[t] = b[t] = _mm256_setzero_ps();
    int c = 0;
    for (; c + 2 <= dh; c += 2) {
        const __m256 q0 = _mm256_load_ps(xt + (size_t)c * W);
        const __m256 q1 = _mm256_load_ps(xt + (size_t)(c + 1) * W);
#pragma GCC unroll 4
        for (int t = 0; t < NK; t++) {
            a[t] = _mm256_fmadd_ps(q0, _mm256_broadcast_ss(y + t * ld + c), a[t]);
            b[t] = _mm256_fmadd_ps(q1, _mm256_broadcast_ss(y + t * ld + c + 1), b[t]);
        }
    }
    if (c < dh) {
        const __m256 q0 = _mm256_load_ps(xt + (size_t)c * W);
#pragma GCC unroll 4
        for (int t = 0; t < NK; t++)
            a[t] = _mm256_fmadd_ps(q0, _mm256_broadcast_ss(y + t * ld + c), a[t]);
    }
#pragma GCC unroll 4
    for (int t = 0; t < NK; t++) _mm256_store_ps(st + t * W, _mm256_add_ps(a[t], b[t]));
}

/* st[j][r] = sum_c xt[c][r] * Y[j][c] for the nk keys of a block. */
static void scores(const float *xt, const float *Y, int ld, int dh, int nk, float *st)
{
    const size_t s = (size_t)ld;
    int j = 0;
    for (; j + 4 <= nk; j += 4) scores_blk(xt, Y + j * s, s, dh, st + (size_t)j * W, 4);
    if (j + 2 <= nk) {
        scores_blk(xt, Y + j * s, s, dh, st + (size_t)j * W, 2);
        j += 2;
    }
    if (j < nk) scores_blk(xt, Y + j * s, s, dh, st + (size_t)j * W, 1);
}

/* acc[c][r] = acc[c][r] * alpha[r] + sum_j p[j][r] * Y[j][c]. */
static void accum_transposed(const float *p, const float *Y, int ld, int dh, int nk,
                             __m256 alpha, float *acc)
{
    int c = 0;
    for (; c + 8 <= dh; c += 8) {
        float *o = acc + (size_t)c * W;
        __m256 a0 = _mm256_mul_ps(_mm256_load_ps(o), alpha);
        __m256 a1 = _mm256_mul_ps(_mm256_load_ps(o + W), alpha);
        __m256 a2 = _mm256_mul_ps(_mm256_load_ps(o + 2 * W), alpha);
        __m256 a3 = _mm256_mul_ps(_mm256_load_ps(o + 3 * W), alpha);
        __m256 a4 = _mm256_mul_ps(_mm256_load_ps(o + 4 * W), alpha);
        __m256 a5 = _mm256_mul_ps(_mm256_load_ps(o + 5 * W), alpha);
        __m256 a6 = _mm256_mul_ps(_mm256_load_ps(o + 6 * W), alpha);
        __m256 a7 = _mm256_mul_ps(_mm256_load_ps(o + 7 * W), alpha);
        for (int j = 0; j < nk; j++) {
            const float *y = Y + (size_t)j * ld + c;
            __m256 pj = _mm256_load_ps(p + (size_t)j * W);
            a0 = _mm256_fmadd_ps(pj, _mm256_broadcast_ss(y), a0);
            a1 = _mm256_fmadd_ps(pj, _mm256_broadcast_ss(y + 1), a1);
            a2 = _mm256_fmadd_ps(pj, _mm256_broadcast_ss(y + 2), a2);
            a3 = _mm256_fmadd_ps(pj, _mm256_broadcast_ss(y + 3), a3);
            a4 = _mm256_fmadd_ps(pj, _mm256_broadcast_ss(y + 4), a4);
            a5 = _mm256_fmadd_ps(pj, _mm256_broadcast_ss(y + 5), a5);
            a6 = _mm256_fmadd_ps(pj, _mm256_broadcast_ss(y + 6), a6);
            a7 = _mm256_fmadd_ps(pj, _mm256_broadcast_ss(y + 7), a7);
        }
        _mm256_store_ps(o, a0);
        _mm256_store_ps(o + W, a1);
        _mm256_store_ps(o + 2 * W, a2);
        _mm256_store_ps(o + 3 * W, a3);
        _mm256_store_ps(o + 4 * W, a4);
        _mm256_store_ps(o + 5 * W, a5);
        _mm256_store_ps(o + 6 * W, a6);
        _mm256_store_ps(o + 7 * W, a7);
    }
    for (; c < dh; c++) { /* channel tail: split the key sum for latency */
        float *o = acc + (size_t)c * W;
        __m256 a0 = _mm256_mul_ps(_mm256_load_ps(o), alpha), a1 = _mm256_setzero_ps(), a2 = a1,
               a3 = a1;
        int j = 0;
        for (; j + 4 <= nk; j += 4) {
            const float *y = Y + (size_t)j * ld + c;
            const float *pj = p + (size_t)j * W;
            a0 = _mm256_fmadd_ps(_mm256_load_ps(pj), _mm256_broadcast_ss(y), a0);
            a1 = _mm256_fmadd_ps(_mm256_load_ps(pj + W), _mm256_broadcast_ss(y + ld), a1);
            a2 = _mm256_fmadd_ps(_mm256_load_ps(pj + 2 * W), _mm256_broadcast_ss(y + 2 * (size_t)ld),
                                 a2);
            a3 = _mm256_fmadd_ps(_mm256_load_ps(pj + 3 * W), _mm256_broadcast_ss(y + 3 * (size_t)ld),
                                 a3);
        }
        for (; j < nk; j++)
            a0 = _mm256_fmadd_ps(_mm256_load_ps(p + (size_t)j * W),
                                 _mm256_broadcast_ss(Y + (size_t)j * ld + c), a0);
        _mm256_store_ps(o, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    }
}

/* Full vectors load/store plainly (vmaskmov is slow on some CPUs). */
RS_INLINE __m256 load_part(const float *p, __m256i m, int full)
{
    return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}
RS_INLINE void store_part(float *p, __m256i m, int full, __m256 v)
{
    if (full) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, m, v);
}

/* Y[t][c..] += sum_{r0<=r<nr} w[t][r] * X[r][c..] for NK keys and NCH
 * 8-channel chunks (n0, n1 valid channels), compile-time constants once
 * inlined. Rows are split over RS accumulator sets for >= 8 FMA chains. */
RS_INLINE void rows_blk(const float *w, const float *X, size_t ld, int r0, int nr, int n0, int n1,
                        float *Y, const int NK, const int NCH)
{
    const int RS = NK * NCH >= 8 ? 1 : 2;
    const __m256i mk[2] = {lanes_below(n0), lanes_below(n1)};
    const int full[2] = {n0 >= W, n1 >= W};
    __m256 acc[2][4][2];
#pragma GCC unroll 4
    for (int t = 0; t < NK; t++)
#pragma GCC unroll 2
        for (int h = 0; h < NCH; h++) {
            acc[0][t][h] = load_part(Y + t * ld + h * W, mk[h], full[h]);
            acc[1][t][h] = _mm256_setzero_ps();
        }
    int r = r0;
    for (; r + RS <= nr; r += RS)
#pragma GCC unroll 2
        for (int u = 0; u < RS; u++) {
            __m256 x[2];
#pragma GCC unroll 2
            for (int h = 0; h < NCH; h++)
                x[h] = load_part(X + (size_t)(r + u) * ld + h * W, mk[h], full[h]);
#pragma GCC unroll 4
            for (int t = 0; t < NK; t++) {
                const __m256 wt = _mm256_broadcast_ss(w + t * W + r + u);
#pragma GCC unroll 2
                for (int h = 0; h < NCH; h++) acc[u][t][h] = _mm256_fmadd_ps(wt, x[h], acc[u][t][h]);
            }
        }
    for (; r < nr; r++) {
        __m256 x[2];
#pragma GCC unroll 2
        for (int h = 0; h < NCH; h++) x[h] = load_part(X + (size_t)r * ld + h * W, mk[h], full[h]);
#pragma GCC unroll 4
        for (int t = 0; t < NK; t++) {
            const __m256 wt = _mm256_broadcast_ss(w + t * W + r);
#pragma GCC unroll 2
            for (int h = 0; h < NCH; h++) acc[0][t][h] = _mm256_fmadd_ps(wt, x[h], acc[0][t][h]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < NK; t++)
#pragma GCC unroll 2
        for (int h = 0; h < NCH; h++) {
            __m256 v = RS > 1 ? _mm256_add_ps(acc[0][t][h], acc[1][t][h]) : acc[0][t][h];
            store_part(Y + t * ld + h * W, mk[h], full[h], v);
        }
}

/* NK keys starting at w (weights) / Y (rows), all channels. */
RS_INLINE void rows_keys(const float *w, const float *X, size_t ld, int r0, int nr, int dh,
                         float *Y, const int NK)
{
    int c = 0;
    for (; c + W < dh; c += 2 * W) /* two chunks, the second maybe partial */
        rows_blk(w, X + c, ld, r0, nr, W, dh - c - W, Y + c, NK, 2);
    if (c < dh) rows_blk(w, X + c, ld, r0, nr, dh - c, 0, Y + c, NK, 1);
}

/* Y[j][:] += sum_{r<nr} w[j][r] * X[r][:] for the nk keys of a block (dK, dV):
 * a small GEMM, register-blocked 4 keys x 16 channels. The weights w[j][r]
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

static void fwd_tile(const attn_args *a, int i0, int nr)
{
    _Alignas(64) float qt[RS_ATTN_DH_MAX * W];
    _Alignas(64) float ot[RS_ATTN_DH_MAX * W];
    _Alignas(64) float st[BC * W];
    const int ld = a->ld, dh = a->dh;
    const __m256 ninf = _mm256_set1_ps(-INFINITY), ks = _mm256_set1_ps(a->keep_scale);

    load_transposed(a->Q + (size_t)i0 * ld, ld, nr, dh, a->scale, qt);
    memset(ot, 0, sizeof(float) * (size_t)dh * W);
    __m256 m = ninf, l = _mm256_setzero_ps();
    const int jend = i0 + nr; /* keys up to the tile's last row */
    for (int j0 = a->start; j0 < jend; j0 += BC) {
        const int nk = jend - j0 < BC ? jend - j0 : BC;
        scores(qt, a->K + (size_t)j0 * ld, ld, dh, nk, st);
        __m256 bm = ninf;
        for (int j = 0; j < nk; j++) {
            __m256 s = _mm256_load_ps(st + j * W);
            int off = j0 + j - i0;
            if (off > 0) {
                s = _mm256_blendv_ps(ninf, s, causal_mask(off));
                _mm256_store_ps(st + j * W, s);
            }
            bm = _mm256_max_ps(bm, s);
        }
        const __m256 mn = _mm256_max_ps(m, bm);
        const __m256 alpha = exp8(_mm256_sub_ps(m, mn));
        __m256 sum = _mm256_setzero_ps();
        for (int j = 0; j < nk; j++) {
            __m256 p = exp8(_mm256_sub_ps(_mm256_load_ps(st + j * W), mn));
            sum = _mm256_add_ps(sum, p);
            if (a->drop) p = _mm256_and_ps(_mm256_mul_ps(p, ks), keep8(a, i0, j0 + j));
            _mm256_store_ps(st + j * W, p);
        }
        l = _mm256_fmadd_ps(l, alpha, sum);
        m = mn;
        accum_transposed(st, a->V + (size_t)j0 * ld, ld, dh, nk, alpha, ot);
    }
    _Alignas(32) float mv[W], lv[W], inv[W];
    _mm256_store_ps(mv, m);
    _mm256_store_ps(lv, l);
    _mm256_store_ps(inv, _mm256_div_ps(_mm256_set1_ps(1.0f), l));
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

void rs_attn_fwd_avx2(int L, int start, int dh, float scale, const float *Q, const float *K,
                      const float *V, int ld, float drop_p, uint64_t seed, float *O, float *lse)
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
    _Alignas(64) float qt[RS_ATTN_DH_MAX * W];  /* Q^T of the tile */
    _Alignas(64) float gt[RS_ATTN_DH_MAX * W];  /* dO^T */
    _Alignas(64) float dqt[RS_ATTN_DH_MAX * W]; /* dQ^T accumulator */
    _Alignas(64) float pt[BC * W];              /* scores, then dropped weights */
    _Alignas(64) float dt[BC * W];              /* dO·V, then dS */
    _Alignas(32) float dv[W];
    const int ld = a->ld, dh = a->dh;
    const __m256i rows_i = lanes_below(nr);
    const __m256 rows = _mm256_castsi256_ps(rows_i);
    const __m256 ks = _mm256_set1_ps(a->keep_scale), sc = _mm256_set1_ps(a->scale);

    load_transposed(a->Q + (size_t)i0 * ld, ld, nr, dh, 1.0f, qt);
    load_transposed(a->dO + (size_t)i0 * ld, ld, nr, dh, 1.0f, gt);
    memset(dqt, 0, sizeof(float) * (size_t)dh * W);
    /* D_i = dO_i · O_i = sum_j A_ij dA_ij */
    memset(dv, 0, sizeof dv);
    for (int r = 0; r < nr; r++) {
        const float *g = a->dO + (size_t)(i0 + r) * ld, *o = a->O + (size_t)(i0 + r) * ld;
        __m256 acc = _mm256_setzero_ps();
        for (int c = 0; c < dh; c += W) {
            __m256i cm = lanes_below(dh - c);
            acc = _mm256_fmadd_ps(_mm256_maskload_ps(g + c, cm), _mm256_maskload_ps(o + c, cm), acc);
        }
        dv[r] = hsum8(acc);
    }
    const __m256 D = _mm256_load_ps(dv);
    const __m256 lse = _mm256_maskload_ps(a->lse + i0, rows_i);

    const int jend = i0 + nr;
    for (int j0 = a->start; j0 < jend; j0 += BC) {
        const int nk = jend - j0 < BC ? jend - j0 : BC;
        scores(qt, a->K + (size_t)j0 * ld, ld, dh, nk, pt);
        scores(gt, a->V + (size_t)j0 * ld, ld, dh, nk, dt);
        for (int j = 0; j < nk; j++) {
            __m256 valid = _mm256_and_ps(rows, causal_mask(j0 + j - i0));
            __m256 s = _mm256_load_ps(pt + j * W), dp = _mm256_load_ps(dt + j * W);
            __m256 p = _mm256_and_ps(valid, exp8(_mm256_fmsub_ps(s, sc, lse)));
            __m256 pd = p;
            if (a->drop) {
                __m256 keep = keep8(a, i0, j0 + j);
                pd = _mm256_and_ps(keep, _mm256_mul_ps(p, ks));
                dp = _mm256_and_ps(keep, _mm256_mul_ps(dp, ks));
            }
            __m256 ds = _mm256_mul_ps(_mm256_mul_ps(p, _mm256_sub_ps(dp, D)), sc);
            _mm256_store_ps(pt + j * W, pd);
            _mm256_store_ps(dt + j * W, ds);
        }
        accum_transposed(dt, a->K + (size_t)j0 * ld, ld, dh, nk, _mm256_set1_ps(1.0f), dqt);
        accum_rows(dt, a->Q + (size_t)i0 * ld, nr, dh, nk, j0 - i0, a->dK + (size_t)j0 * ld, ld);
        accum_rows(pt, a->dO + (size_t)i0 * ld, nr, dh, nk, j0 - i0, a->dV + (size_t)j0 * ld, ld);
    }
    static const float ones[W] = {1, 1, 1, 1, 1, 1, 1, 1};
    store_transposed(dqt, ones, nr, dh, a->dQ + (size_t)i0 * ld, ld);
}

void rs_attn_bwd_avx2(int L, int start, int dh, float scale, const float *Q, const float *K,
                      const float *V, const float *O, const float *dO, const float *lse, int ld,
                      float drop_p, uint64_t seed, float *dQ, float *dK, float *dV)
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
