/*
 * SASRec (docs/MODELS.md §2) with a hand-written backward pass.
 *
 * Padding never costs compute: forward packs the non-pad positions of the
 * batch into contiguous rows (row b's items are rows base[b] .. base[b] +
 * len[b] - 1), every layer runs on the packed rows only, attention runs per
 * packed segment, and only the final layer norm writes back into the padded
 * [B x L x d] output (pad rows zero). Multiplying by the non-pad mask after
 * each block is then implicit, and padding cannot influence any result.
 *
 * Parameters are stored per tensor kind, stacked over blocks (sasrec_layout
 * below and docs/MODELS_IMPL.md); linear weights use the [out x in] layout,
 * and each block's Q, K, V projections are one [3d x d] matrix so the
 * post/pre placements project in a single GEMM. The tensor table, the
 * workspace, the batch checks and the edges are the shared scaffolding
 * (scaffold.h); every linear map is an rs_proj.
 */
#include "models/extend.h"
#include "models/scaffold.h"

#include "nn/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-8f

enum {
    T_ITEM = RS_T_ITEM, T_POS = RS_T_POS, T_LN1_G = RS_T_MODEL, T_LN1_B, T_W_IN, T_B_IN, T_W_OUT,
    T_B_OUT, T_LN2_G, T_LN2_B, T_W1, T_B1, T_W2, T_B2, T_LNF_G, T_LNF_B
};

static void sasrec_layout(const rs_model_config *c, rs_tensor_table *t)
{
    size_t d = (size_t)c->dim, F = (size_t)c->ffn_dim;
    rs_tensors_begin(t, c);
    rs_tensors_add(t, "attn_ln.gamma", d, 1);
    rs_tensors_add(t, "attn_ln.beta", d, 1);
    rs_tensors_add(t, "attn.w_in", 3 * d * d, 1);
    rs_tensors_add(t, "attn.b_in", 3 * d, 1);
    rs_tensors_add(t, "attn.w_out", d * d, 1);
    rs_tensors_add(t, "attn.b_out", d, 1);
    rs_tensors_add(t, "ffn_ln.gamma", d, 1);
    rs_tensors_add(t, "ffn_ln.beta", d, 1);
    rs_tensors_add(t, "ffn.w1", F * d, 1);
    rs_tensors_add(t, "ffn.b1", F, 1);
    rs_tensors_add(t, "ffn.w2", d * F, 1);
    rs_tensors_add(t, "ffn.b2", d, 1);
    rs_tensors_add(t, "final_ln.gamma", d, 0);
    rs_tensors_add(t, "final_ln.beta", d, 0);
}

/* The projections of one block (the same tensors in every block). With the
 * original placement the queries come from LN_a(X) and the keys and values
 * from X, so W_in is used as two projections (q, kv); else as one (qkv). */
typedef struct sasrec_projs {
    rs_proj qkv, q, kv, out, ffn1, ffn2;
} sasrec_projs;

static sasrec_projs sasrec_projections(const rs_model_config *c)
{
    int d = c->dim, F = c->ffn_dim;
    sasrec_projs p;
    p.qkv = rs_proj_make("attn.qkv", T_W_IN, T_B_IN, 0, d, 3 * d, 0);
    p.q = rs_proj_make("attn.q", T_W_IN, T_B_IN, 0, d, d, 0);
    p.kv = rs_proj_make("attn.kv", T_W_IN, T_B_IN, d, d, 2 * d, 0);
    p.out = rs_proj_make("attn.out", T_W_OUT, T_B_OUT, 0, d, d, 0);
    p.ffn1 = rs_proj_make("ffn.w1", T_W1, T_B1, 0, d, F, 1);
    p.ffn2 = rs_proj_make("ffn.w2", T_W2, T_B2, 0, F, d, 1);
    return p;
}

/* ------------------------------------------------------------------ init */

/* Xavier-normal: N(0, 2 / (fan_in + fan_out)) for a rows x cols matrix. */
static void xavier_normal(float *w, size_t rows, size_t cols, rs_rng *rng)
{
    double sd = sqrt(2.0 / (double)(rows + cols));
    for (size_t i = 0; i < rows * cols; i++) w[i] = (float)(sd * rs_rng_normal(rng));
}

