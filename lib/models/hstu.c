/*
 * HSTU (MODELS.md §3) with a hand-written backward pass.
 *
 * Like SASRec (sasrec.c), forward packs the non-pad positions of the batch
 * into contiguous rows (row b's items are rows base[b] .. base[b]+len[b]-1)
 * and every layer runs on packed rows only; the attention kernel runs per
 * (row, head) on its packed segment. Because its biases depend only on
 * j - i and on timestamps, packing changes nothing; the weights are still
 * divided by N = cfg->max_len, the padded length (docs/HSTU.md).
 *
 * Per block, on packed rows X:
 *   Xn = LN(X)                      (no affine, eps 1e-6)
 *   H  = Xn · W_uvqkᵀ,  G = SiLU(H) = [U | V | Q | K]   (heads side by side)
 *   O  = HSTU attention per head    (kernels/hstu_attention_*.c)
 *   M  = Dropout(U ⊙ LN(O))         (LN over all heads, no affine, eps 1e-6)
 *   Y  = X + M · W_oᵀ + b_o
 * then F = Y / max(‖Y‖, 1e-6) per position (when cfg->l2norm, the default).
 *
 * Parameters are stored per tensor kind, stacked over blocks; weights use
 * the [out x in] layout of lib/nn. rab_time exists only with cfg->time_bias.
 */
#include "models/model.h"

#include "nn/nn.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-6f
#define L2_EPS 1e-6f

enum { T_ITEM, T_POS, T_UVQK, T_RAB_POS, T_RAB_TIME, T_O_W, T_O_B, T_COUNT };

static const char *const TENSOR_NAMES[T_COUNT] = {
    "item_emb", "pos_emb", "uvqk.weight", "rab_pos", "rab_time", "o.weight", "o.bias",
};

typedef struct dims {
    int d, h, dqk, dv, hdv, cols, N; /* cols = 2 h dv + 2 h dqk; N = max_len */
} dims;

static dims get_dims(const rs_model_config *c)
{
    dims m;
    m.d = c->dim;
    m.h = c->heads;
    m.dqk = c->dqk > 0 ? c->dqk : c->dim / c->heads;
    m.dv = c->dv > 0 ? c->dv : c->dim / c->heads;
    m.hdv = m.h * m.dv;
    m.cols = 2 * m.h * (m.dv + m.dqk);
    m.N = c->max_len;
    return m;
}

static size_t slice_size(const rs_model_config *c, int t)
{
    dims m = get_dims(c);
    size_t d = (size_t)m.d;
    switch (t) {
    case T_ITEM: return ((size_t)c->n_items + 1) * d;
    case T_POS: return ((size_t)c->max_len + 1) * d;
    case T_UVQK: return (size_t)m.cols * d;
    case T_RAB_POS: return 2 * (size_t)m.N - 1;
    case T_RAB_TIME: return c->time_bias ? RS_HSTU_TIME_BUCKETS : 0;
    case T_O_W: return d * (size_t)m.hdv;
    default: return d; /* T_O_B */
    }
}

static int per_block(int t) { return t != T_ITEM && t != T_POS; }

static void tensor_offsets(const rs_model_config *c, size_t off[T_COUNT + 1])
{
    off[0] = 0;
    for (int t = 0; t < T_COUNT; t++)
        off[t + 1] = off[t] + slice_size(c, t) * (per_block(t) ? (size_t)c->blocks : 1);
}

static inline float *slice(float *base, const size_t *off, const rs_model_config *c, int t, int k)
{
    return base + off[t] + (per_block(t) ? (size_t)k * slice_size(c, t) : 0);
}

static size_t hstu_n_params(const rs_model_config *c)
{
    size_t off[T_COUNT + 1];
    tensor_offsets(c, off);
    return off[T_COUNT];
}

static size_t hstu_item_table_offset(const rs_model_config *c)
{
    (void)c;
    return 0;
}

