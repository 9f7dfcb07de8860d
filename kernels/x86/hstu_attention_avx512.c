/* HSTU pointwise attention, AVX-512. Key columns are processed in tiles of
 * 16 (one zmm lane per key), packed transposed into scratch once per tile;
 * every query row i >= tile start then forms its 16 scores with one FMA per
 * feature, takes SiLU, and accumulates into its output row (forward) or
 * into the tile's dK/dV accumulators and its own dQ row (backward). Rows go
 * four at a time for independent FMA chains. Tiles above the diagonal and
 * padding are never visited; nothing of size L x L is stored. */
#include "kernels.h"
#include "kernels_isa.h"
#include "hstu_bucket.h"
#include "hstu_tiles.h"
#include "simd_avx512.h"

#include <immintrin.h>
#include <string.h>

#define TW 16        /* key columns per tile */
#define RB 4         /* query rows per block */

/* Scores of 2 RB rows against the packed key tile, s[r][jj] = q_r · k_jj:
 * eight independent FMA chains (four leave the multiply-add units waiting
 * on each chain's latency). */
static inline void tile_scores8(const float *const *qr, const float *kt, int dqk, __m512 *s)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    for (int c = 0; c < dqk; c++) {
        __m512 kv = _mm512_load_ps(kt + (size_t)c * TW);
        s0 = _mm512_fmadd_ps(_mm512_set1_ps(qr[0][c]), kv, s0);
        s1 = _mm512_fmadd_ps(_mm512_set1_ps(qr[1][c]), kv, s1);
        s2 = _mm512_fmadd_ps(_mm512_set1_ps(qr[2][c]), kv, s2);
        s3 = _mm512_fmadd_ps(_mm512_set1_ps(qr[3][c]), kv, s3);
        s4 = _mm512_fmadd_ps(_mm512_set1_ps(qr[4][c]), kv, s4);
        s5 = _mm512_fmadd_ps(_mm512_set1_ps(qr[5][c]), kv, s5);
        s6 = _mm512_fmadd_ps(_mm512_set1_ps(qr[6][c]), kv, s6);
        s7 = _mm512_fmadd_ps(_mm512_set1_ps(qr[7][c]), kv, s7);
    }
    s[0] = s0; s[1] = s1; s[2] = s2; s[3] = s3; s[4] = s4; s[5] = s5; s[6] = s6; s[7] = s7;
}

/* The backward's two score tiles at once, s = q·k and g = dO·v: eight
 * independent chains over the common width, then each on its own. */
static inline void tile_scores2(const float *const *qr, const float *kt, int dqk,
                                const float *const *dor, const float *vt, int dv, __m512 *s,
                                __m512 *g)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, g0 = s0, g1 = s0, g2 = s0, g3 = s0;
    int c = 0, common = dqk < dv ? dqk : dv;
    for (; c < common; c++) {
        __m512 kv = _mm512_load_ps(kt + (size_t)c * TW), vv = _mm512_load_ps(vt + (size_t)c * TW);
        s0 = _mm512_fmadd_ps(_mm512_set1_ps(qr[0][c]), kv, s0);
        g0 = _mm512_fmadd_ps(_mm512_set1_ps(dor[0][c]), vv, g0);
        s1 = _mm512_fmadd_ps(_mm512_set1_ps(qr[1][c]), kv, s1);
        g1 = _mm512_fmadd_ps(_mm512_set1_ps(dor[1][c]), vv, g1);
        s2 = _mm512_fmadd_ps(_mm512_set1_ps(qr[2][c]), kv, s2);
        g2 = _mm512_fmadd_ps(_mm512_set1_ps(dor[2][c]), vv, g2);
        s3 = _mm512_fmadd_ps(_mm512_set1_ps(qr[3][c]), kv, s3);
        g3 = _mm512_fmadd_ps(_mm512_set1_ps(dor[3][c]), vv, g3);
    }
    for (int e = c; e < dqk; e++) {
        __m512 kv = _mm512_load_ps(kt + (size_t)e * TW);
        s0 = _mm512_fmadd_ps(_mm512_set1_ps(qr[0][e]), kv, s0);
        s1 = _mm512_fmadd_ps(_mm512_set1_ps(qr[1][e]), kv, s1);
        s2 = _mm512_fmadd_ps(_mm512_set1_ps(qr[2][e]), kv, s2);
        s3 = _mm512_fmadd_ps(_mm512_set1_ps(qr[3][e]), kv, s3);
    }
    for (int e = c; e < dv; e++) {
        __m512 vv = _mm512_load_ps(vt + (size_t)e * TW);
        g0 = _mm512_fmadd_ps(_mm512_set1_ps(dor[0][e]), vv, g0);
        g1 = _mm512_fmadd_ps(_mm512_set1_ps(dor[1][e]), vv, g1);
        g2 = _mm512_fmadd_ps(_mm512_set1_ps(dor[2][e]), vv, g2);
        g3 = _mm512_fmadd_ps(_mm512_set1_ps(dor[3][e]), vv, g3);
    }
    s[0] = s0; s[1] = s1; s[2] = s2; s[3] = s3;
    g[0] = g0; g[1] = g1; g[2] = g2; g[3] = g3;
}