static void sasrec_init(const rs_model_config *c, float *P, rs_rng *rng)
{
    size_t d = (size_t)c->dim, F = (size_t)c->ffn_dim;
    rs_tensor_table t;
    sasrec_layout(c, &t);
    memset(P, 0, sizeof(float) * t.off[t.n]);
    xavier_normal(P + t.off[T_ITEM], (size_t)c->n_items + 1, d, rng);
    xavier_normal(P + t.off[T_POS], (size_t)c->max_len + 1, d, rng);
    memset(P + t.off[T_ITEM], 0, sizeof(float) * d); /* padding rows */
    memset(P + t.off[T_POS], 0, sizeof(float) * d);
    for (int k = 0; k < c->blocks; k++) {
        float *w_in = P + rs_tensor_at(&t, T_W_IN, k);
        for (int m = 0; m < 3; m++) xavier_normal(w_in + (size_t)m * d * d, d, d, rng);
        xavier_normal(P + rs_tensor_at(&t, T_W_OUT, k), d, d, rng);
        xavier_normal(P + rs_tensor_at(&t, T_W1, k), F, d, rng);
        xavier_normal(P + rs_tensor_at(&t, T_W2, k), d, F, rng);
        for (size_t i = 0; i < d; i++) {
            P[rs_tensor_at(&t, T_LN1_G, k) + i] = 1.0f;
            P[rs_tensor_at(&t, T_LN2_G, k) + i] = 1.0f;
        }
    }
    for (size_t i = 0; i < d; i++) P[t.off[T_LNF_G] + i] = 1.0f;
}

/* ------------------------------------------------------------- workspace */

/* Per-block activations kept for the backward. Slot meaning per placement:
 *   original: xn = LN_a(X) (=Q), a = MHA out, xn2 = LN_f(Q + a)
 *   post:     xn = LN_a(X + a),  a = MHA out, xn2 = FFN output (dropped)
 *   pre:      xn = LN_a(X),      a = MHA out, xn2 = LN_f(X + a)
 * qkvo holds Q | K | V | O with row stride 4d; h the FFN hidden after ReLU
 * and dropout (all its backward needs); mask the FFN output's dropout. */
typedef struct sblock {
    float *xn, *qkvo, *a, *xn2, *h, *lse, *m1, *r1, *m2, *r2;
    uint8_t *mask;
} sblock;

struct rs_workspace {
    rs_ws_common com;         /* packed rows, block inputs x[], per-block sblocks */
    float *mf, *rf;           /* final layer norm statistics */
    uint8_t *emb_mask;        /* embedding dropout decisions */
    float *t1, *t2, *th, *g0, *g1, *gq, *partial; /* scratch */
};

static sblock *sblk(rs_workspace *ws, int k) { return (sblock *)ws->com.blocks + k; }

static void sasrec_plan(rs_workspace *ws, rs_plan *p)
{
    const rs_model_config *c = &ws->com.cfg;
    size_t R = (size_t)ws->com.R, d = (size_t)c->dim, F = (size_t)c->ffn_dim;
    size_t H = (size_t)c->heads;
    for (int k = 0; k < c->blocks; k++) {
        sblock *s = sblk(ws, k);
        const rs_plan_item kept[] = {{&s->xn, d}, {&s->qkvo, 4 * d}, {&s->a, d}, {&s->xn2, d},
                                     {&s->h, F}, {&s->lse, H}, {&s->m1, 1}, {&s->r1, 1},
                                     {&s->m2, 1}, {&s->r2, 1}};
        rs_plan_rows(p, R, kept, (int)(sizeof kept / sizeof kept[0]));
        s->mask = rs_plan_bytes(p, R * d);
    }
    ws->emb_mask = rs_plan_bytes(p, R * d);
    const rs_plan_item scratch[] = {{&ws->mf, 1}, {&ws->rf, 1}, {&ws->t1, d}, {&ws->t2, d},
                                    {&ws->th, F}, {&ws->g0, d}, {&ws->g1, d}, {&ws->gq, 4 * d}};
    rs_plan_rows(p, R, scratch, (int)(sizeof scratch / sizeof scratch[0]));
    /* bias/gain partial sums, and the final layer norm's per-row gains */
    size_t width = 3 * d > F ? 3 * d : F;
    int chunks = rs_nn_chunks(ws->com.R);
    ws->partial = rs_plan_floats(p, (size_t)(chunks > ws->com.cap_B ? chunks : ws->com.cap_B) * width);
}

static int sasrec_same_shape(const rs_model_config *a, const rs_model_config *b)
{
    return a->ffn_dim == b->ffn_dim;
}

static const rs_ws_spec SASREC_WS = {
    .model = "sasrec",
    .ws_size = sizeof(struct rs_workspace),
    .block_size = sizeof(sblock),
    .plan = sasrec_plan,
    .same_shape = sasrec_same_shape,
};