static int hstu_tensors(const rs_model_config *c, const char **names, size_t *offsets,
                        size_t *sizes)
{
    size_t off[T_COUNT + 1];
    tensor_offsets(c, off);
    int n = 0;
    for (int t = 0; t < T_COUNT; t++) {
        if (off[t + 1] == off[t]) continue; /* rab_time without time bias */
        if (names) names[n] = TENSOR_NAMES[t];
        if (offsets) offsets[n] = off[t];
        if (sizes) sizes[n] = off[t + 1] - off[t];
        n++;
    }
    return n;
}

/* ------------------------------------------------------------------ init */

/* Normal truncated at two standard deviations (resampled), as the
 * reference's truncated_normal. */
static void trunc_normal(float *w, size_t n, double sd, rs_rng *rng)
{
    for (size_t i = 0; i < n; i++) {
        double z;
        do z = rs_rng_normal(rng); while (fabs(z) > 2.0);
        w[i] = (float)(sd * z);
    }
}

static void normal(float *w, size_t n, double sd, rs_rng *rng)
{
    for (size_t i = 0; i < n; i++) w[i] = (float)(sd * rs_rng_normal(rng));
}

static void uniform(float *w, size_t n, double bound, rs_rng *rng)
{
    for (size_t i = 0; i < n; i++) w[i] = (float)(bound * (2.0 * rs_rng_uniform(rng) - 1.0));
}

static void hstu_init(const rs_model_config *c, float *P, rs_rng *rng)
{
    size_t off[T_COUNT + 1];
    tensor_offsets(c, off);
    dims m = get_dims(c);
    size_t d = (size_t)m.d;
    memset(P, 0, sizeof(float) * off[T_COUNT]);
    trunc_normal(P + off[T_ITEM] + d, (size_t)c->n_items * d, 0.02, rng);
    trunc_normal(P + off[T_POS] + d, (size_t)c->max_len * d, sqrt(1.0 / (double)d), rng);
    for (int k = 0; k < c->blocks; k++) {
        normal(slice(P, off, c, T_UVQK, k), slice_size(c, T_UVQK), 0.02, rng);
        normal(slice(P, off, c, T_RAB_POS, k), slice_size(c, T_RAB_POS), 0.02, rng);
        normal(slice(P, off, c, T_RAB_TIME, k), slice_size(c, T_RAB_TIME), 0.02, rng);
        uniform(slice(P, off, c, T_O_W, k), d * (size_t)m.hdv, sqrt(6.0 / (double)(d + m.hdv)), rng);
        /* torch.nn.Linear's default bias init, as the reference keeps it */
        uniform(slice(P, off, c, T_O_B, k), d, 1.0 / sqrt((double)m.hdv), rng);
    }
}

/* ------------------------------------------------------------- workspace */

/* Per-block activations kept for the backward (packed rows). */
typedef struct hblock {
    float *xn;     /* LN(X)                        R x d    */
    float *sg;     /* σ(H), for SiLU'               R x cols */
    float *g;      /* SiLU(H) = U | V | Q | K       R x cols */
    float *o;      /* attention output              R x hdv  */
    float *zn;     /* LN(O)                         R x hdv  */
    float *md;     /* Dropout(U ⊙ LN(O))            R x hdv  */
    float *m1, *r1, *m2, *r2; /* layer-norm statistics, R each */
} hblock;

struct rs_workspace {
    rs_model_config cfg;
    int cap_B, R;
    int B, n, kept;          /* the batch of the last forward: rows, packed rows */
    uint64_t seed;
    float p;
    int time_on;
    int *base, *len;         /* cap_B */
    int32_t *src;            /* R: packed row -> b*L + t (dropout counters) */
    int32_t *emb_item, *emb_pos;
    float **x;               /* blocks+1 block inputs/outputs, R x d */
    hblock *blk;
    float *ynorm;            /* R: 1 / max(‖Y‖, eps) of the last block output */
    float *t1, *t2, *t3;     /* R x d */
    float *dg;               /* R x cols */
    float *tm, *tm2;         /* R x hdv */
    float *partial;
    float *attn_scratch;     /* cap_B*h tasks x rs_hstu_scratch_floats */
    float *rab_grad;         /* cap_B*h tasks x (2N-1 + 129) */
    size_t scratch_per_task, rab_per_task;
    float *arena;
};

