/*
 * The fused causal softmax attention, written once for every ISA: the
 * argument block, the row tiles, and the forward and backward tile loops
 * (online softmax, causal mask, dropout, gradients). Included by each ISA's
 * translation unit (attention_avx2.c, attention_avx512.c, attention_bf16.c)
 * after it has defined, as static inline functions and macros:
 *
 *   W, BC          query rows per tile (= lanes), keys per block
 *   vf, vmask      the float vector and the lane mask types
 *   v_load/v_store (aligned), v_set1, v_zero, v_add, v_sub, v_mul, v_div,
 *   v_max, v_fmadd(a, b, c) = a*b+c, v_fmsub(a, b, c) = a*b-c, v_exp,
 *   v_hsum, v_select(m, a, b) = m ? a : b, v_maskz(m, a) = m ? a : 0,
 *   v_maskz_mul(m, a, b) = m ? a*b : 0, v_load_part(p, n) (lanes < n, others 0),
 *   m_and, row_mask(n) (lanes < n), causal_mask(off) (lanes r >= off)
 *   attn_drop, drop_init(d, L, seed, T), keep_mask(d, L, i0, j)   the dropout
 *                  hash state and the keep lanes of rows i0.. for key j
 *   store_transposed, accum_transposed, accum_rows   (see attention_avx2.c)
 *   load_transposed, scores    (the fp32 products below use them)
 *
 * A unit whose products differ (attention_bf16.c) defines
 * ATTN_CUSTOM_PRODUCTS and its own fwd_ws + fwd_prepare/fwd_scores/fwd_accum,
 * bwd_ws + bwd_prepare/bwd_scores/bwd_dO_part and ATTN_SCORES_SCALED (1 when
 * fwd_scores already includes the scale), as in the fp32 block below.
 *
 * The hooks are static inline in the same unit, so the compiler sees one
 * straight function per ISA, as if it had been written out by hand.
 */
#ifndef RS_ATTENTION_TILES_H
#define RS_ATTENTION_TILES_H

#include "kernels_isa.h"

#include <math.h>
#include <string.h>

typedef struct attn_args {
    int L, start, dh, ld;
    float scale, keep_scale;
    int drop;
    const float *Q, *K, *V, *O, *dO, *lse;
    float *Oout, *lse_out, *dQ, *dK, *dV;
    attn_drop hash; /* the ISA's dropout state (drop_init) */
} attn_args;

static inline void init_args(attn_args *a, int L, int start, int dh, float scale, int ld,
                             float drop_p, uint64_t seed, const float *Q, const float *K,
                             const float *V)
{
    memset(a, 0, sizeof *a);
    a->Q = Q;
    a->K = K;
    a->V = V;
    a->L = L;
    a->start = start < 0 ? 0 : start;
    a->dh = dh;
    a->ld = ld;
    a->scale = scale;
    a->drop = drop_p > 0.0f;
    a->keep_scale = a->drop ? 1.0f / (1.0f - drop_p) : 1.0f;
    if (a->drop) {
        /* kept iff hash bits >= T; T = 2^24 keeps nothing (p >= 1) */
        long long T = rs_dropout_threshold(drop_p);
        drop_init(&a->hash, L, seed, T > (1LL << 24) ? 1LL << 24 : T);
    }
}

#ifndef ATTN_CUSTOM_PRODUCTS
/* The fp32 products (attention_avx2.c, attention_avx512.c): Q and dO tiles
 * transposed once (Q pre-multiplied by the scale), scores by broadcasting
 * K / V rows against them, P·V into the transposed output accumulator. */
#define ATTN_SCORES_SCALED 1
typedef struct fwd_ws {
    _Alignas(64) float qt[RS_ATTN_DH_MAX * W]; /* scale * Q^T of the tile */
} fwd_ws;
typedef struct bwd_ws {
    _Alignas(64) float qt[RS_ATTN_DH_MAX * W]; /* Q^T of the tile */
    _Alignas(64) float gt[RS_ATTN_DH_MAX * W]; /* dO^T */
} bwd_ws;

static inline void fwd_prepare(fwd_ws *w, const attn_args *a, int i0, int nr)
{
    load_transposed(a->Q + (size_t)i0 * a->ld, a->ld, nr, a->dh, a->scale, w->qt);
}