static rs_workspace *sasrec_ws_new(const rs_model_config *c, int B)
{
    return rs_ws_new(c, B, &SASREC_WS);
}

/* -------------------------------------------------------------- streams */

/* Independent dropout streams per tensor, derived from the batch seed. */
enum { S_EMB = 0, S_ATTN = 1, S_FFN_H = 2, S_FFN_OUT = 3 };
static uint64_t stream(uint64_t seed, int block, int which)
{
    return rs_hash64(seed, which == S_EMB ? 0 : (uint64_t)(1 + 3 * block + which - 1));
}

static rs_attn_layout attn_layout(const rs_workspace *ws, int block)
{
    const rs_ws_common *w = &ws->com;
    const rs_model_config *c = &w->cfg;
    rs_attn_layout a;
    a.n_seq = w->B;
    a.heads = c->heads;
    a.dh = c->dim / c->heads;
    a.ld = 4 * c->dim;
    a.lse_stride = w->R;
    a.base = w->base;
    a.len = w->len;
    a.start = NULL; /* packed: no padding inside a segment */
    a.scale = 1.0f / sqrtf((float)a.dh);
    a.drop_p = w->p;
    a.seed = stream(w->seed, block, S_ATTN);
    a.seq0 = w->row0;
    return a;
}

/* ---------------------------------------------------------------- forward */

typedef struct sasrec_args {
    rs_tensor_table tab;
    rs_model_run r;
    rs_workspace *ws;
    sasrec_projs pj;
} sasrec_args;

/* out = Dropout(W2 · Dropout(ReLU(W1 in + b1)) + b2) (+ add1) (+ add2);
 * h keeps the dropped hidden layer, s->mask the output's dropout. */
static void ffn_fwd(const sasrec_args *m, int k, const sblock *s, const float *in, float *out,
                    const float *add1, const float *add2)
{
    const rs_model_run *r = &m->r;
    const rs_ws_common *w = &m->ws->com;
    int N = w->n, d = r->cfg->dim, F = r->cfg->ffn_dim;
    rs_proj_fwd(r, &m->pj.ffn1, k, N, in, d, s->h, F);
    rs_bias_relu_dropout_fwd(r->ctx, N, F, s->h, rs_proj_bias(r, &m->pj.ffn1, k), w->p,
                             stream(w->seed, k, S_FFN_H), w->src);
    rs_proj_fwd(r, &m->pj.ffn2, k, N, s->h, F, out, d);
    rs_bias_dropout_add_fwd(r->ctx, N, d, out, rs_proj_bias(r, &m->pj.ffn2, k), w->p,
                            stream(w->seed, k, S_FFN_OUT), w->src, s->mask, add1, add2);
}

static void block_fwd(const sasrec_args *m, int k, const sblock *s, const float *X, float *Y)
{
    const rs_model_run *r = &m->r;
    recsys_ctx *ctx = r->ctx;
    const rs_model_config *c = r->cfg;
    int N = m->ws->com.n, d = c->dim, ld4 = 4 * d;
    const float *g1 = rs_param(r, T_LN1_G, k), *be1 = rs_param(r, T_LN1_B, k);
    const float *g2 = rs_param(r, T_LN2_G, k), *be2 = rs_param(r, T_LN2_B, k);

    /* Q, K, V projections into qkvo[:, 0:3d]. */
    if (c->norm == RS_NORM_ORIGINAL) {
        /* queries from LN_a(X), keys and values from X itself */
        rs_layernorm_fwd(ctx, N, d, X, NULL, g1, be1, LN_EPS, s->xn, s->m1, s->r1);
        rs_proj_fwd(r, &m->pj.q, k, N, s->xn, d, s->qkvo, ld4);
        rs_proj_fwd(r, &m->pj.kv, k, N, X, d, s->qkvo + d, ld4);
    } else {
        const float *in = X;
        if (c->norm == RS_NORM_PRE) {
            rs_layernorm_fwd(ctx, N, d, X, NULL, g1, be1, LN_EPS, s->xn, s->m1, s->r1);
            in = s->xn;
        }
        rs_proj_fwd(r, &m->pj.qkv, k, N, in, d, s->qkvo, ld4);
    }
    rs_attn_layout al = attn_layout(m->ws, k);
    rs_attention_fwd(ctx, &al, s->qkvo, s->qkvo + d, s->qkvo + 2 * d, s->qkvo + 3 * d, s->lse);
    rs_proj_fwd(r, &m->pj.out, k, N, s->qkvo + 3 * d, ld4, s->a, d);

    switch (c->norm) {
    case RS_NORM_ORIGINAL: /* N = LN_f(Q + A); Y = N + FFN(N) */
        rs_layernorm_fwd(ctx, N, d, s->xn, s->a, g2, be2, LN_EPS, s->xn2, s->m2, s->r2);
        ffn_fwd(m, k, s, s->xn2, Y, s->xn2, NULL);
        break;
    case RS_NORM_POST: /* E1 = LN_a(X + A); Y = LN_f(E1 + FFN(E1)) */
        rs_layernorm_fwd(ctx, N, d, X, s->a, g1, be1, LN_EPS, s->xn, s->m1, s->r1);
        ffn_fwd(m, k, s, s->xn, s->xn2, NULL, NULL);
        rs_layernorm_fwd(ctx, N, d, s->xn, s->xn2, g2, be2, LN_EPS, Y, s->m2, s->r2);
        break;
    case RS_NORM_PRE: /* X1 = X + A; Y = X1 + FFN(LN_f(X1)) */
        rs_layernorm_fwd(ctx, N, d, X, s->a, g2, be2, LN_EPS, s->xn2, s->m2, s->r2);
        ffn_fwd(m, k, s, s->xn2, Y, X, s->a);
        break;
    }
}