static size_t ws_plan(rs_workspace *ws, float *base)
{
    const rs_model_config *c = &ws->cfg;
    dims m = get_dims(c);
    size_t R = (size_t)ws->R, d = (size_t)m.d, cols = (size_t)m.cols, hdv = (size_t)m.hdv;
    size_t tasks = (size_t)ws->cap_B * (size_t)m.h, off = 0;
#define TAKE(ptr, n)                                \
    do {                                            \
        if (base) (ptr) = base + off;               \
        off += ((size_t)(n) + 15) & ~(size_t)15;    \
    } while (0)
    for (int k = 0; k <= c->blocks; k++) TAKE(ws->x[k], R * d);
    for (int k = 0; k < c->blocks; k++) {
        hblock *s = &ws->blk[k];
        TAKE(s->xn, R * d);
        TAKE(s->sg, R * cols);
        TAKE(s->g, R * cols);
        TAKE(s->o, R * hdv);
        TAKE(s->zn, R * hdv);
        TAKE(s->md, R * hdv);
        TAKE(s->m1, R);
        TAKE(s->r1, R);
        TAKE(s->m2, R);
        TAKE(s->r2, R);
    }
    TAKE(ws->ynorm, R);
    TAKE(ws->t1, R * d);
    TAKE(ws->t2, R * d);
    TAKE(ws->t3, R * d);
    TAKE(ws->dg, R * cols);
    TAKE(ws->tm, R * hdv);
    TAKE(ws->tm2, R * hdv);
    size_t width = cols > 2 * d ? cols : 2 * d;
    if (2 * hdv > width) width = 2 * hdv;
    TAKE(ws->partial, rs_nn_partial_floats(ws->R, (int)width));
    TAKE(ws->attn_scratch, tasks * ws->scratch_per_task);
    TAKE(ws->rab_grad, tasks * ws->rab_per_task);
#undef TAKE
    return off;
}

static void hstu_ws_free(rs_workspace *ws)
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

static rs_workspace *hstu_ws_new(const rs_model_config *c, int B)
{
    if (!c || B < 1 || c->max_len < 1 || c->heads < 1 || c->blocks < 1 ||
        (size_t)B > (size_t)INT_MAX / (size_t)c->max_len)
        return NULL;
    rs_workspace *ws = calloc(1, sizeof *ws);
    if (!ws) return NULL;
    dims m = get_dims(c);
    ws->cfg = *c;
    ws->cap_B = B;
    ws->R = B * c->max_len;
    ws->scratch_per_task = (rs_hstu_scratch_floats(m.dqk, m.dv) + 15) & ~(size_t)15;
    ws->rab_per_task = ((size_t)(2 * m.N - 1 + RS_HSTU_TIME_BUCKETS) + 15) & ~(size_t)15;
    ws->base = malloc(sizeof(int) * (size_t)B);
    ws->len = malloc(sizeof(int) * (size_t)B);
    ws->src = malloc(sizeof(int32_t) * (size_t)ws->R);
    ws->emb_item = malloc(sizeof(int32_t) * (size_t)ws->R);
    ws->emb_pos = malloc(sizeof(int32_t) * (size_t)ws->R);
    ws->x = calloc((size_t)c->blocks + 1, sizeof *ws->x);
    ws->blk = calloc((size_t)c->blocks, sizeof *ws->blk);
    if (!ws->base || !ws->len || !ws->src || !ws->emb_item || !ws->emb_pos || !ws->x || !ws->blk) {
        hstu_ws_free(ws);
        return NULL;
    }
    size_t n = ws_plan(ws, NULL);
    ws->arena = n <= SIZE_MAX / sizeof(float) ? rs_malloc(n * sizeof(float)) : NULL;
    if (!ws->arena) {
        hstu_ws_free(ws);
        return NULL;
    }
    ws_plan(ws, ws->arena);
    return ws;
}

