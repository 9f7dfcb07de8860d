/*
 * SASRec (MODELS.md §2) with a hand-written backward pass.
 *
 * Padding never costs compute: forward packs the non-pad positions of the
 * batch into contiguous rows (row b's items are rows base[b] .. base[b] +
 * len[b] - 1), every layer runs on the packed rows only, attention runs per
 * packed segment, and only the final layer norm writes back into the padded
 * [B x L x d] output (pad rows zero). Multiplying by the non-pad mask after
 * each block is then implicit, and padding cannot influence any result.
 *
 * Parameters are stored per tensor kind, stacked over blocks (see TENSOR
 * NAMES below and docs/MODELS_IMPL.md); linear weights use the [out x in]
 * layout, and each block's Q, K, V projections are one [3d x d] matrix so
 * the post/pre placements project in a single GEMM.
 */
#include "models/model.h"

#include "nn/nn.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-8f

enum {
    T_ITEM, T_POS, T_LN1_G, T_LN1_B, T_W_IN, T_B_IN, T_W_OUT, T_B_OUT,
    T_LN2_G, T_LN2_B, T_W1, T_B1, T_W2, T_B2, T_LNF_G, T_LNF_B, T_COUNT
};

static const char *const TENSOR_NAMES[T_COUNT] = {
    "item_emb",      "pos_emb",      "attn_ln.gamma", "attn_ln.beta",
    "attn.w_in",     "attn.b_in",    "attn.w_out",    "attn.b_out",
    "ffn_ln.gamma",  "ffn_ln.beta",  "ffn.w1",        "ffn.b1",
    "ffn.w2",        "ffn.b2",       "final_ln.gamma", "final_ln.beta",
};

/* Floats of one block's slice of tensor t (whole tensor for non-block ones). */
static size_t slice_size(const rs_model_config *c, int t)
{
    size_t d = (size_t)c->dim, F = (size_t)c->ffn_dim;
    switch (t) {
    case T_ITEM: return ((size_t)c->n_items + 1) * d;
    case T_POS: return ((size_t)c->max_len + 1) * d;
    case T_W_IN: return 3 * d * d;
    case T_B_IN: return 3 * d;
    case T_W_OUT: return d * d;
    case T_W1: case T_W2: return F * d;
    case T_B1: return F;
    default: return d; /* LN gains/biases, b_out, b2, final LN */
    }
}

static int per_block(int t) { return t != T_ITEM && t != T_POS && t != T_LNF_G && t != T_LNF_B; }

static size_t tensor_size(const rs_model_config *c, int t)
{
    return slice_size(c, t) * (per_block(t) ? (size_t)c->blocks : 1);
}

/* off[t] for each tensor, off[T_COUNT] = total. */
static void tensor_offsets(const rs_model_config *c, size_t off[T_COUNT + 1])
{
    off[0] = 0;
    for (int t = 0; t < T_COUNT; t++) off[t + 1] = off[t] + tensor_size(c, t);
}

/* Block k's slice of tensor t inside a params (or grads) array. */
static inline float *slice(float *base, const size_t *off, const rs_model_config *c, int t, int k)
{
    return base + off[t] + (per_block(t) ? (size_t)k * slice_size(c, t) : 0);
}

static size_t sasrec_n_params(const rs_model_config *c)
{
    size_t off[T_COUNT + 1];
    tensor_offsets(c, off);
    return off[T_COUNT];
}

static size_t sasrec_item_table_offset(const rs_model_config *c)
{
    (void)c;
    return 0;
}