/* The final layer norm on the padded edge: row segment -> padded output. */
typedef struct final_ln {
    const rs_kernels *kern;
    const rs_workspace *ws;
    const float *X, *gamma, *beta;
    float *dX;
} final_ln;

static void final_fwd_rows(void *arg, int row, size_t p0, int n, float *rows)
{
    (void)row;
    const final_ln *j = arg;
    const rs_workspace *ws = j->ws;
    int d = ws->com.cfg.dim;
    if (n > 0)
        j->kern->layernorm_fwd(n, d, j->X + p0 * d, NULL, j->gamma, j->beta, LN_EPS, rows,
                               ws->mf + p0, ws->rf + p0);
}

/* Gain and bias gradients go to per-row partials (summed in row order). */
static void final_bwd_rows(void *arg, int row, size_t p0, int n, const float *rows)
{
    const final_ln *j = arg;
    const rs_workspace *ws = j->ws;
    int d = ws->com.cfg.dim;
    float *pg = ws->partial + (size_t)row * 2 * d;
    memset(pg, 0, sizeof(float) * 2 * (size_t)d);
    if (n > 0)
        j->kern->layernorm_bwd(n, d, j->X + p0 * d, NULL, j->gamma, ws->mf + p0, ws->rf + p0,
                               rows, j->dX + p0 * d, pg, pg + d);
}

/* Fills a (the tensor table included) for a pass over ws. */
static void args_init(sasrec_args *a, recsys_ctx *ctx, const rs_model_config *c, const float *P,
                      float *G, rs_workspace *ws)
{
    sasrec_layout(c, &a->tab);
    rs_model_run r = {ctx, c, &a->tab, P, G, ws->partial, NULL, NULL, 0, 0};
    a->r = r;
    a->ws = ws;
    a->pj = sasrec_projections(c);
}

static recsys_status sasrec_forward(recsys_ctx *ctx, const rs_model_config *c, const float *P,
                                    rs_workspace *ws, const rs_batch *b, float *out)
{
    recsys_status st = rs_model_begin_fwd(ctx, &SASREC_WS, c, P, ws, b, out);
    if (st) return st;
    sasrec_args m;
    args_init(&m, ctx, c, P, NULL, ws);
    rs_model_run_hook(&m.r, b, &ws->com);
    rs_ws_common *w = &ws->com;
    float *X0 = w->x[0];
    int d = c->dim, N = w->n;
    rs_embed_edge_fwd(&m.r, w, X0);
    rs_dropout_fwd_mask(ctx, N, d, X0, w->p, stream(w->seed, 0, S_EMB), w->src, X0,
                        ws->emb_mask);
    /* Inference keeps nothing for a backward: every block reuses block 0's
     * buffers and the hidden state ping-pongs between x[0] and x[1]. */
    int keep = b->train != 0;
    int last_only = !keep && b->last_scratch; /* serving: see last_block.c */
    for (int k = 0; k < c->blocks - last_only; k++) {
        const sblock *s = sblk(ws, keep ? k : 0);
        block_fwd(&m, k, s, w->x[keep ? k : (k & 1)], w->x[keep ? k + 1 : ((k + 1) & 1)]);
    }
    if (last_only) {
        rs_last_sasrec_projs lp = {&m.pj.q, &m.pj.kv, &m.pj.out, &m.pj.ffn1, &m.pj.ffn2};
        rs_sasrec_last_fwd(&m.r, &lp, w->x[(c->blocks - 1) & 1], N, b->B, w->base, w->len,
                           b->last_scratch, out);
        return RECSYS_OK;
    }
    int last = keep ? c->blocks : (c->blocks & 1);
    final_ln fl = {&ctx->kern, ws, w->x[last], rs_param(&m.r, T_LNF_G, 0),
                   rs_param(&m.r, T_LNF_B, 0), NULL};
    rs_padded_edge_fwd(ctx, w, out, final_fwd_rows, &fl);
    w->kept = keep;
    return RECSYS_OK;
}