/* -------------------------------------------------------------- streams */

enum { S_EMB = 0, S_LIN = 1 };
static uint64_t stream(uint64_t seed, int block, int which)
{
    return rs_hash64(seed ^ 0x4853545541ULL, which == S_EMB ? 0 : (uint64_t)(1 + block));
}

/* ---------------------------------------------------- element-wise jobs */

typedef struct ew_job {
    int n, w, ld;      /* rows, width, row stride */
    float *a, *b, *c;
    const float *x, *y;
    const rs_kernels *k; /* SiLU row kernels */
} ew_job;

#define ROWS(task, n, i0, i1)                                               \
    int i0 = (task) * RS_NN_CHUNK_ROWS;                                     \
    int i1 = i0 + RS_NN_CHUNK_ROWS < (n) ? i0 + RS_NN_CHUNK_ROWS : (n)

/* a = SiLU(a) in place, b = σ(a) (rows of w, contiguous). */
static void silu_fwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    ROWS(task, j->n, i0, i1);
    size_t e0 = (size_t)i0 * j->w, e1 = (size_t)i1 * j->w;
    j->k->silu_fwd(e1 - e0, j->a + e0, j->b + e0);
}

/* a *= SiLU'(H) = σ + g (1 - σ), with b = σ(H) and x = g = SiLU(H). */
static void silu_bwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    ROWS(task, j->n, i0, i1);
    size_t e0 = (size_t)i0 * j->w, e1 = (size_t)i1 * j->w;
    j->k->silu_bwd(e1 - e0, j->b + e0, j->x + e0, j->a + e0);
}

/* a[i, :] = x[i, :] ⊙ y[i, :]; x has stride ld, y and a width w. */
static void mul_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    ROWS(task, j->n, i0, i1);
    for (int i = i0; i < i1; i++) {
        const float *xi = j->x + (size_t)i * j->ld, *yi = j->y + (size_t)i * j->w;
        float *ai = j->a + (size_t)i * j->w;
        for (int c = 0; c < j->w; c++) ai[c] = xi[c] * yi[c];
    }
}

/* Backward of M = U ⊙ Z with dM in a: dU -> c[i, :] (stride ld),
 * dZ -> a (in place); x = U (stride ld), y = Z. */
static void mul_bwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const ew_job *j = arg;
    ROWS(task, j->n, i0, i1);
    for (int i = i0; i < i1; i++) {
        const float *u = j->x + (size_t)i * j->ld, *z = j->y + (size_t)i * j->w;
        float *dm = j->a + (size_t)i * j->w, *du = j->c + (size_t)i * j->ld;
        for (int c = 0; c < j->w; c++) {
            du[c] = dm[c] * z[c];
            dm[c] *= u[c];
        }
    }
}

static void run_rows(recsys_ctx *ctx, rs_task_fn fn, ew_job *j)
{
    if (j->n > 0) rs_pool_run(ctx->pool, rs_nn_chunks(j->n), fn, j);
}

/* ------------------------------------------------------------ attention */

typedef struct attn_job {
    const rs_kernels *kern;
    rs_workspace *ws;
    const rs_batch *b;
    dims m;
    const float *g, *rab_pos, *rab_time;
    float *o, *d_o, *dg;
} attn_job;