/* Time buckets of 8 keys against one query's next timestamp, as in
 * rs_hstu_bucket_fast with doubles: the conversion of |Δ| to double is the
 * definition's own, so comparing it with the thresholds as doubles is exact
 * (x >= thr[k] iff bucket >= k), and the four threshold lookups are
 * independent gathers. */
static const double thr_d[133] = {RS_HSTU_BUCKET_THRESHOLDS};

static inline __m256i bucket8(__m512i tn, __m512i t)
{
    __m512d x = _mm512_cvtepu64_pd(_mm512_abs_epi64(_mm512_sub_epi64(tn, t)));
    x = _mm512_max_pd(x, _mm512_set1_pd(1.0));
    __m512d b = _mm512_roundscale_pd(_mm512_mul_pd(_mm512_getexp_pd(x), _mm512_set1_pd(2.302)),
                                     _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    b = _mm512_min_pd(_mm512_max_pd(_mm512_sub_pd(b, _mm512_set1_pd(1.0)), _mm512_setzero_pd()),
                      _mm512_set1_pd(128.0));
    __m256i b0 = _mm512_cvtpd_epi32(b), one = _mm256_set1_epi32(1), acc = b0;
    for (int s = 1; s <= 4; s++) {
        __m256i idx = _mm256_add_epi32(b0, _mm256_set1_epi32(s));
        __m512d th = _mm512_i32gather_pd(idx, thr_d, 8);
        acc = _mm256_mask_add_epi32(acc, _mm512_cmp_pd_mask(x, th, _CMP_GE_OQ), acc, one);
    }
    return acc;
}

/* 1 when times[j0..j0+n) is non-decreasing (once per key tile). */
static inline int tile_sorted(const int64_t *times, int j0, int n)
{
    for (int jj = 1; jj < n; jj++)
        if (times[j0 + jj] < times[j0 + jj - 1]) return 0;
    return 1;
}

/* The buckets of a tile's first and last key for successive query rows.
 * Down the rows the next time does not decrease (a sorted history), so
 * neither bucket does: each is carried from the row before and moved past
 * the thresholds the new |Δ| reaches (exact: bucket(x) is the largest k
 * with x >= thr[k]), a compare or two instead of rs_hstu_bucket_fast. ok:
 * lo and hi hold the previous row's values for the same last key. */
typedef struct bucket_walk {
    int64_t tn;
    int lo, hi, ok;
} bucket_walk;

static const uint64_t thr_u[133] = {RS_HSTU_BUCKET_THRESHOLDS};

static inline int walk_up(uint64_t x, int b)
{
    while (x >= thr_u[b + 1]) b++; /* thr_u[129..] never reached */
    return b;
}

/* Buckets and time bias of one row against a sorted tile, without gathers.
 * With the tile's times sorted and tn at or after them, |Δ| = tn - t falls
 * across the lanes, so every bucket lies in [lo, hi] = the buckets of the
 * last and the first valid lane, and bucket = lo + #{k in (lo, hi] : |Δ| >=
 * thr[k]} (the thresholds below lo are passed by every lane, those above hi
 * by none). The bias comes from the 16 rab_time entries at lo by a lane
 * permute: the same floats a gather reads. 0 when hi - lo >= 16 (the
 * caller gathers). full: the row sees the whole tile (its last key is the
 * tile's), so w may carry lo and hi on to the next row. */
static inline int sorted_time_bias(const rs_hstu_attn *a, int64_t tn, int j0, int nvalid,
                                   int full, bucket_walk *w, __mmask16 m, __m512 *bias,
                                   __m512i *bk)
{
    const uint64_t *thr = thr_u;
    uint64_t x_lo = (uint64_t)(tn - a->times[j0 + nvalid - 1]), x_hi = (uint64_t)(tn - a->times[j0]);
    int lo, hi;
    if (w->ok && full && tn >= w->tn) {
        lo = walk_up(x_lo, w->lo);
        hi = walk_up(x_hi, w->hi);
    } else {
        lo = rs_hstu_bucket_fast((int64_t)x_lo);
        hi = rs_hstu_bucket_fast((int64_t)x_hi);
    }
    *w = (bucket_walk){tn, lo, hi, full};
    if (hi - lo >= 16) return 0;
    __m512i c0 = _mm512_setzero_si512(), c1 = c0;
    if (hi > lo) {
        __m512i tv = _mm512_set1_epi64(tn), one = _mm512_set1_epi64(1);
        __m512i x0 = _mm512_sub_epi64(tv, _mm512_maskz_loadu_epi64((__mmask8)m, a->times + j0));
        __m512i x1 = _mm512_sub_epi64(tv, _mm512_maskz_loadu_epi64((__mmask8)(m >> 8),
                                                                   a->times + j0 + 8));
        for (int k = lo + 1; k <= hi; k++) {
            __m512i th = _mm512_set1_epi64((long long)thr[k]);
            c0 = _mm512_mask_add_epi64(c0, _mm512_cmpge_epu64_mask(x0, th), c0, one);
            c1 = _mm512_mask_add_epi64(c1, _mm512_cmpge_epu64_mask(x1, th), c1, one);
        }
    }
    __m512i rel = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(c0)),
                                     _mm512_cvtepi64_epi32(c1), 1);
    __m512 tab = _mm512_maskz_loadu_ps(rs_mask16(RS_HSTU_TIME_BUCKETS - lo), a->rab_time + lo);
    *bias = _mm512_maskz_permutexvar_ps(m, rel, tab);
    *bk = _mm512_add_epi32(rel, _mm512_set1_epi32(lo));
    return 1;
}