/* --------------------------------------------------------------- backward */

/* Backward of ffn_fwd given dGd = ∂/∂(dropped output); dIn = (or +=)
 * ∂/∂in. dIn may alias dGd: it is only written after dGd's last use. Uses
 * t1 and th. */
static void ffn_bwd(const sasrec_args *m, int k, const sblock *s, const float *in,
                    const float *dGd, float *dIn, int accumulate)
{
    const rs_model_run *r = &m->r;
    rs_workspace *ws = m->ws;
    int N = ws->com.n, d = r->cfg->dim, F = r->cfg->ffn_dim;
    float p = ws->com.p;
    const float *dG = dGd;
    if (p > 0.0f) {
        rs_dropout_bwd_mask(r->ctx, N, d, dGd, p, s->mask, ws->t1);
        dG = ws->t1;
    }
    rs_proj_bwd(r, &m->pj.ffn2, k, N, s->h, F, dG, d, ws->th, F, 0);
    rs_relu_dropout_bwd(r->ctx, N, F, s->h, p, ws->th);
    rs_proj_bwd(r, &m->pj.ffn1, k, N, in, d, ws->th, F, dIn, d, accumulate);
}

/* dY: gradient of the block output (may be overwritten); dX: written. */
static void block_bwd(const sasrec_args *m, int k, const float *X, float *dY, float *dX)
{
    const rs_model_run *r = &m->r;
    recsys_ctx *ctx = r->ctx;
    const rs_model_config *c = r->cfg;
    rs_workspace *ws = m->ws;
    const sblock *s = sblk(ws, k);
    int N = ws->com.n, d = c->dim, ld4 = 4 * d;
    float *t1 = ws->t1, *t2 = ws->t2, *gq = ws->gq, *part = ws->partial;
    const float *g1 = rs_param(r, T_LN1_G, k), *g2 = rs_param(r, T_LN2_G, k);
    float *dg1 = rs_grad(r, T_LN1_G, k), *dbe1 = rs_grad(r, T_LN1_B, k);
    float *dg2 = rs_grad(r, T_LN2_G, k), *dbe2 = rs_grad(r, T_LN2_B, k);
    rs_attn_layout al = attn_layout(ws, k);
    const float *O = s->qkvo + 3 * d;

    /* Each case ends with dA (the gradient of the attention output
     * projection) in `da`, then the shared attention backward runs. */
    float *da = NULL;
    switch (c->norm) {
    case RS_NORM_ORIGINAL:
        ffn_bwd(m, k, s, s->xn2, dY, dY, 1);                    /* dY = dN */
        rs_layernorm_bwd(ctx, N, d, s->xn, s->a, g2, s->m2, s->r2, dY, t2, dg2, dbe2,
                         part);                                 /* t2 = dE1 */
        da = t2;
        break;
    case RS_NORM_POST:
        rs_layernorm_bwd(ctx, N, d, s->xn, s->xn2, g2, s->m2, s->r2, dY, t2, dg2, dbe2,
                         part);                                 /* t2 = dZ */
        ffn_bwd(m, k, s, s->xn, t2, t2, 1);                     /* t2 = dE1 */
        rs_layernorm_bwd(ctx, N, d, X, s->a, g1, s->m1, s->r1, t2, dX, dg1, dbe1,
                         part);                                 /* dX = dS */
        da = dX;
        break;
    case RS_NORM_PRE:
        ffn_bwd(m, k, s, s->xn2, dY, t2, 0);                    /* t2 = dXn2 */
        rs_layernorm_bwd(ctx, N, d, X, s->a, g2, s->m2, s->r2, t2, t1, dg2, dbe2, part);
        rs_nn_add(ctx, N, d, t1, dY);                           /* dY = dX1 */
        da = dY;
        break;
    }
    rs_proj_bwd(r, &m->pj.out, k, N, O, ld4, da, d, gq + 3 * d, ld4, 0);
    rs_attention_bwd(ctx, &al, s->qkvo, s->qkvo + d, s->qkvo + 2 * d, O, gq + 3 * d, s->lse, gq,
                     gq + d, gq + 2 * d);
    switch (c->norm) {
    case RS_NORM_ORIGINAL:
        /* dQ through W_q into dE1 (the residual path), then LN_a; dK, dV into X. */
        rs_proj_bwd(r, &m->pj.q, k, N, s->xn, d, gq, ld4, t2, d, 1);
        rs_layernorm_bwd(ctx, N, d, X, NULL, g1, s->m1, s->r1, t2, dX, dg1, dbe1, part);
        rs_proj_bwd(r, &m->pj.kv, k, N, X, d, gq + d, ld4, dX, d, 1);
        break;
    case RS_NORM_POST:
        rs_proj_bwd(r, &m->pj.qkv, k, N, X, d, gq, ld4, dX, d, 1);
        break;
    case RS_NORM_PRE:
        rs_proj_bwd(r, &m->pj.qkv, k, N, s->xn, d, gq, ld4, t2, d, 0);
        rs_layernorm_bwd(ctx, N, d, X, NULL, g1, s->m1, s->r1, t2, dX, dg1, dbe1, part);
        rs_nn_add(ctx, N, d, dY, dX);
        break;
    }
}