static rs_hstu_attn attn_args(const attn_job *j, int row, int head)
{
    const rs_workspace *ws = j->ws;
    const dims *m = &j->m;
    size_t p = (size_t)ws->base[row] * m->cols;
    rs_hstu_attn a;
    a.L = ws->len[row];
    a.start = 0;
    a.N = m->N;
    a.dqk = m->dqk;
    a.dv = m->dv;
    a.q = j->g + p + 2 * (size_t)m->hdv + (size_t)head * m->dqk;
    a.k = a.q + (size_t)m->h * m->dqk;
    a.v = j->g + p + (size_t)m->hdv + (size_t)head * m->dv;
    a.ld = m->cols;
    a.rab_pos = j->rab_pos;
    a.rab_time = ws->time_on ? j->rab_time : NULL;
    size_t t0 = (size_t)row * ws->cfg.max_len + (size_t)(ws->cfg.max_len - ws->len[row]);
    a.times = ws->time_on ? j->b->times + t0 : NULL;
    a.next_times = ws->time_on ? j->b->next_times + t0 : NULL;
    return a;
}

static void attn_fwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const attn_job *j = arg;
    int row = task / j->m.h, head = task % j->m.h;
    if (j->ws->len[row] == 0) return;
    rs_hstu_attn a = attn_args(j, row, head);
    float *o = j->o + (size_t)j->ws->base[row] * j->m.hdv + (size_t)head * j->m.dv;
    j->kern->hstu_fwd(&a, o, j->m.hdv, j->ws->attn_scratch + (size_t)task * j->ws->scratch_per_task);
}

static void attn_bwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const attn_job *j = arg;
    rs_workspace *ws = j->ws;
    int row = task / j->m.h, head = task % j->m.h;
    float *rg = ws->rab_grad + (size_t)task * ws->rab_per_task;
    memset(rg, 0, sizeof(float) * ws->rab_per_task);
    if (ws->len[row] == 0) return;
    rs_hstu_attn a = attn_args(j, row, head);
    size_t p = (size_t)ws->base[row];
    const float *d_o = j->d_o + p * j->m.hdv + (size_t)head * j->m.dv;
    /* dq, dk, dv land in dg at the same columns as q, k, v in g */
    float *dq = j->dg + (a.q - j->g), *dk = j->dg + (a.k - j->g), *dv = j->dg + (a.v - j->g);
    j->kern->hstu_bwd(&a, d_o, j->m.hdv, dq, dk, dv, rg, rg + 2 * j->m.N - 1,
                      ws->attn_scratch + (size_t)task * ws->scratch_per_task);
}

/* --------------------------------------------------------- L2 output norm */

typedef struct l2_job {
    rs_workspace *ws;
    const rs_kernels *kern;
    const float *y, *dF;
    float *out, *dy;
} l2_job;

static void l2_fwd_task(void *arg, int row, int thread)
{
    (void)thread;
    const l2_job *j = arg;
    rs_workspace *ws = j->ws;
    int d = ws->cfg.dim, L = ws->cfg.max_len, n = ws->len[row], st = L - n;
    float *o = j->out + (size_t)row * L * d;
    memset(o, 0, sizeof(float) * (size_t)st * d);
    for (int i = 0; i < n; i++) {
        size_t p = (size_t)ws->base[row] + (size_t)i;
        const float *y = j->y + p * d;
        float *oi = o + (size_t)(st + i) * d;
        float s = 1.0f;
        if (ws->cfg.l2norm) {
            float nrm = sqrtf(j->kern->dot((size_t)d, y, y));
            s = 1.0f / (nrm > L2_EPS ? nrm : L2_EPS);
        }
        ws->ynorm[p] = s;
        for (int c = 0; c < d; c++) oi[c] = y[c] * s;
    }
}

