/* HSTU pointwise attention, AVX2 + FMA. Same scheme as the AVX-512 variant
 * (hstu_attention_avx512.c): key tiles of 8 packed transposed once, query
 * rows four at a time, SiLU weights applied straight to the output / the
 * gradient accumulators; no L x L storage, nothing above the diagonal. */
#include "kernels.h"
#include "kernels_isa.h"
#include "hstu_bucket.h"
#include "hstu_tiles.h"
#include "simd_avx2.h"

#include <immintrin.h>
#include <string.h>

#define TW 8         /* key columns per tile */
#define RB 4         /* query rows per block */

static inline __m256 and_mask(__m256 x, __m256i m) { return _mm256_and_ps(x, _mm256_castsi256_ps(m)); }

static inline void tile_scores(const float *const *qr, const float *kt, int dqk, __m256 *s)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int c = 0; c < dqk; c++) {
        __m256 kv = _mm256_load_ps(kt + (size_t)c * TW);
        s0 = _mm256_fmadd_ps(_mm256_broadcast_ss(qr[0] + c), kv, s0);
        s1 = _mm256_fmadd_ps(_mm256_broadcast_ss(qr[1] + c), kv, s1);
        s2 = _mm256_fmadd_ps(_mm256_broadcast_ss(qr[2] + c), kv, s2);
        s3 = _mm256_fmadd_ps(_mm256_broadcast_ss(qr[3] + c), kv, s3);
    }
    s[0] = s0; s[1] = s1; s[2] = s2; s[3] = s3;
}

static inline __m256 tile_bias(const rs_hstu_attn *a, int i, int j0, int nvalid, __m256i m,
                               int *bucket)
{
    __m256 b = _mm256_maskload_ps(a->rab_pos + (j0 - i + a->N - 1), m);
    if (a->rab_time) {
        float tb[TW] = {0};
        int64_t tn = a->next_times[i];
        for (int jj = 0; jj < nvalid; jj++) {
            bucket[jj] = rs_hstu_bucket_fast(tn - a->times[j0 + jj]);
            tb[jj] = a->rab_time[bucket[jj]];
        }
        b = _mm256_add_ps(b, _mm256_loadu_ps(tb));
    }
    return b;
}

