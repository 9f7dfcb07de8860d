/*
 * Fused causal softmax attention, AVX2 + FMA: the AVX2 half of the tile
 * driver in attention_tiles.h (which holds the algorithm).
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
#include "simd_avx2.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define W 8   /* query rows per tile = lanes */
#define BC 64 /* keys per block of the online softmax */

/* ---- the vector vocabulary of attention_tiles.h: masks are all-ones lanes ---- */
typedef __m256 vf;
typedef __m256 vmask;
static inline vf v_load(const float *p) { return _mm256_load_ps(p); }
static inline void v_store(float *p, vf v) { _mm256_store_ps(p, v); }
static inline vf v_set1(float x) { return _mm256_set1_ps(x); }
static inline vf v_zero(void) { return _mm256_setzero_ps(); }
static inline vf v_add(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf v_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf v_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf v_div(vf a, vf b) { return _mm256_div_ps(a, b); }
static inline vf v_max(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline vf v_fmadd(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf v_fmsub(vf a, vf b, vf c) { return _mm256_fmsub_ps(a, b, c); }
static inline vf v_exp(vf x) { return rs_exp8(x); }
static inline float v_hsum(vf v) { return rs_hsum8(v); }
static inline vf v_select(vmask m, vf a, vf b) { return _mm256_blendv_ps(b, a, m); }
static inline vf v_maskz(vmask m, vf a) { return _mm256_and_ps(m, a); }
static inline vf v_maskz_mul(vmask m, vf a, vf b) { return _mm256_and_ps(_mm256_mul_ps(a, b), m); }
static inline vf v_load_part(const float *p, int n) { return _mm256_maskload_ps(p, rs_tail8(n)); }
static inline vmask m_and(vmask a, vmask b) { return _mm256_and_ps(a, b); }
static inline vmask row_mask(int n) { return _mm256_castsi256_ps(rs_tail8(n)); }

/* Lanes of key j (offset off = j - i0) on or below the diagonal: r >= off. */
static inline vmask causal_mask(int off)
{
    return _mm256_castsi256_ps(
        _mm256_cmpgt_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(off - 1)));
}

/* Dropout: the seed, the threshold T - 1 (32-bit lanes), r*L for rows 0-3 and 4-7. */
typedef struct attn_drop {
    __m256i seed, thr, rofs_lo, rofs_hi;
} attn_drop;

static inline void drop_init(attn_drop *d, int L, uint64_t seed, long long T)
{
    d->thr = _mm256_set1_epi32((int)(T - 1));
    d->seed = _mm256_set1_epi64x((long long)seed);
    long long Ll = L;
    d->rofs_lo = _mm256_set_epi64x(3 * Ll, 2 * Ll, Ll, 0);
    d->rofs_hi = _mm256_add_epi64(d->rofs_lo, _mm256_set1_epi64x(4 * Ll));
}

/* Keep lanes of rows i0..i0+7 for key j: counters (i0+r)*L + j; kept iff
 * the hash bits t >= T (t < 2^24, so a 32-bit compare). */
static inline vmask keep_mask(const attn_drop *d, int L, int i0, int j)
{
    __m256i base = _mm256_set1_epi64x((long long)i0 * L + j);
    __m256i t0 = rs_dropout_bits4(d->seed, _mm256_add_epi64(base, d->rofs_lo));
    __m256i t1 = rs_dropout_bits4(d->seed, _mm256_add_epi64(base, d->rofs_hi));
    /* gather the low 32-bit halves in row order 0..7 */
    __m256 pk = _mm256_shuffle_ps(_mm256_castsi256_ps(t0), _mm256_castsi256_ps(t1),
                                  _MM_SHUFFLE(2, 0, 2, 0));
    __m256i t = _mm256_permute4x64_epi64(_mm256_castps_si256(pk), _MM_SHUFFLE(3, 1, 2, 0));
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(t, d->thr));
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
        const __m256i cm = rs_tail8(dh - c0);
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
        const __m256i cm = rs_tail8(dh - c0);
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
    const __m256i mk[2] = {rs_tail8(n0), rs_tail8(n1)};
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

#include "attention_tiles.h"

void rs_attn_fwd_avx2(int L, int start, int dh, float scale, const float *Q, const float *K,
                      const float *V, int ld, float drop_p, uint64_t seed, float *O, float *lse)
{
    attn_fwd_run(L, start, dh, scale, Q, K, V, ld, drop_p, seed, O, lse);
}

void rs_attn_bwd_avx2(int L, int start, int dh, float scale, const float *Q, const float *K,
                      const float *V, const float *O, const float *dO, const float *lse, int ld,
                      float drop_p, uint64_t seed, float *dQ, float *dK, float *dV)
{
    attn_bwd_run(L, start, dh, scale, Q, K, V, O, dO, lse, ld, drop_p, seed, dQ, dK, dV);
}