static void l2_bwd_task(void *arg, int row, int thread)
{
    (void)thread;
    const l2_job *j = arg;
    rs_workspace *ws = j->ws;
    int d = ws->cfg.dim, L = ws->cfg.max_len, n = ws->len[row], st = L - n;
    for (int i = 0; i < n; i++) {
        size_t p = (size_t)ws->base[row] + (size_t)i;
        const float *g = j->dF + ((size_t)row * L + (size_t)(st + i)) * d, *y = j->y + p * d;
        float *dy = j->dy + p * d, s = ws->ynorm[p];
        if (ws->cfg.l2norm && s < 1.0f / L2_EPS) { /* (g - <g,f> f) / ‖y‖, f = y s */
            float gf = j->kern->dot((size_t)d, g, y) * s;
            for (int c = 0; c < d; c++) dy[c] = (g[c] - gf * y[c] * s) * s;
        } else {
            for (int c = 0; c < d; c++) dy[c] = g[c] * s;
        }
    }
}

/* ---------------------------------------------------------------- forward */

typedef struct model_args {
    recsys_ctx *ctx;
    const rs_model_config *c;
    rs_workspace *ws;
    const rs_batch *b;
    const size_t *off;
    dims m;
} model_args;

static void block_fwd(const model_args *a, const float *P, int k, const float *X, float *Y)
{
    recsys_ctx *ctx = a->ctx;
    rs_workspace *ws = a->ws;
    const rs_model_config *c = a->c;
    const dims *m = &a->m;
    hblock *s = &ws->blk[k];
    int n = ws->n;
    float *Pm = (float *)P;

    rs_layernorm_fwd(ctx, n, m->d, X, NULL, NULL, NULL, LN_EPS, s->xn, s->m1, s->r1);
    rs_linear_fwd(ctx, n, m->d, m->cols, s->xn, m->d, slice(Pm, a->off, c, T_UVQK, k), NULL,
                  s->g, m->cols);
    ew_job e = {n, m->cols, m->cols, s->g, s->sg, NULL, NULL, NULL, &ctx->kern};
    run_rows(ctx, silu_fwd_task, &e);

    attn_job aj = {&ctx->kern, ws, a->b, *m, s->g, slice(Pm, a->off, c, T_RAB_POS, k),
                   c->time_bias ? slice(Pm, a->off, c, T_RAB_TIME, k) : NULL, s->o, NULL, NULL};
    rs_pool_run(ctx->pool, ws->B * m->h, attn_fwd_task, &aj);

    rs_layernorm_fwd(ctx, n, m->hdv, s->o, NULL, NULL, NULL, LN_EPS, s->zn, s->m2, s->r2);
    ew_job mu = {n, m->hdv, m->cols, s->md, NULL, NULL, s->g, s->zn, &ctx->kern}; /* U ⊙ LN(O) */
    run_rows(ctx, mul_task, &mu);
    rs_dropout(ctx, n, m->hdv, s->md, m->hdv, ws->p, stream(ws->seed, k, S_LIN), ws->src, s->md);
    rs_linear_fwd(ctx, n, m->hdv, m->d, s->md, m->hdv, slice(Pm, a->off, c, T_O_W, k),
                  slice(Pm, a->off, c, T_O_B, k), Y, m->d);
    rs_nn_add(ctx, n, m->d, X, Y);
}

static recsys_status check_batch(recsys_ctx *ctx, const rs_model_config *c, const rs_workspace *ws,
                                 const rs_batch *b)
{
    if (!ws || !b || !b->seq || !b->start)
        return rs_error(ctx, RECSYS_E_INVALID, "hstu: NULL workspace or batch");
    if (b->L != c->max_len)
        return rs_error(ctx, RECSYS_E_INVALID, "hstu: batch length %d, model max_len %d", b->L,
                        c->max_len);
    if (b->B < 0 || b->B > ws->cap_B)
        return rs_error(ctx, RECSYS_E_INVALID, "hstu: batch of %d rows, workspace holds %d", b->B,
                        ws->cap_B);
    dims m = get_dims(c), mw = get_dims(&ws->cfg);
    if (m.d != mw.d || m.h != mw.h || m.dqk != mw.dqk || m.dv != mw.dv || m.N != mw.N ||
        c->blocks != ws->cfg.blocks)
        return rs_error(ctx, RECSYS_E_INVALID, "hstu: workspace made for another config");
    return RECSYS_OK;
}