static int sasrec_tensors(const rs_model_config *c, const char **names, size_t *offsets,
                          size_t *sizes)
{
    size_t off[T_COUNT + 1];
    tensor_offsets(c, off);
    for (int t = 0; t < T_COUNT; t++) {
        if (names) names[t] = TENSOR_NAMES[t];
        if (offsets) offsets[t] = off[t];
        if (sizes) sizes[t] = off[t + 1] - off[t];
    }
    return T_COUNT;
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
    size_t off[T_COUNT + 1], d = (size_t)c->dim, F = (size_t)c->ffn_dim;
    tensor_offsets(c, off);
    memset(P, 0, sizeof(float) * off[T_COUNT]);
    xavier_normal(P + off[T_ITEM], (size_t)c->n_items + 1, d, rng);
    xavier_normal(P + off[T_POS], (size_t)c->max_len + 1, d, rng);
    memset(P + off[T_ITEM], 0, sizeof(float) * d); /* padding rows */
    memset(P + off[T_POS], 0, sizeof(float) * d);
    for (int k = 0; k < c->blocks; k++) {
        float *w_in = slice(P, off, c, T_W_IN, k);
        for (int m = 0; m < 3; m++) xavier_normal(w_in + (size_t)m * d * d, d, d, rng);
        xavier_normal(slice(P, off, c, T_W_OUT, k), d, d, rng);
        xavier_normal(slice(P, off, c, T_W1, k), F, d, rng);
        xavier_normal(slice(P, off, c, T_W2, k), d, F, rng);
        for (size_t i = 0; i < d; i++) {
            slice(P, off, c, T_LN1_G, k)[i] = 1.0f;
            slice(P, off, c, T_LN2_G, k)[i] = 1.0f;
        }
    }
    for (size_t i = 0; i < d; i++) P[off[T_LNF_G] + i] = 1.0f;
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
    rs_model_config cfg;
    int cap_B, R;
    /* the batch of the last forward */
    int B, N, kept;
    uint64_t seed;
    float p;
    int *base, *len;          /* cap_B: packed segment of each row */
    int32_t *src;             /* R: packed row -> b*L + t (dropout counters) */
    int32_t *emb_item, *emb_pos;
    float **x;                /* blocks+1 block inputs/outputs */
    sblock *blk;
    float *mf, *rf;           /* final layer norm statistics */
    uint8_t *emb_mask;        /* embedding dropout decisions */
    float *t1, *t2, *th, *g0, *g1, *gq, *partial; /* scratch */
    float *arena;
};

/* Lay the float buffers out in one arena (64-byte aligned pieces); with
 * base == NULL only count. One large arena keeps untouched pages (rows past
 * the packed count, per-block buffers in inference) out of the RSS. */
static size_t ws_plan(rs_workspace *ws, float *base)
{
    const rs_model_config *c = &ws->cfg;
    size_t R = (size_t)ws->R, d = (size_t)c->dim, F = (size_t)c->ffn_dim, off = 0;
#define TAKE(ptr, n)                                \
    do {                                            \
        if (base) (ptr) = base + off;               \
        off += ((size_t)(n) + 15) & ~(size_t)15;    \
    } while (0)
#define TAKE_BYTES(ptr, n)                                      \
    do {                                                        \
        if (base) (ptr) = (uint8_t *)(void *)(base + off);      \
        off += (((size_t)(n) + 3) / 4 + 15) & ~(size_t)15;      \
    } while (0)
    for (int k = 0; k <= c->blocks; k++) TAKE(ws->x[k], R * d);
    for (int k = 0; k < c->blocks; k++) {
        sblock *s = &ws->blk[k];
        TAKE(s->xn, R * d);
        TAKE(s->qkvo, R * 4 * d);
        TAKE(s->a, R * d);
        TAKE(s->xn2, R * d);
        TAKE(s->h, R * F);
        TAKE(s->lse, R * (size_t)c->heads);
        TAKE(s->m1, R);
        TAKE(s->r1, R);
        TAKE(s->m2, R);
        TAKE(s->r2, R);
        TAKE_BYTES(s->mask, R * d);
    }
    TAKE_BYTES(ws->emb_mask, R * d);
    TAKE(ws->mf, R);
    TAKE(ws->rf, R);
    TAKE(ws->t1, R * d);
    TAKE(ws->t2, R * d);
    TAKE(ws->th, R * F);
    TAKE(ws->g0, R * d);
    TAKE(ws->g1, R * d);
    TAKE(ws->gq, R * 4 * d);
    size_t width = 3 * d > F ? 3 * d : F;
    int chunks = rs_nn_chunks(ws->R);
    TAKE(ws->partial, (size_t)(chunks > ws->cap_B ? chunks : ws->cap_B) * width);
#undef TAKE
#undef TAKE_BYTES
    return off;
}

static void sasrec_ws_free(rs_workspace *ws)
{
    if (!ws) return;
    rs_free(ws->arena);
    free(ws->base);
    free(ws->len);
    free(ws->src);
    free(ws->emb_item);
    free(ws->emb_pos);
    free(ws->x);
    free(ws->blk);
    free(ws);
}