/* Relative bias of row i against the tile's valid lanes; buckets kept for
 * the backward scatter. sorted: the tile's times are non-decreasing; w:
 * the tile's bucket walk (rows come in increasing order). */
static inline __m512 tile_bias(const rs_hstu_attn *a, int i, int j0, int nvalid, int nj,
                               int sorted, bucket_walk *w, __mmask16 m, int *bucket)
{
    __m512 b = _mm512_maskz_loadu_ps(m, a->rab_pos + (j0 - i + a->N - 1));
    if (a->rab_time) {
        int64_t tn = a->next_times[i];
        __m512 tb;
        __m512i bk;
        if (!(sorted && tn >= a->times[j0 + nvalid - 1] &&
              sorted_time_bias(a, tn, j0, nvalid, nvalid == nj, w, m, &tb, &bk))) {
            w->ok = 0;
            __m512i tnv = _mm512_set1_epi64(tn);
            __m512i t0 = _mm512_maskz_loadu_epi64((__mmask8)m, a->times + j0);
            __m512i t1 = _mm512_maskz_loadu_epi64((__mmask8)(m >> 8), a->times + j0 + 8);
            bk = _mm512_inserti64x4(_mm512_castsi256_si512(bucket8(tnv, t0)), bucket8(tnv, t1), 1);
            tb = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, bk, a->rab_time, 4);
        }
        if (bucket) _mm512_storeu_si512(bucket, bk); /* for the backward's scatter */
        b = _mm512_add_ps(b, tb);
    }
    return b;
}

/* acc_r[c0..c0+16*NV) += Σ_jj w[r*TW+jj] · x[(j0+jj)*ld + c0..], added into
 * the RB output rows (rows with out[r] == NULL skipped). */
