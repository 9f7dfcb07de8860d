/* Pieces shared by the AVX-512 softmax-attention kernels (fp32 in
 * attention_avx512.c, bf16 in attention_bf16.c): the vector vocabulary and
 * dropout decisions that attention_tiles.h (the tile driver, which each of
 * them includes) is written in, tile transposes, and the P·V style
 * accumulations that stay fp32 in both. Include only from translation units
 * built with the AVX-512 flags. */
#ifndef RS_ATTENTION_AVX512_COMMON_H
#define RS_ATTENTION_AVX512_COMMON_H

#include "kernels_isa.h"
#include "simd_avx512.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define W 16  /* query rows per tile = lanes */
#define BC 64 /* keys per block of the online softmax */

/* ---- the vector vocabulary of attention_tiles.h: masks are opmasks ---- */
typedef __m512 vf;
typedef __mmask16 vmask;
static inline vf v_load(const float *p) { return _mm512_load_ps(p); }
static inline void v_store(float *p, vf v) { _mm512_store_ps(p, v); }
static inline vf v_set1(float x) { return _mm512_set1_ps(x); }
static inline vf v_zero(void) { return _mm512_setzero_ps(); }
static inline vf v_add(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf v_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf v_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf v_div(vf a, vf b) { return _mm512_div_ps(a, b); }
static inline vf v_max(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline vf v_fmadd(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline vf v_fmsub(vf a, vf b, vf c) { return _mm512_fmsub_ps(a, b, c); }
static inline vf v_exp(vf x) { return rs_exp16(x); }
static inline float v_hsum(vf v) { return _mm512_reduce_add_ps(v); }
static inline vf v_select(vmask m, vf a, vf b) { return _mm512_mask_mov_ps(b, m, a); }
static inline vf v_maskz(vmask m, vf a) { return _mm512_maskz_mov_ps(m, a); }
static inline vf v_maskz_mul(vmask m, vf a, vf b) { return _mm512_maskz_mul_ps(m, a, b); }
static inline vf v_load_part(const float *p, int n) { return _mm512_maskz_loadu_ps(rs_mask16(n), p); }
static inline vmask m_and(vmask a, vmask b) { return (vmask)(a & b); }
static inline vmask row_mask(int n) { return rs_mask16(n); }

/* Lanes of key j (relative offset off = j - i0) that are on or below the
 * diagonal: row r sees key j iff r >= off. */
static inline vmask causal_mask(int off)
{
    return off <= 0 ? (__mmask16)0xFFFF : (__mmask16)(0xFFFFu << off);
}

/* Dropout: the seed, the threshold T, r*L for rows 0-7 and 8-15. */
typedef struct attn_drop {
    __m512i seed, thr, rofs_lo, rofs_hi;
} attn_drop;

static inline void drop_init(attn_drop *d, int L, uint64_t seed, long long T)
{
    d->thr = _mm512_set1_epi64(T);
    d->seed = _mm512_set1_epi64((long long)seed);
    long long Ll = L;
    d->rofs_lo = _mm512_set_epi64(7 * Ll, 6 * Ll, 5 * Ll, 4 * Ll, 3 * Ll, 2 * Ll, Ll, 0);
    d->rofs_hi = _mm512_add_epi64(d->rofs_lo, _mm512_set1_epi64(8 * Ll));
}

/* Keep lanes of rows i0..i0+15 for key j: counters (i0+r)*L + j. */
static inline vmask keep_mask(const attn_drop *d, int L, int i0, int j)
{
    __m512i base = _mm512_set1_epi64((long long)i0 * L + j);
    __mmask8 lo = rs_dropout_keep8(d->seed, _mm512_add_epi64(base, d->rofs_lo), d->thr);
    __mmask8 hi = rs_dropout_keep8(d->seed, _mm512_add_epi64(base, d->rofs_hi), d->thr);
    return (__mmask16)(lo | ((unsigned)hi << 8));
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
static inline void store_transposed(const float *xt, const float *rs, int nr, int dh, float *Y, int ld)
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
static inline void accum_transposed(const float *p, const float *Y, int ld, int dh, int nk,
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
static inline void accum_rows(const float *w, const float *X, int nr, int dh, int nk, int off0, float *Y,
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

#endif