static recsys_status sasrec_backward(recsys_ctx *ctx, const rs_model_config *c, const float *P,
                                     rs_workspace *ws, const rs_batch *b, const float *d_out,
                                     float *G)
{
    recsys_status st = rs_model_begin_bwd(ctx, &SASREC_WS, c, P, ws, b, d_out, G);
    if (st) return st;
    sasrec_args m;
    args_init(&m, ctx, c, P, G, ws);
    rs_model_run_hook(&m.r, b, &ws->com);
    float *dY = ws->g0, *dX = ws->g1;
    rs_ws_common *w = &ws->com;
    int d = c->dim, N = w->n;

    final_ln fl = {&ctx->kern, ws, w->x[c->blocks], rs_param(&m.r, T_LNF_G, 0), NULL, dY};
    rs_padded_edge_bwd(ctx, w, d_out, final_bwd_rows, &fl);
    float *dg = rs_grad(&m.r, T_LNF_G, 0), *dbe = rs_grad(&m.r, T_LNF_B, 0);
    for (int r = 0; r < w->B; r++) { /* rows in order: deterministic */
        const float *pg = ws->partial + (size_t)r * 2 * d;
        for (int i = 0; i < d; i++) {
            dg[i] += pg[i];
            dbe[i] += pg[d + i];
        }
    }
    for (int k = c->blocks - 1; k >= 0; k--) {
        block_bwd(&m, k, w->x[k], dY, dX);
        float *tmp = dY;
        dY = dX;
        dX = tmp;
    }
    /* dY = ∂/∂(dropped embedding); undo the dropout, then scatter. */
    rs_dropout_bwd_mask(ctx, N, d, dY, w->p, ws->emb_mask, dY);
    rs_embed_edge_bwd(&m.r, w, dY);
    return RECSYS_OK;
}

static void sasrec_extend(recsys_ctx *ctx, const rs_model_config *c, const float *P, float *kv,
                          const int32_t *items, const int64_t *times, int r0, int n,
                          float *scratch, float *out)
{
    (void)times;
    rs_tensor_table tab;
    sasrec_layout(c, &tab);
    rs_model_run r = {ctx, c, &tab, P, NULL, NULL, NULL, NULL, 0, 1};
    sasrec_projs pj = sasrec_projections(c);
    rs_last_sasrec_projs lp = {&pj.q, &pj.kv, &pj.out, &pj.ffn1, &pj.ffn2};
    rs_sasrec_extend(&r, &lp, kv, items, r0, n, scratch, out);
}

const rs_model_ops rs_sasrec_ops = {
    .name = "sasrec",
    .layout = sasrec_layout,
    .n_params = rs_tensors_total,
    .init = sasrec_init,
    .ws_new = sasrec_ws_new,
    .ws_free = rs_ws_free,
    .forward = sasrec_forward,
    .backward = sasrec_backward,
    .extend = sasrec_extend,
    .tensors = rs_tensors_list,
};