static rs_workspace *sasrec_ws_new(const rs_model_config *c, int B)
{
    if (!c || B < 1 || c->max_len < 1 || (size_t)B > (size_t)INT_MAX / (size_t)c->max_len)
        return NULL;
    rs_workspace *ws = calloc(1, sizeof *ws);
    if (!ws) return NULL;
    ws->cfg = *c;
    ws->cap_B = B;
    ws->R = B * c->max_len;
    ws->base = malloc(sizeof(int) * (size_t)B);
    ws->len = malloc(sizeof(int) * (size_t)B);
    ws->src = malloc(sizeof(int32_t) * (size_t)ws->R);
    ws->emb_item = malloc(sizeof(int32_t) * (size_t)ws->R);
    ws->emb_pos = malloc(sizeof(int32_t) * (size_t)ws->R);
    ws->x = calloc((size_t)c->blocks + 1, sizeof *ws->x);
    ws->blk = calloc((size_t)c->blocks, sizeof *ws->blk);
    if (!ws->base || !ws->len || !ws->src || !ws->emb_item || !ws->emb_pos || !ws->x || !ws->blk) {
        sasrec_ws_free(ws);
        return NULL;
    }
    size_t n = ws_plan(ws, NULL);
    ws->arena = n <= SIZE_MAX / sizeof(float) ? rs_malloc(n * sizeof(float)) : NULL;
    if (!ws->arena) {
        sasrec_ws_free(ws);
        return NULL;
    }
    ws_plan(ws, ws->arena);
    return ws;
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
    const rs_model_config *c = &ws->cfg;
    rs_attn_layout a;
    a.n_seq = ws->B;
    a.heads = c->heads;
    a.dh = c->dim / c->heads;
    a.ld = 4 * c->dim;
    a.lse_stride = ws->R;
    a.base = ws->base;
    a.len = ws->len;
    a.start = NULL; /* packed: no padding inside a segment */
    a.scale = 1.0f / sqrtf((float)a.dh);
    a.drop_p = ws->p;
    a.seed = stream(ws->seed, block, S_ATTN);
    return a;
}

/* ---------------------------------------------------------------- forward */

typedef struct model_args {
    recsys_ctx *ctx;
    const rs_model_config *c;
    rs_workspace *ws;
    const size_t *off;
} model_args;

/* out = Dropout(W2 · Dropout(ReLU(W1 in + b1)) + b2) (+ add1) (+ add2);
 * h keeps the dropped hidden layer, s->mask the output's dropout. */
static void ffn_fwd(const model_args *m, const float *P, int k, const sblock *s, const float *in,
                    float *out, const float *add1, const float *add2)
{
    recsys_ctx *ctx = m->ctx;
    rs_workspace *ws = m->ws;
    int N = ws->N, d = m->c->dim, F = m->c->ffn_dim;
    float *Pm = (float *)P;
    rs_linear_fwd(ctx, N, d, F, in, d, slice(Pm, m->off, m->c, T_W1, k), NULL, s->h, F);
    rs_bias_relu_dropout_fwd(ctx, N, F, s->h, slice(Pm, m->off, m->c, T_B1, k), ws->p,
                             stream(ws->seed, k, S_FFN_H), ws->src);
    rs_linear_fwd(ctx, N, F, d, s->h, F, slice(Pm, m->off, m->c, T_W2, k), NULL, out, d);
    rs_bias_dropout_add_fwd(ctx, N, d, out, slice(Pm, m->off, m->c, T_B2, k), ws->p,
                            stream(ws->seed, k, S_FFN_OUT), ws->src, s->mask, add1, add2);
}