static inline void fwd_scores(fwd_ws *w, const attn_args *a, int j0, int nk, float *st)
{
    scores(w->qt, a->K + (size_t)j0 * a->ld, a->ld, a->dh, nk, st);
}

static inline void fwd_accum(fwd_ws *w, const attn_args *a, const float *p, int j0, int nk,
                             vf alpha, float *ot)
{
    (void)w;
    accum_transposed(p, a->V + (size_t)j0 * a->ld, a->ld, a->dh, nk, alpha, ot);
}

static inline void bwd_prepare(bwd_ws *w, const attn_args *a, int i0, int nr)
{
    load_transposed(a->Q + (size_t)i0 * a->ld, a->ld, nr, a->dh, 1.0f, w->qt);
    load_transposed(a->dO + (size_t)i0 * a->ld, a->ld, nr, a->dh, 1.0f, w->gt);
}

static inline void bwd_scores(bwd_ws *w, const attn_args *a, int j0, int nk, float *pt,
                              float *dt)
{
    scores(w->qt, a->K + (size_t)j0 * a->ld, a->ld, a->dh, nk, pt);
    scores(w->gt, a->V + (size_t)j0 * a->ld, a->ld, a->dh, nk, dt);
}

static inline vf bwd_dO_part(const float *p, int n) { return v_load_part(p, n); }
#endif

static void fwd_tile(const attn_args *a, int i0, int nr)
{
    fwd_ws ws;
    _Alignas(64) float ot[RS_ATTN_DH_MAX * W];
    _Alignas(64) float st[BC * W];
    const int ld = a->ld, dh = a->dh;
    const vf ninf = v_set1(-INFINITY), ks = v_set1(a->keep_scale);
    const vf sc = v_set1(a->scale);
    (void)sc;

    fwd_prepare(&ws, a, i0, nr);
    memset(ot, 0, sizeof(float) * (size_t)dh * W);
    vf m = ninf, l = v_zero();
    const int jend = i0 + nr; /* keys up to the tile's last row */
    for (int j0 = a->start; j0 < jend; j0 += BC) {
        const int nk = jend - j0 < BC ? jend - j0 : BC;
        fwd_scores(&ws, a, j0, nk, st);
        vf bm = ninf;
        for (int j = 0; j < nk; j++) {
            vf s = v_load(st + j * W);
            if (!ATTN_SCORES_SCALED) s = v_mul(s, sc);
            int off = j0 + j - i0;
            if (off > 0) s = v_select(causal_mask(off), s, ninf);
            if (!ATTN_SCORES_SCALED || off > 0) v_store(st + j * W, s);
            bm = v_max(bm, s);
        }
        const vf mn = v_max(m, bm);
        const vf alpha = v_exp(v_sub(m, mn));
        vf sum = v_zero();
        for (int j = 0; j < nk; j++) {
            vf p = v_exp(v_sub(v_load(st + j * W), mn));
            sum = v_add(sum, p);
            if (a->drop) p = v_maskz_mul(keep_mask(&a->hash, a->L, i0, j0 + j), p, ks);
            v_store(st + j * W, p);
        }
        l = v_fmadd(l, alpha, sum);
        m = mn;
        fwd_accum(&ws, a, st, j0, nk, alpha, ot);
    }
    _Alignas(64) float mv[W], lv[W], inv[W];
    v_store(mv, m);
    v_store(lv, l);
    v_store(inv, v_div(v_set1(1.0f), l));
    for (int r = 0; r < nr; r++) a->lse_out[i0 + r] = mv[r] + logf(lv[r]);
    store_transposed(ot, inv, nr, dh, a->Oout + (size_t)i0 * ld, ld);
}