static recsys_status hstu_forward(recsys_ctx *ctx, const rs_model_config *c, const float *P,
                                  rs_workspace *ws, const rs_batch *b, float *out)
{
    recsys_status st = check_batch(ctx, c, ws, b);
    if (st) return st;
    if (!P || !out) return rs_error(ctx, RECSYS_E_INVALID, "hstu: NULL params or output");
    int d = c->dim;
    int n = 0;
    ws->kept = 0;
    st = rs_pack_positions(ctx, "hstu", c, b, ws->base, ws->len, ws->src, ws->emb_item,
                           ws->emb_pos, &n);
    if (st) return st;
    ws->B = b->B;
    ws->n = n;
    ws->seed = b->seed;
    ws->p = b->train ? c->dropout : 0.0f;
    ws->time_on = c->time_bias && b->times && b->next_times;

    size_t off[T_COUNT + 1];
    tensor_offsets(c, off);
    model_args a = {ctx, c, ws, b, off, get_dims(c)};
    float *X0 = ws->x[0];
    rs_embed_fwd(ctx, n, d, P + off[T_ITEM], ws->emb_item, sqrtf((float)d), 0, X0);
    rs_embed_fwd(ctx, n, d, P + off[T_POS], ws->emb_pos, 1.0f, 1, X0);
    rs_dropout(ctx, n, d, X0, d, ws->p, stream(ws->seed, 0, S_EMB), ws->src, X0);
    int last_only = !b->train && b->last_scratch; /* serving: see last_block.c */
    for (int k = 0; k < c->blocks - last_only; k++) block_fwd(&a, P, k, ws->x[k], ws->x[k + 1]);
    if (last_only) {
        rs_hstu_last_fwd(ctx, c, P, ws->x[c->blocks - 1], n, b->B, ws->base, ws->len, b,
                         ws->time_on, b->last_scratch, out);
        return RECSYS_OK;
    }
    l2_job lj = {ws, &ctx->kern, ws->x[c->blocks], NULL, out, NULL};
    rs_pool_run(ctx->pool, b->B, l2_fwd_task, &lj);
    ws->kept = b->train != 0;
    return RECSYS_OK;
}

/* --------------------------------------------------------------- backward */