static void block_fwd(const model_args *m, const float *P, int k, const sblock *s,
                      const float *X, float *Y)
{
    recsys_ctx *ctx = m->ctx;
    const rs_model_config *c = m->c;
    rs_workspace *ws = m->ws;
    int N = ws->N, d = c->dim, ld4 = 4 * d;
    float *Pm = (float *)P;
    const float *g1 = slice(Pm, m->off, c, T_LN1_G, k), *be1 = slice(Pm, m->off, c, T_LN1_B, k);
    const float *g2 = slice(Pm, m->off, c, T_LN2_G, k), *be2 = slice(Pm, m->off, c, T_LN2_B, k);
    const float *w_in = slice(Pm, m->off, c, T_W_IN, k), *b_in = slice(Pm, m->off, c, T_B_IN, k);

    /* Q, K, V projections into qkvo[:, 0:3d]. */
    if (c->norm == RS_NORM_ORIGINAL) {
        /* queries from LN_a(X), keys and values from X itself */
        rs_layernorm_fwd(ctx, N, d, X, NULL, g1, be1, LN_EPS, s->xn, s->m1, s->r1);
        rs_linear_fwd(ctx, N, d, d, s->xn, d, w_in, b_in, s->qkvo, ld4);
        rs_linear_fwd(ctx, N, d, 2 * d, X, d, w_in + (size_t)d * d, b_in + d, s->qkvo + d, ld4);
    } else {
        const float *in = X;
        if (c->norm == RS_NORM_PRE) {
            rs_layernorm_fwd(ctx, N, d, X, NULL, g1, be1, LN_EPS, s->xn, s->m1, s->r1);
            in = s->xn;
        }
        rs_linear_fwd(ctx, N, d, 3 * d, in, d, w_in, b_in, s->qkvo, ld4);
    }
    rs_attn_layout al = attn_layout(ws, k);
    rs_attention_fwd(ctx, &al, s->qkvo, s->qkvo + d, s->qkvo + 2 * d, s->qkvo + 3 * d, s->lse);
    rs_linear_fwd(ctx, N, d, d, s->qkvo + 3 * d, ld4, slice(Pm, m->off, c, T_W_OUT, k),
                  slice(Pm, m->off, c, T_B_OUT, k), s->a, d);

    switch (c->norm) {
    case RS_NORM_ORIGINAL: /* N = LN_f(Q + A); Y = N + FFN(N) */
        rs_layernorm_fwd(ctx, N, d, s->xn, s->a, g2, be2, LN_EPS, s->xn2, s->m2, s->r2);
        ffn_fwd(m, P, k, s, s->xn2, Y, s->xn2, NULL);
        break;
    case RS_NORM_POST: /* E1 = LN_a(X + A); Y = LN_f(E1 + FFN(E1)) */
        rs_layernorm_fwd(ctx, N, d, X, s->a, g1, be1, LN_EPS, s->xn, s->m1, s->r1);
        ffn_fwd(m, P, k, s, s->xn, s->xn2, NULL, NULL);
        rs_layernorm_fwd(ctx, N, d, s->xn, s->xn2, g2, be2, LN_EPS, Y, s->m2, s->r2);
        break;
    case RS_NORM_PRE: /* X1 = X + A; Y = X1 + FFN(LN_f(X1)) */
        rs_layernorm_fwd(ctx, N, d, X, s->a, g2, be2, LN_EPS, s->xn2, s->m2, s->r2);
        ffn_fwd(m, P, k, s, s->xn2, Y, X, s->a);
        break;
    }
}

/* Final layer norm per row segment, written straight into the padded output. */
typedef struct final_job {
    const rs_kernels *kern;
    const rs_workspace *ws;
    const rs_batch *b;
    const float *X, *gamma, *beta, *dout;
    float *out, *dX, *partial;
} final_job;

static void final_fwd_task(void *arg, int row, int thread)
{
    (void)thread;
    const final_job *j = arg;
    const rs_workspace *ws = j->ws;
    int d = ws->cfg.dim, L = ws->cfg.max_len, n = ws->len[row], st = L - n;
    float *o = j->out + (size_t)row * L * d;
    memset(o, 0, sizeof(float) * (size_t)st * d);
    if (n > 0)
        j->kern->layernorm_fwd(n, d, j->X + (size_t)ws->base[row] * d, NULL, j->gamma, j->beta,
                               LN_EPS, o + (size_t)st * d, ws->mf + ws->base[row],
                               ws->rf + ws->base[row]);
}

static void final_bwd_task(void *arg, int row, int thread)
{
    (void)thread;
    const final_job *j = arg;
    const rs_workspace *ws = j->ws;
    int d = ws->cfg.dim, L = ws->cfg.max_len, n = ws->len[row], st = L - n;
    float *pg = j->partial + (size_t)row * 2 * d;
    memset(pg, 0, sizeof(float) * 2 * (size_t)d);
    if (n > 0) {
        size_t p = (size_t)ws->base[row];
        j->kern->layernorm_bwd(n, d, j->X + p * d, NULL, j->gamma, ws->mf + p, ws->rf + p,
                               j->dout + ((size_t)row * L + st) * d, j->dX + p * d, pg, pg + d);
    }
}