static inline __attribute__((always_inline)) void
tile_accumulate(int NV, const float *w, int njj, const float *x, int ld, int j0, int c0, int width,
                float *const *out)
{
    __m512 acc[RB][4];
    __mmask16 mk[4];
    for (int v = 0; v < 4; v++) {
        mk[v] = rs_mask16(width - c0 - 16 * v);
        for (int r = 0; r < RB; r++) acc[r][v] = _mm512_setzero_ps();
    }
    for (int jj = 0; jj < njj; jj++) {
        const float *row = x + (size_t)(j0 + jj) * ld + c0;
        __m512 xv[4];
        for (int v = 0; v < NV; v++) xv[v] = _mm512_maskz_loadu_ps(mk[v], row + 16 * v);
        for (int r = 0; r < RB; r++) {
            __m512 wb = _mm512_set1_ps(w[r * TW + jj]);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(wb, xv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < RB; r++) {
        if (!out[r]) continue;
        for (int v = 0; v < NV; v++) {
            float *p = out[r] + c0 + 16 * v;
            __m512 cur = _mm512_maskz_loadu_ps(mk[v], p);
            _mm512_mask_storeu_ps(p, mk[v], _mm512_add_ps(cur, acc[r][v]));
        }
    }
}

static void accumulate_rows(const float *w, int njj, const float *x, int ld, int j0, int width,
                            float *const *out)
{
    for (int c0 = 0; c0 < width; c0 += 64) {
        int nv = (width - c0 + 15) / 16;
        switch (nv > 4 ? 4 : nv) {
        case 1: tile_accumulate(1, w, njj, x, ld, j0, c0, width, out); break;
        case 2: tile_accumulate(2, w, njj, x, ld, j0, c0, width, out); break;
        case 3: tile_accumulate(3, w, njj, x, ld, j0, c0, width, out); break;
        default: tile_accumulate(4, w, njj, x, ld, j0, c0, width, out); break;
        }
    }
}

void rs_hstu_fwd_avx512(const rs_hstu_attn *a, float *o, int ld_o, float *scratch)
{
    _Alignas(64) float stack[RS_HSTU_STACK_FLOATS];
    float *ws = rs_hstu_pick_scratch(scratch, stack, a->dqk, a->dv);
    if (!ws) { rs_hstu_fwd_ref(a, o, ld_o, NULL); return; }
    const int L = a->L, dqk = a->dqk, dv = a->dv, ld = a->ld;
    const __m512 inv_n = _mm512_set1_ps(1.0f / (float)a->N);
    float *kt = ws, *wt = ws + (size_t)dqk * TW;
    for (int i = 0; i < L; i++) memset(o + (size_t)i * ld_o, 0, sizeof(float) * (size_t)dv);
    for (int j0 = a->start; j0 < L; j0 += TW) {
        int nj = L - j0 < TW ? L - j0 : TW;
        rs_hstu_pack_tile(a->k, ld, j0, nj, dqk, TW, kt);
        int sorted = a->rab_time && tile_sorted(a->times, j0, nj);
        bucket_walk walk = {0, 0, 0, 0};
        for (int i0 = j0; i0 < L; i0 += 2 * RB) {
            const float *qr[2 * RB];
            float *orow[2 * RB];
            for (int r = 0; r < 2 * RB; r++) {
                int i = i0 + r < L ? i0 + r : L - 1;
                qr[r] = a->q + (size_t)i * ld;
                orow[r] = i0 + r < L ? o + (size_t)(i0 + r) * ld_o : NULL;
            }
            __m512 s[2 * RB];
            tile_scores8(qr, kt, dqk, s);
            for (int r = 0; r < 2 * RB; r++) {
                int i = i0 + r, nvalid = i < L ? (i - j0 + 1 < nj ? i - j0 + 1 : nj) : 0;
                __m512 w = _mm512_setzero_ps();
                if (nvalid > 0) {
                    __mmask16 m = rs_mask16(nvalid);
                    __m512 x = _mm512_add_ps(s[r], tile_bias(a, i, j0, nvalid, nj, sorted, &walk, m, NULL));
                    w = _mm512_maskz_mul_ps(m, _mm512_mul_ps(x, rs_sigmoid16(x)), inv_n);
                }
                _mm512_store_ps(wt + r * TW, w);
            }
            for (int h = 0; h < 2 && i0 + h * RB < L; h++) { /* rows in two groups of RB */
                int first = i0 + h * RB, last = first + RB - 1 < L ? first + RB - 1 : L - 1;
                int njj = last - j0 + 1 < nj ? last - j0 + 1 : nj;
                accumulate_rows(wt + h * RB * TW, njj, a->v, ld, j0, dv, orow + h * RB);
            }
        }
    }
}

void rs_hstu_bwd_avx512(const rs_hstu_attn *a, const float *d_o, int ld_o, float *dq, float *dk,
                        float *dv, float *d_rab_pos, float *d_rab_time, float *scratch)
{
    _Alignas(64) float stack[RS_HSTU_STACK_FLOATS];
    float *ws = rs_hstu_pick_scratch(scratch, stack, a->dqk, a->dv);
    if (!ws) { rs_hstu_bwd_ref(a, d_o, ld_o, dq, dk, dv, d_rab_pos, d_rab_time, NULL); return; }
    const int L = a->L, dqk = a->dqk, dvw = a->dv, ld = a->ld;
    const __m512 inv_n = _mm512_set1_ps(1.0f / (float)a->N), one = _mm512_set1_ps(1.0f);
    float *kt = ws, *vt = kt + (size_t)dqk * TW, *dkt = vt + (size_t)dvw * TW,
          *dvt = dkt + (size_t)dqk * TW, *dst = dvt + (size_t)dvw * TW;
    _Alignas(64) int bucket[RB][TW];
    for (int i = 0; i < L; i++) {
        memset(dq + (size_t)i * ld, 0, sizeof(float) * (size_t)dqk);
        if (i < a->start) {
            memset(dk + (size_t)i * ld, 0, sizeof(float) * (size_t)dqk);
            memset(dv + (size_t)i * ld, 0, sizeof(float) * (size_t)dvw);
        }
    }
    for (int j0 = a->start; j0 < L; j0 += TW) {
        int nj = L - j0 < TW ? L - j0 : TW;
        rs_hstu_pack_tile(a->k, ld, j0, nj, dqk, TW, kt);
        rs_hstu_pack_tile(a->v, ld, j0, nj, dvw, TW, vt);
        int sorted = a->rab_time && tile_sorted(a->times, j0, nj);
        bucket_walk walk = {0, 0, 0, 0};
        memset(dkt, 0, sizeof(float) * (size_t)dqk * TW);
        memset(dvt, 0, sizeof(float) * (size_t)dvw * TW);
        for (int i0 = j0; i0 < L; i0 += RB) {
            const float *qr[RB], *dor[RB];
            float *dqrow[RB];
            for (int r = 0; r < RB; r++) {
                int i = i0 + r < L ? i0 + r : L - 1;
                qr[r] = a->q + (size_t)i * ld;
                dor[r] = d_o + (size_t)i * ld_o;
                dqrow[r] = i0 + r < L ? dq + (size_t)(i0 + r) * ld : NULL;
            }
            __m512 s[RB], g[RB], w[RB], ds[RB];
            tile_scores2(qr, kt, dqk, dor, vt, dvw, s, g); /* g: dA[i,j] = dO_i · v_j */
            for (int r = 0; r < RB; r++) {
                int i = i0 + r, nvalid = i < L ? (i - j0 + 1 < nj ? i - j0 + 1 : nj) : 0;
                w[r] = ds[r] = _mm512_setzero_ps();
                if (nvalid > 0) {
                    __mmask16 m = rs_mask16(nvalid);
                    __m512 x = _mm512_add_ps(s[r], tile_bias(a, i, j0, nvalid, nj, sorted, &walk, m, bucket[r]));
                    __m512 sg = rs_sigmoid16(x);
                    w[r] = _mm512_maskz_mul_ps(m, _mm512_mul_ps(x, sg), inv_n);
                    /* SiLU'(x) = σ(x) (1 + x (1 - σ(x))) */
                    __m512 dsilu = _mm512_mul_ps(sg, _mm512_fmadd_ps(x, _mm512_sub_ps(one, sg), one));
                    ds[r] = _mm512_maskz_mul_ps(m, _mm512_mul_ps(g[r], dsilu), inv_n);
                    float *pp = d_rab_pos + (j0 - i + a->N - 1);
                    _mm512_mask_storeu_ps(pp, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, pp), ds[r]));
                }
                _mm512_store_ps(dst + r * TW, ds[r]);
                if (a->rab_time)
                    for (int jj = 0; jj < nvalid; jj++) d_rab_time[bucket[r][jj]] += dst[r * TW + jj];
            }
            /* dV_j += A[i,j] dO_i and dK_j += dS[i,j] q_i, vectorised over the tile's keys. */
            for (int c = 0; c < dvw; c++) {
                __m512 acc = _mm512_load_ps(dvt + (size_t)c * TW);
                for (int r = 0; r < RB; r++) acc = _mm512_fmadd_ps(w[r], _mm512_set1_ps(dor[r][c]), acc);
                _mm512_store_ps(dvt + (size_t)c * TW, acc);
            }
            for (int c = 0; c < dqk; c++) {
                __m512 acc = _mm512_load_ps(dkt + (size_t)c * TW);
                for (int r = 0; r < RB; r++) acc = _mm512_fmadd_ps(ds[r], _mm512_set1_ps(qr[r][c]), acc);
                _mm512_store_ps(dkt + (size_t)c * TW, acc);
            }
            /* dQ_i += Σ_j dS[i,j] k_j */
            int last = i0 + RB - 1 < L ? i0 + RB - 1 : L - 1;
            int njj = last - j0 + 1 < nj ? last - j0 + 1 : nj;
            accumulate_rows(dst, njj, a->k, ld, j0, dqk, dqrow);
        }
        rs_hstu_unpack_tile(dkt, nj, dqk, TW, dk, ld, j0);
        rs_hstu_unpack_tile(dvt, nj, dvw, TW, dv, ld, j0);
    }
}