/* dY: gradient of the block output (kept); dX: written. */
static void block_bwd(const model_args *a, const float *P, float *G, int k, const float *X,
                      const float *dY, float *dX)
{
    recsys_ctx *ctx = a->ctx;
    rs_workspace *ws = a->ws;
    const rs_model_config *c = a->c;
    const dims *m = &a->m;
    hblock *s = &ws->blk[k];
    int n = ws->n;
    float *Pm = (float *)P;
    uint64_t sd = stream(ws->seed, k, S_LIN);

    /* Y = X + Md W_oᵀ + b_o */
    rs_linear_bwd(ctx, n, m->hdv, m->d, s->md, m->hdv, slice(Pm, a->off, c, T_O_W, k), dY, m->d,
                  ws->tm2, m->hdv, 0, slice(G, a->off, c, T_O_W, k), slice(G, a->off, c, T_O_B, k),
                  ws->partial);
    rs_dropout(ctx, n, m->hdv, ws->tm2, m->hdv, ws->p, sd, ws->src, ws->tm2); /* tm2 = dM */
    ew_job mb = {n, m->hdv, m->cols, ws->tm2, NULL, ws->dg, s->g, s->zn, &ctx->kern};
    run_rows(ctx, mul_bwd_task, &mb);                      /* dU -> dg, tm2 = dZn */
    rs_layernorm_bwd(ctx, n, m->hdv, s->o, NULL, NULL, s->m2, s->r2, ws->tm2, ws->tm, NULL, NULL,
                     ws->partial);                         /* tm = dO */

    attn_job aj = {&ctx->kern, ws, a->b, *m, s->g, slice(Pm, a->off, c, T_RAB_POS, k),
                   c->time_bias ? slice(Pm, a->off, c, T_RAB_TIME, k) : NULL, NULL, ws->tm,
                   ws->dg};
    int tasks = ws->B * m->h;
    rs_pool_run(ctx->pool, tasks, attn_bwd_task, &aj);
    /* Bias gradients: per-task buffers summed in task order. */
    float *grp = slice(G, a->off, c, T_RAB_POS, k);
    float *grt = c->time_bias ? slice(G, a->off, c, T_RAB_TIME, k) : NULL;
    int nrp = 2 * m->N - 1;
    for (int t = 0; t < tasks; t++) {
        const float *rg = ws->rab_grad + (size_t)t * ws->rab_per_task;
        for (int i = 0; i < nrp; i++) grp[i] += rg[i];
        if (grt && ws->time_on)
            for (int i = 0; i < RS_HSTU_TIME_BUCKETS; i++) grt[i] += rg[nrp + i];
    }

    ew_job sb = {n, m->cols, m->cols, ws->dg, s->sg, NULL, s->g, NULL, &ctx->kern};
    run_rows(ctx, silu_bwd_task, &sb);                     /* dg = dH */
    rs_linear_bwd(ctx, n, m->d, m->cols, s->xn, m->d, slice(Pm, a->off, c, T_UVQK, k), ws->dg,
                  m->cols, ws->t3, m->d, 0, slice(G, a->off, c, T_UVQK, k), NULL, ws->partial);
    rs_layernorm_bwd(ctx, n, m->d, X, NULL, NULL, s->m1, s->r1, ws->t3, dX, NULL, NULL,
                     ws->partial);
    rs_nn_add(ctx, n, m->d, dY, dX);
}

static recsys_status hstu_backward(recsys_ctx *ctx, const rs_model_config *c, const float *P,
                                   rs_workspace *ws, const rs_batch *b, const float *d_out,
                                   float *G)
{
    recsys_status st = check_batch(ctx, c, ws, b);
    if (st) return st;
    if (!P || !d_out || !G) return rs_error(ctx, RECSYS_E_INVALID, "hstu: NULL argument");
    if (!ws->kept || b->B != ws->B || b->seed != ws->seed)
        return rs_error(ctx, RECSYS_E_STATE,
                        "hstu: backward must follow a training forward (train = 1) on the same "
                        "batch");
    int d = c->dim, n = ws->n;
    size_t off[T_COUNT + 1];
    tensor_offsets(c, off);
    model_args a = {ctx, c, ws, b, off, get_dims(c)};
    float *dY = ws->t1, *dX = ws->t2;
    l2_job lj = {ws, &ctx->kern, ws->x[c->blocks], d_out, NULL, dY};
    rs_pool_run(ctx->pool, ws->B, l2_bwd_task, &lj);
    for (int k = c->blocks - 1; k >= 0; k--) {
        block_bwd(&a, P, G, k, ws->x[k], dY, dX);
        float *t = dY;
        dY = dX;
        dX = t;
    }
    rs_dropout(ctx, n, d, dY, d, ws->p, stream(ws->seed, 0, S_EMB), ws->src, dY);
    rs_embed_bwd(ctx, n, d, ws->emb_item, sqrtf((float)d), dY, G + off[T_ITEM]);
    rs_embed_bwd(ctx, n, d, ws->emb_pos, 1.0f, dY, G + off[T_POS]);
    return RECSYS_OK;
}

const rs_model_ops rs_hstu_ops = {
    .name = "hstu",
    .n_params = hstu_n_params,
    .init = hstu_init,
    .ws_new = hstu_ws_new,
    .ws_free = hstu_ws_free,
    .forward = hstu_forward,
    .backward = hstu_backward,
    .item_table_offset = hstu_item_table_offset,
    .tensors = hstu_tensors,
};