static recsys_status check_batch(recsys_ctx *ctx, const rs_model_config *c, const rs_workspace *ws,
                                 const rs_batch *b)
{
    if (!ws || !b || !b->seq || !b->start)
        return rs_error(ctx, RECSYS_E_INVALID, "sasrec: NULL workspace or batch");
    if (b->L != c->max_len)
        return rs_error(ctx, RECSYS_E_INVALID, "sasrec: batch length %d, model max_len %d", b->L,
                        c->max_len);
    if (b->B < 0 || b->B > ws->cap_B)
        return rs_error(ctx, RECSYS_E_INVALID, "sasrec: batch of %d rows, workspace holds %d",
                        b->B, ws->cap_B);
    if (ws->cfg.dim != c->dim || ws->cfg.blocks != c->blocks || ws->cfg.ffn_dim != c->ffn_dim ||
        ws->cfg.heads != c->heads || ws->cfg.max_len != c->max_len)
        return rs_error(ctx, RECSYS_E_INVALID, "sasrec: workspace made for another config");
    return RECSYS_OK;
}

static recsys_status sasrec_forward(recsys_ctx *ctx, const rs_model_config *c, const float *P,
                                    rs_workspace *ws, const rs_batch *b, float *out)
{
    recsys_status st = check_batch(ctx, c, ws, b);
    if (st) return st;
    if (!P || !out) return rs_error(ctx, RECSYS_E_INVALID, "sasrec: NULL params or output");
    int d = c->dim;
    /* Pack the non-pad positions; item at row index t gets position t + 1. */
    int N = 0;
    ws->kept = 0;
    st = rs_pack_positions(ctx, "sasrec", c, b, ws->base, ws->len, ws->src, ws->emb_item,
                           ws->emb_pos, &N);
    if (st) return st;
    ws->B = b->B;
    ws->N = N;
    ws->seed = b->seed;
    ws->p = b->train ? c->dropout : 0.0f;

    size_t off[T_COUNT + 1];
    tensor_offsets(c, off);
    model_args m = {ctx, c, ws, off};
    float *Pm = (float *)P;
    float *X0 = ws->x[0];
    rs_embed_fwd(ctx, N, d, P + off[T_ITEM], ws->emb_item, sqrtf((float)d), 0, X0);
    rs_embed_fwd(ctx, N, d, P + off[T_POS], ws->emb_pos, 1.0f, 1, X0);
    rs_dropout_fwd_mask(ctx, N, d, X0, ws->p, stream(ws->seed, 0, S_EMB), ws->src, X0,
                        ws->emb_mask);
    /* Inference keeps nothing for a backward: every block reuses block 0's
     * buffers and the hidden state ping-pongs between x[0] and x[1]. */
    int keep = b->train != 0;
    int last_only = !keep && b->last_scratch; /* serving: see last_block.c */
    for (int k = 0; k < c->blocks - last_only; k++) {
        const sblock *s = keep ? &ws->blk[k] : &ws->blk[0];
        block_fwd(&m, P, k, s, ws->x[keep ? k : (k & 1)], ws->x[keep ? k + 1 : ((k + 1) & 1)]);
    }
    if (last_only) {
        rs_sasrec_last_fwd(ctx, c, P, ws->x[(c->blocks - 1) & 1], N, b->B, ws->base, ws->len,
                           b->last_scratch, out);
        return RECSYS_OK;
    }
    int last = keep ? c->blocks : (c->blocks & 1);
    final_job fj = {&ctx->kern, ws, b, ws->x[last], slice(Pm, off, c, T_LNF_G, 0),
                    slice(Pm, off, c, T_LNF_B, 0), NULL, out, NULL, NULL};
    rs_pool_run(ctx->pool, b->B, final_fwd_task, &fj);
    ws->kept = keep;
    return RECSYS_OK;
}

/* --------------------------------------------------------------- backward */

/* Backward of ffn_fwd given dGd = ∂/∂(dropped output); dIn = (or +=)
 * ∂/∂in. dIn may alias dGd: it is only written after dGd's last use. Uses
 * t1 and th. */