static void bwd_tile(const attn_args *a, int i0, int nr)
{
    bwd_ws ws;
    _Alignas(64) float dqt[RS_ATTN_DH_MAX * W]; /* dQ^T accumulator */
    _Alignas(64) float pt[BC * W];              /* scores, then dropped weights */
    _Alignas(64) float dt[BC * W];              /* dO·V, then dS */
    _Alignas(64) float dv[W];
    const int ld = a->ld, dh = a->dh;
    const vmask rows = row_mask(nr);
    const vf ks = v_set1(a->keep_scale), sc = v_set1(a->scale);

    bwd_prepare(&ws, a, i0, nr);
    memset(dqt, 0, sizeof(float) * (size_t)dh * W);
    /* D_i = dO_i · O_i = sum_j A_ij dA_ij */
    memset(dv, 0, sizeof dv);
    for (int r = 0; r < nr; r++) {
        const float *g = a->dO + (size_t)(i0 + r) * ld, *o = a->O + (size_t)(i0 + r) * ld;
        vf acc = v_zero();
        for (int c = 0; c < dh; c += W)
            acc = v_fmadd(bwd_dO_part(g + c, dh - c), v_load_part(o + c, dh - c), acc);
        dv[r] = v_hsum(acc);
    }
    const vf D = v_load(dv);
    const vf lse = v_load_part(a->lse + i0, nr);

    const int jend = i0 + nr;
    for (int j0 = a->start; j0 < jend; j0 += BC) {
        const int nk = jend - j0 < BC ? jend - j0 : BC;
        bwd_scores(&ws, a, j0, nk, pt, dt);
        for (int j = 0; j < nk; j++) {
            vmask valid = m_and(rows, causal_mask(j0 + j - i0));
            vf s = v_load(pt + j * W), dp = v_load(dt + j * W);
            vf p = v_maskz(valid, v_exp(v_fmsub(s, sc, lse)));
            vf pd = p;
            if (a->drop) {
                vmask keep = keep_mask(&a->hash, a->L, i0, j0 + j);
                pd = v_maskz_mul(keep, p, ks);
                dp = v_maskz_mul(keep, dp, ks);
            }
            vf ds = v_mul(v_mul(p, v_sub(dp, D)), sc);
            v_store(pt + j * W, pd);
            v_store(dt + j * W, ds);
        }
        accum_transposed(dt, a->K + (size_t)j0 * ld, ld, dh, nk, v_set1(1.0f), dqt);
        accum_rows(dt, a->Q + (size_t)i0 * ld, nr, dh, nk, j0 - i0, a->dK + (size_t)j0 * ld, ld);
        accum_rows(pt, a->dO + (size_t)i0 * ld, nr, dh, nk, j0 - i0, a->dV + (size_t)j0 * ld, ld);
    }
    static const float ones[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    _Static_assert(W <= 16, "ones[] covers the tile rows");
    store_transposed(dqt, ones, nr, dh, a->dQ + (size_t)i0 * ld, ld);
}

/* Row tiles of W rows from `start`; the partial tile (if any) goes first,
 * where it has the fewest keys to visit. */
static inline void for_each_tile(const attn_args *a, void (*tile)(const attn_args *, int, int))
{
    int rows = a->L - a->start;
    if (rows <= 0) return;
    int first = rows % W ? rows % W : W;
    tile(a, a->start, first);
    for (int i0 = a->start + first; i0 < a->L; i0 += W) tile(a, i0, W);
}

/* The public entry points: the reference for head sizes beyond the tile
 * buffers, zeroed padding rows, then the tiles. */
static inline void attn_fwd_run(int L, int start, int dh, float scale, const float *Q,
                                const float *K, const float *V, int ld, float drop_p,
                                uint64_t seed, float *O, float *lse)
{
    if (dh > RS_ATTN_DH_MAX) {
        rs_attn_fwd_ref(L, start, dh, scale, Q, K, V, ld, drop_p, seed, O, lse);
        return;
    }
    attn_args a;
    init_args(&a, L, start, dh, scale, ld, drop_p, seed, Q, K, V);
    a.Oout = O;
    a.lse_out = lse;
    for (int i = 0; i < a.start && i < L; i++) {
        memset(O + (size_t)i * ld, 0, sizeof(float) * (size_t)dh);
        lse[i] = 0.0f;
    }
    for_each_tile(&a, fwd_tile);
}

static inline void attn_bwd_run(int L, int start, int dh, float scale, const float *Q,
                                const float *K, const float *V, const float *O,
                                const float *dO, const float *lse, int ld, float drop_p,
                                uint64_t seed, float *dQ, float *dK, float *dV)
{
    if (dh > RS_ATTN_DH_MAX) {
        rs_attn_bwd_ref(L, start, dh, scale, Q, K, V, O, dO, lse, ld, drop_p, seed, dQ, dK, dV);
        return;
    }
    attn_args a;
    init_args(&a, L, start, dh, scale, ld, drop_p, seed, Q, K, V);
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

#endif