/* Rows out[r] += Σ_jj w[r*TW+jj] · x[(j0+jj)*ld + c0 .. c0+8*NV). */
static inline __attribute__((always_inline)) void
tile_accumulate(int NV, const float *w, int njj, const float *x, int ld, int j0, int c0, int width,
                float *const *out)
{
    __m256 acc[RB][2];
    __m256i mk[2];
    for (int v = 0; v < 2; v++) {
        mk[v] = rs_tail8(width - c0 - 8 * v);
        for (int r = 0; r < RB; r++) acc[r][v] = _mm256_setzero_ps();
    }
    for (int jj = 0; jj < njj; jj++) {
        const float *row = x + (size_t)(j0 + jj) * ld + c0;
        __m256 xv[2];
        for (int v = 0; v < NV; v++) xv[v] = _mm256_maskload_ps(row + 8 * v, mk[v]);
        for (int r = 0; r < RB; r++) {
            __m256 wb = _mm256_broadcast_ss(w + r * TW + jj);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm256_fmadd_ps(wb, xv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < RB; r++) {
        if (!out[r]) continue;
        for (int v = 0; v < NV; v++) {
            float *p = out[r] + c0 + 8 * v;
            __m256 cur = _mm256_maskload_ps(p, mk[v]);
            _mm256_maskstore_ps(p, mk[v], _mm256_add_ps(cur, acc[r][v]));
        }
    }
}

static void accumulate_rows(const float *w, int njj, const float *x, int ld, int j0, int width,
                            float *const *out)
{
    for (int c0 = 0; c0 < width; c0 += 16) {
        if (width - c0 > 8) tile_accumulate(2, w, njj, x, ld, j0, c0, width, out);
        else tile_accumulate(1, w, njj, x, ld, j0, c0, width, out);
    }
}

void rs_hstu_fwd_avx2(const rs_hstu_attn *a, float *o, int ld_o, float *scratch)
{
    _Alignas(64) float stack[RS_HSTU_STACK_FLOATS];
    float *ws = rs_hstu_pick_scratch(scratch, stack, a->dqk, a->dv);
    if (!ws) { rs_hstu_fwd_ref(a, o, ld_o, NULL); return; }
    const int L = a->L, dqk = a->dqk, dv = a->dv, ld = a->ld;
    const __m256 inv_n = _mm256_set1_ps(1.0f / (float)a->N);
    float *kt = ws, *wt = ws + (size_t)dqk * TW;
    int bucket[TW];
    for (int i = 0; i < L; i++) memset(o + (size_t)i * ld_o, 0, sizeof(float) * (size_t)dv);
    for (int j0 = a->start; j0 < L; j0 += TW) {
        int nj = L - j0 < TW ? L - j0 : TW;
        rs_hstu_pack_tile(a->k, ld, j0, nj, dqk, TW, kt);
        for (int i0 = j0; i0 < L; i0 += RB) {
            const float *qr[RB];
            float *orow[RB];
            for (int r = 0; r < RB; r++) {
                int i = i0 + r < L ? i0 + r : L - 1;
                qr[r] = a->q + (size_t)i * ld;
                orow[r] = i0 + r < L ? o + (size_t)(i0 + r) * ld_o : NULL;
            }
            __m256 s[RB];
            tile_scores(qr, kt, dqk, s);
            for (int r = 0; r < RB; r++) {
                int i = i0 + r, nvalid = i < L ? (i - j0 + 1 < nj ? i - j0 + 1 : nj) : 0;
                __m256 w = _mm256_setzero_ps();
                if (nvalid > 0) {
                    __m256i m = rs_tail8(nvalid);
                    __m256 x = _mm256_add_ps(s[r], tile_bias(a, i, j0, nvalid, m, bucket));
                    w = and_mask(_mm256_mul_ps(_mm256_mul_ps(x, rs_sigmoid8(x)), inv_n), m);
                }
                _mm256_store_ps(wt + r * TW, w);
            }
            int last = i0 + RB - 1 < L ? i0 + RB - 1 : L - 1;
            int njj = last - j0 + 1 < nj ? last - j0 + 1 : nj;
            accumulate_rows(wt, njj, a->v, ld, j0, dv, orow);
        }
    }
}

void rs_hstu_bwd_avx2(const rs_hstu_attn *a, const float *d_o, int ld_o, float *dq, float *dk,
                      float *dv, float *d_rab_pos, float *d_rab_time, float *scratch)
{
    _Alignas(64) float stack[RS_HSTU_STACK_FLOATS];
    float *ws = rs_hstu_pick_scratch(scratch, stack, a->dqk, a->dv);
    if (!ws) { rs_hstu_bwd_ref(a, d_o, ld_o, dq, dk, dv, d_rab_pos, d_rab_time, NULL); return; }
    const int L = a->L, dqk = a->dqk, dvw = a->dv, ld = a->ld;
    const __m256 inv_n = _mm256_set1_ps(1.0f / (float)a->N), one = _mm256_set1_ps(1.0f);
    float *kt = ws, *vt = kt + (size_t)dqk * TW, *dkt = vt + (size_t)dvw * TW,
          *dvt = dkt + (size_t)dqk * TW, *dst = dvt + (size_t)dvw * TW;
    int bucket[RB][TW];
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
            __m256 s[RB], g[RB], w[RB], ds[RB];
            tile_scores(qr, kt, dqk, s);
            tile_scores(dor, vt, dvw, g);
            for (int r = 0; r < RB; r++) {
                int i = i0 + r, nvalid = i < L ? (i - j0 + 1 < nj ? i - j0 + 1 : nj) : 0;
                w[r] = ds[r] = _mm256_setzero_ps();
                if (nvalid > 0) {
                    __m256i m = rs_tail8(nvalid);
                    __m256 x = _mm256_add_ps(s[r], tile_bias(a, i, j0, nvalid, m, bucket[r]));
                    __m256 sg = rs_sigmoid8(x);
                    w[r] = and_mask(_mm256_mul_ps(_mm256_mul_ps(x, sg), inv_n), m);
                    __m256 dsilu = _mm256_mul_ps(sg, _mm256_fmadd_ps(x, _mm256_sub_ps(one, sg), one));
                    ds[r] = and_mask(_mm256_mul_ps(_mm256_mul_ps(g[r], dsilu), inv_n), m);
                    float *pp = d_rab_pos + (j0 - i + a->N - 1);
                    _mm256_maskstore_ps(pp, m, _mm256_add_ps(_mm256_maskload_ps(pp, m), ds[r]));
                }
                _mm256_store_ps(dst + r * TW, ds[r]);
                if (a->rab_time)
                    for (int jj = 0; jj < nvalid; jj++) d_rab_time[bucket[r][jj]] += dst[r * TW + jj];
            }
            for (int c = 0; c < dvw; c++) {
                __m256 acc = _mm256_load_ps(dvt + (size_t)c * TW);
                for (int r = 0; r < RB; r++) acc = _mm256_fmadd_ps(w[r], _mm256_broadcast_ss(dor[r] + c), acc);
                _mm256_store_ps(dvt + (size_t)c * TW, acc);
            }
            for (int c = 0; c < dqk; c++) {
                __m256 acc = _mm256_load_ps(dkt + (size_t)c * TW);
                for (int r = 0; r < RB; r++) acc = _mm256_fmadd_ps(ds[r], _mm256_broadcast_ss(qr[r] + c), acc);
                _mm256_store_ps(dkt + (size_t)c * TW, acc);
            }
            int last = i0 + RB - 1 < L ? i0 + RB - 1 : L - 1;
            int njj = last - j0 + 1 < nj ? last - j0 + 1 : nj;
            accumulate_rows(dst, njj, a->k, ld, j0, dqk, dqrow);
        }
        rs_hstu_unpack_tile(dkt, nj, dqk, TW, dk, ld, j0);
        rs_hstu_unpack_tile(dvt, nj, dvw, TW, dv, ld, j0);
    }
}