static void ffn_bwd(const model_args *m, const float *P, float *G, int k, const sblock *s,
                    const float *in, const float *dGd, float *dIn, int accumulate)
{
    recsys_ctx *ctx = m->ctx;
    rs_workspace *ws = m->ws;
    const rs_model_config *c = m->c;
    int N = ws->N, d = c->dim, F = c->ffn_dim;
    float *Pm = (float *)P;
    const float *dG = dGd;
    if (ws->p > 0.0f) {
        rs_dropout_bwd_mask(ctx, N, d, dGd, ws->p, s->mask, ws->t1);
        dG = ws->t1;
    }
    rs_linear_bwd(ctx, N, F, d, s->h, F, slice(Pm, m->off, c, T_W2, k), dG, d, ws->th, F, 0,
                  slice(G, m->off, c, T_W2, k), slice(G, m->off, c, T_B2, k), ws->partial);
    rs_relu_dropout_bwd(ctx, N, F, s->h, ws->p, ws->th);
    rs_linear_bwd(ctx, N, d, F, in, d, slice(Pm, m->off, c, T_W1, k), ws->th, F, dIn, d,
                  accumulate, slice(G, m->off, c, T_W1, k), slice(G, m->off, c, T_B1, k),
                  ws->partial);
}

/* dY: gradient of the block output (may be overwritten); dX: written. */
static void block_bwd(const model_args *m, const float *P, float *G, int k, const float *X,
                      float *dY, float *dX)
{
    recsys_ctx *ctx = m->ctx;
    const rs_model_config *c = m->c;
    rs_workspace *ws = m->ws;
    const sblock *s = &ws->blk[k];
    int N = ws->N, d = c->dim, ld4 = 4 * d;
    float *Pm = (float *)P, *t1 = ws->t1, *t2 = ws->t2, *gq = ws->gq;
    const float *g1 = slice(Pm, m->off, c, T_LN1_G, k), *g2 = slice(Pm, m->off, c, T_LN2_G, k);
    float *dg1 = slice(G, m->off, c, T_LN1_G, k), *dbe1 = slice(G, m->off, c, T_LN1_B, k);
    float *dg2 = slice(G, m->off, c, T_LN2_G, k), *dbe2 = slice(G, m->off, c, T_LN2_B, k);
    const float *w_in = slice(Pm, m->off, c, T_W_IN, k);
    float *dw_in = slice(G, m->off, c, T_W_IN, k), *db_in = slice(G, m->off, c, T_B_IN, k);
    const float *w_out = slice(Pm, m->off, c, T_W_OUT, k);
    float *dw_out = slice(G, m->off, c, T_W_OUT, k), *db_out = slice(G, m->off, c, T_B_OUT, k);
    rs_attn_layout al = attn_layout(ws, k);
    const float *O = s->qkvo + 3 * d;

    /* Each case ends with dA (the gradient of the attention output
     * projection) in `da`, then the shared attention backward runs. */
    float *da = NULL;
    switch (c->norm) {
    case RS_NORM_ORIGINAL:
        ffn_bwd(m, P, G, k, s, s->xn2, dY, dY, 1);              /* dY = dN */
        rs_layernorm_bwd(ctx, N, d, s->xn, s->a, g2, s->m2, s->r2, dY, t2, dg2, dbe2,
                         ws->partial);                          /* t2 = dE1 */
        da = t2;
        break;
    case RS_NORM_POST:
        rs_layernorm_bwd(ctx, N, d, s->xn, s->xn2, g2, s->m2, s->r2, dY, t2, dg2, dbe2,
                         ws->partial);                          /* t2 = dZ */
        ffn_bwd(m, P, G, k, s, s->xn, t2, t2, 1);               /* t2 = dE1 */
        rs_layernorm_bwd(ctx, N, d, X, s->a, g1, s->m1, s->r1, t2, dX, dg1, dbe1,
                         ws->partial);                          /* dX = dS */
        da = dX;
        break;
    case RS_NORM_PRE:
        ffn_bwd(m, P, G, k, s, s->xn2, dY, t2, 0);              /* t2 = dXn2 */
        rs_layernorm_bwd(ctx, N, d, X, s->a, g2, s->m2, s->r2, t2, t1, dg2, dbe2, ws->partial);
        rs_nn_add(ctx, N, d, t1, dY);                           /* dY = dX1 */
        da = dY;
        break;
    }
    rs_linear_bwd(ctx, N, d, d, O, ld4, w_out, da, d, gq + 3 * d, ld4, 0, dw_out, db_out,
                  ws->partial);
    rs_attention_bwd(ctx, &al, s->qkvo, s->qkvo + d, s->qkvo + 2 * d, O, gq + 3 * d, s->lse, gq,
                     gq + d, gq + 2 * d);
    switch (c->norm) {
    case RS_NORM_ORIGINAL:
        /* dQ through W_q into dE1 (the residual path), then LN_a; dK, dV into X. */
        rs_linear_bwd(ctx, N, d, d, s->xn, d, w_in, gq, ld4, t2, d, 1, dw_in, db_in, ws->partial);
        rs_layernorm_bwd(ctx, N, d, X, NULL, g1, s->m1, s->r1, t2, dX, dg1, dbe1, ws->partial);
        rs_linear_bwd(ctx, N, d, 2 * d, X, d, w_in + (size_t)d * d, gq + d, ld4, dX, d, 1,
                      dw_in + (size_t)d * d, db_in + d, ws->partial);
        break;
    case RS_NORM_POST:
        rs_linear_bwd(ctx, N, d, 3 * d, X, d, w_in, gq, ld4, dX, d, 1, dw_in, db_in, ws->partial);
        break;
    case RS_NORM_PRE:
        rs_linear_bwd(ctx, N, d, 3 * d, s->xn, d, w_in, gq, ld4, t2, d, 0, dw_in, db_in,
                      ws->partial);
        rs_layernorm_bwd(ctx, N, d, X, NULL, g1, s->m1, s->r1, t2, dX, dg1, dbe1, ws->partial);
        rs_nn_add(ctx, N, d, dY, dX);
        break;
    }
}

static recsys_status sasrec_backward(recsys_ctx *ctx, const rs_model_config *c, const float *P,
                                     rs_workspace *ws, const rs_batch *b, const float *d_out,
                                     float *G)
{
    recsys_status st = check_batch(ctx, c, ws, b);
    if (st) return st;
    if (!P || !d_out || !G) return rs_error(ctx, RECSYS_E_INVALID, "sasrec: NULL argument");
    if (!ws->kept || b->B != ws->B || b->seed != ws->seed)
        return rs_error(ctx, RECSYS_E_STATE,
                        "sasrec: backward must follow a training forward (train = 1) on the "
                        "same batch");
    int d = c->dim, N = ws->N;
    size_t off[T_COUNT + 1];
    tensor_offsets(c, off);
    model_args m = {ctx, c, ws, off};
    float *Pm = (float *)P;
    float *dY = ws->g0, *dX = ws->g1;

    final_job fj = {&ctx->kern, ws, b, ws->x[c->blocks], slice(Pm, off, c, T_LNF_G, 0), NULL,
                    d_out, NULL, dY, ws->partial};
    rs_pool_run(ctx->pool, ws->B, final_bwd_task, &fj);
    float *dg = G + off[T_LNF_G], *dbe = G + off[T_LNF_B];
    for (int r = 0; r < ws->B; r++) { /* rows in order: deterministic */
        const float *pg = ws->partial + (size_t)r * 2 * d;
        for (int i = 0; i < d; i++) {
            dg[i] += pg[i];
            dbe[i] += pg[d + i];
        }
    }
    for (int k = c->blocks - 1; k >= 0; k--) {
        block_bwd(&m, P, G, k, ws->x[k], dY, dX);
        float *t = dY;
        dY = dX;
        dX = t;
    }
    /* dY = ∂/∂(dropped embedding); undo the dropout, then scatter. */
    rs_dropout_bwd_mask(ctx, N, d, dY, ws->p, ws->emb_mask, dY);
    rs_embed_bwd(ctx, N, d, ws->emb_item, sqrtf((float)d), dY, G + off[T_ITEM]);
    rs_embed_bwd(ctx, N, d, ws->emb_pos, 1.0f, dY, G + off[T_POS]);
    return RECSYS_OK;
}

const rs_model_ops rs_sasrec_ops = {
    .name = "sasrec",
    .n_params = sasrec_n_params,
    .init = sasrec_init,
    .ws_new = sasrec_ws_new,
    .ws_free = sasrec_ws_free,
    .forward = sasrec_forward,
    .backward = sasrec_backward,
    .item_table_offset = sasrec_item_table_offset,
    .tensors = sasrec_tensors,
};
