/*
 * HSTU (docs/MODELS.md §3) with a hand-written backward pass.
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
 *   O  = HSTU attention per head    (kernels/ref/, kernels/x86/hstu_attention_*.c)
 *   M  = Dropout(U ⊙ LN(O))         (LN over all heads, no affine, eps 1e-6)
 *   Y  = X + M · W_oᵀ + b_o
 * then F = Y / max(‖Y‖, 1e-6) per position (when cfg->l2norm, the default).
 *
 * Parameters are stored per tensor kind, stacked over blocks; weights use
 * the [out x in] layout of lib/nn. rab_time exists only with cfg->time_bias.
 * The tensor table, the workspace, the batch checks and the edges are the
 * shared scaffolding (scaffold.h); W_uvqk and W_o are rs_projs, SiLU, the
 * gating product and the L2 norm are layers of lib/nn.
 */
#include "models/extend.h"
#include "models/scaffold.h"

#include "nn/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-6f
#define L2_EPS 1e-6f
/* Salt of HSTU's dropout streams ("HSTUA"), so they differ from SASRec's on
 * the same batch seed. */
#define HSTU_STREAM_SALT 0x4853545541ULL
/* Initialisation (as the reference): std of W_uvqk and the relative biases,
 * and of the item embeddings, truncated at TRUNC_SIGMAS standard deviations. */
#define INIT_STD 0.02
#define TRUNC_SIGMAS 2.0

enum {
    T_ITEM = RS_T_ITEM, T_POS = RS_T_POS, T_UVQK = RS_T_MODEL, T_RAB_POS, T_RAB_TIME, T_O_W,
    T_O_B
};

typedef struct dims {
    int d, h, dqk, dv, hdv, cols, N; /* cols = 2 h dv + 2 h dqk; N = max_len */
    int n_rab_pos;                   /* 2N - 1 relative position biases */
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
    m.n_rab_pos = 2 * m.N - 1;
    return m;
}

static void hstu_layout(const rs_model_config *c, rs_tensor_table *t)
{
    dims m = get_dims(c);
    size_t d = (size_t)m.d;
    rs_tensors_begin(t, c);
    rs_tensors_add(t, "uvqk.weight", (size_t)m.cols * d, 1);
    rs_tensors_add(t, "rab_pos", (size_t)m.n_rab_pos, 1);
    rs_tensors_add(t, "rab_time", c->time_bias ? RS_HSTU_TIME_BUCKETS : 0, 1);
    rs_tensors_add(t, "o.weight", d * (size_t)m.hdv, 1);
    rs_tensors_add(t, "o.bias", d, 1);
}

/* The two projections of a block: Xn -> U|V|Q|K (no bias) and the output. */
typedef struct hstu_projs {
    rs_proj uvqk, o;
} hstu_projs;

static hstu_projs hstu_projections(const dims *m)
{
    hstu_projs p;
    p.uvqk = rs_proj_make("uvqk", T_UVQK, -1, 0, m->d, m->cols, 0);
    p.o = rs_proj_make("o", T_O_W, T_O_B, 0, m->hdv, m->d, 0);
    return p;
}

/* ------------------------------------------------------------------ init */

/* Normal truncated at TRUNC_SIGMAS standard deviations (resampled), as the
 * reference's truncated_normal. */
static void trunc_normal(float *w, size_t n, double sd, rs_rng *rng)
{
    for (size_t i = 0; i < n; i++) {
        double z;
        do z = rs_rng_normal(rng); while (fabs(z) > TRUNC_SIGMAS);
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
    rs_tensor_table t;
    hstu_layout(c, &t);
    dims m = get_dims(c);
    size_t d = (size_t)m.d;
    memset(P, 0, sizeof(float) * t.off[t.n]);
    trunc_normal(P + t.off[T_ITEM] + d, (size_t)c->n_items * d, INIT_STD, rng);
    trunc_normal(P + t.off[T_POS] + d, (size_t)c->max_len * d, sqrt(1.0 / (double)d), rng);
    for (int k = 0; k < c->blocks; k++) {
        normal(P + rs_tensor_at(&t, T_UVQK, k), t.slice[T_UVQK], INIT_STD, rng);
        normal(P + rs_tensor_at(&t, T_RAB_POS, k), t.slice[T_RAB_POS], INIT_STD, rng);
        normal(P + rs_tensor_at(&t, T_RAB_TIME, k), t.slice[T_RAB_TIME], INIT_STD, rng);
        /* Xavier-uniform W_o */
        uniform(P + rs_tensor_at(&t, T_O_W, k), d * (size_t)m.hdv,
                sqrt(6.0 / (double)(d + m.hdv)), rng);
        /* torch.nn.Linear's default bias init, as the reference keeps it */
        uniform(P + rs_tensor_at(&t, T_O_B, k), d, 1.0 / sqrt((double)m.hdv), rng);
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
    rs_ws_common com;        /* packed rows, block inputs x[], per-block hblocks */
    int time_on;             /* the last forward used the time bias */
    float *ynorm;            /* R: 1 / max(‖Y‖, eps) of the last block output */
    float *t1, *t2, *t3;     /* R x d */
    float *dg;               /* R x cols */
    float *tm, *tm2;         /* R x hdv */
    float *partial;
    float *attn_scratch;     /* cap_B*h tasks x rs_hstu_scratch_floats */
    float *rab_grad;         /* cap_B*h tasks x (2N-1 + RS_HSTU_TIME_BUCKETS) */
    size_t scratch_per_task, rab_per_task;
};

static hblock *hblk(rs_workspace *ws, int k) { return (hblock *)ws->com.blocks + k; }

static void hstu_prepare(rs_workspace *ws)
{
    dims m = get_dims(&ws->com.cfg);
    ws->scratch_per_task = rs_plan_round(rs_hstu_scratch_floats(m.dqk, m.dv));
    ws->rab_per_task = rs_plan_round((size_t)(m.n_rab_pos + RS_HSTU_TIME_BUCKETS));
}

static void hstu_plan(rs_workspace *ws, rs_plan *p)
{
    const rs_model_config *c = &ws->com.cfg;
    dims m = get_dims(c);
    size_t R = (size_t)ws->com.R, d = (size_t)m.d, cols = (size_t)m.cols, hdv = (size_t)m.hdv;
    size_t tasks = (size_t)ws->com.cap_B * (size_t)m.h;
    for (int k = 0; k < c->blocks; k++) {
        hblock *s = hblk(ws, k);
        const rs_plan_item kept[] = {{&s->xn, d},   {&s->sg, cols}, {&s->g, cols},
                                     {&s->o, hdv},  {&s->zn, hdv},  {&s->md, hdv},
                                     {&s->m1, 1},   {&s->r1, 1},    {&s->m2, 1},
                                     {&s->r2, 1}};
        rs_plan_rows(p, R, kept, (int)(sizeof kept / sizeof kept[0]));
    }
    const rs_plan_item scratch[] = {{&ws->ynorm, 1}, {&ws->t1, d},   {&ws->t2, d},
                                    {&ws->t3, d},    {&ws->dg, cols}, {&ws->tm, hdv},
                                    {&ws->tm2, hdv}};
    rs_plan_rows(p, R, scratch, (int)(sizeof scratch / sizeof scratch[0]));
    size_t width = cols > 2 * d ? cols : 2 * d;
    if (2 * hdv > width) width = 2 * hdv;
    ws->partial = rs_plan_floats(p, rs_nn_partial_floats(ws->com.R, (int)width));
    ws->attn_scratch = rs_plan_floats(p, tasks * ws->scratch_per_task);
    ws->rab_grad = rs_plan_floats(p, tasks * ws->rab_per_task);
}

static int hstu_same_shape(const rs_model_config *a, const rs_model_config *b)
{
    dims ma = get_dims(a), mb = get_dims(b);
    return ma.dqk == mb.dqk && ma.dv == mb.dv;
}

static const rs_ws_spec HSTU_WS = {
    .model = "hstu",
    .ws_size = sizeof(struct rs_workspace),
    .block_size = sizeof(hblock),
    .prepare = hstu_prepare,
    .plan = hstu_plan,
    .same_shape = hstu_same_shape,
};

static rs_workspace *hstu_ws_new(const rs_model_config *c, int B)
{
    return rs_ws_new(c, B, &HSTU_WS);
}

/* -------------------------------------------------------------- streams */

enum { S_EMB = 0, S_LIN = 1 };
static uint64_t stream(uint64_t seed, int block, int which)
{
    return rs_hash64(seed ^ HSTU_STREAM_SALT, which == S_EMB ? 0 : (uint64_t)(1 + block));
}

/* ------------------------------------------------------------ attention */

typedef struct hstu_attn_job {
    const rs_kernels *kern;
    rs_workspace *ws;
    const rs_batch *b;
    dims m;
    const float *g, *rab_pos, *rab_time;
    float *o, *d_o, *dg;
} hstu_attn_job;

static rs_hstu_attn attn_args(const hstu_attn_job *j, int row, int head)
{
    const rs_workspace *ws = j->ws;
    const rs_ws_common *w = &ws->com;
    const dims *m = &j->m;
    size_t p = (size_t)w->base[row] * m->cols;
    rs_hstu_attn a;
    a.L = w->len[row];
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
    size_t t0 = (size_t)row * w->cfg.max_len + (size_t)(w->cfg.max_len - w->len[row]);
    a.times = ws->time_on ? j->b->times + t0 : NULL;
    a.next_times = ws->time_on ? j->b->next_times + t0 : NULL;
    return a;
}

static void attn_fwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const hstu_attn_job *j = arg;
    const rs_ws_common *w = &j->ws->com;
    int row = task / j->m.h, head = task % j->m.h;
    if (w->len[row] == 0) return;
    rs_hstu_attn a = attn_args(j, row, head);
    float *o = j->o + (size_t)w->base[row] * j->m.hdv + (size_t)head * j->m.dv;
    j->kern->hstu_fwd(&a, o, j->m.hdv, j->ws->attn_scratch + (size_t)task * j->ws->scratch_per_task);
}

static void attn_bwd_task(void *arg, int task, int thread)
{
    (void)thread;
    const hstu_attn_job *j = arg;
    rs_workspace *ws = j->ws;
    int row = task / j->m.h, head = task % j->m.h;
    float *rg = ws->rab_grad + (size_t)task * ws->rab_per_task;
    memset(rg, 0, sizeof(float) * ws->rab_per_task);
    if (ws->com.len[row] == 0) return;
    rs_hstu_attn a = attn_args(j, row, head);
    size_t p = (size_t)ws->com.base[row];
    const float *d_o = j->d_o + p * j->m.hdv + (size_t)head * j->m.dv;
    /* dq, dk, dv land in dg at the same columns as q, k, v in g */
    float *dq = j->dg + (a.q - j->g), *dk = j->dg + (a.k - j->g), *dv = j->dg + (a.v - j->g);
    j->kern->hstu_bwd(&a, d_o, j->m.hdv, dq, dk, dv, rg, rg + j->m.n_rab_pos,
                      ws->attn_scratch + (size_t)task * ws->scratch_per_task);
}

/* ------------------------------------------------- output (padded edge) */

/* F = Y / max(‖Y‖, eps) per position (a copy when cfg->l2norm is off). */
typedef struct hstu_out {
    rs_workspace *ws;
    const rs_kernels *kern;
    const float *y;
    float *dy;
} hstu_out;

static void out_fwd_rows(void *arg, int row, size_t p0, int n, float *rows)
{
    (void)row;
    const hstu_out *j = arg;
    rs_workspace *ws = j->ws;
    int d = ws->com.cfg.dim;
    if (ws->com.cfg.l2norm) {
        rs_l2norm_rows_fwd(j->kern, n, d, j->y + p0 * d, L2_EPS, rows, ws->ynorm + p0);
        return;
    }
    memcpy(rows, j->y + p0 * d, sizeof(float) * (size_t)n * d);
    for (int i = 0; i < n; i++) ws->ynorm[p0 + i] = 1.0f;
}

static void out_bwd_rows(void *arg, int row, size_t p0, int n, const float *rows)
{
    (void)row;
    const hstu_out *j = arg;
    rs_workspace *ws = j->ws;
    int d = ws->com.cfg.dim;
    if (ws->com.cfg.l2norm)
        rs_l2norm_rows_bwd(j->kern, n, d, j->y + p0 * d, ws->ynorm + p0, L2_EPS, rows,
                           j->dy + p0 * d);
    else
        memcpy(j->dy + p0 * d, rows, sizeof(float) * (size_t)n * d);
}

/* ---------------------------------------------------------------- forward */

typedef struct hstu_args {
    rs_tensor_table tab;
    rs_model_run r;
    rs_workspace *ws;
    const rs_batch *b;
    dims m;
    hstu_projs pj;
} hstu_args;

/* Fills a (the tensor table included) for a pass over ws on batch b. */
static void args_init(hstu_args *a, recsys_ctx *ctx, const rs_model_config *c, const float *P,
                      float *G, rs_workspace *ws, const rs_batch *b)
{
    hstu_layout(c, &a->tab);
    rs_model_run r = {ctx, c, &a->tab, P, G, ws->partial, NULL, NULL, 0, 0};
    a->r = r;
    a->ws = ws;
    a->b = b;
    a->m = get_dims(c);
    a->pj = hstu_projections(&a->m);
}

static hstu_attn_job attn_job_of(const hstu_args *a, int k, const hblock *s)
{
    const rs_model_run *r = &a->r;
    hstu_attn_job j = {&r->ctx->kern, a->ws, a->b, a->m, s->g, rs_param(r, T_RAB_POS, k),
                       r->cfg->time_bias ? rs_param(r, T_RAB_TIME, k) : NULL, NULL, NULL, NULL};
    return j;
}

static void block_fwd(const hstu_args *a, int k, const float *X, float *Y)
{
    const rs_model_run *r = &a->r;
    recsys_ctx *ctx = r->ctx;
    rs_workspace *ws = a->ws;
    const dims *m = &a->m;
    const hblock *s = hblk(ws, k);
    int n = ws->com.n;

    rs_layernorm_fwd(ctx, n, m->d, X, NULL, NULL, NULL, LN_EPS, s->xn, s->m1, s->r1);
    rs_proj_fwd(r, &a->pj.uvqk, k, n, s->xn, m->d, s->g, m->cols);
    rs_silu_fwd(ctx, n, m->cols, s->g, s->sg);

    hstu_attn_job aj = attn_job_of(a, k, s);
    aj.o = s->o;
    rs_pool_run(ctx->pool, ws->com.B * m->h, attn_fwd_task, &aj);

    rs_layernorm_fwd(ctx, n, m->hdv, s->o, NULL, NULL, NULL, LN_EPS, s->zn, s->m2, s->r2);
    rs_mul_fwd(ctx, n, m->hdv, s->g, m->cols, s->zn, s->md); /* U ⊙ LN(O) */
    rs_dropout(ctx, n, m->hdv, s->md, m->hdv, ws->com.p, stream(ws->com.seed, k, S_LIN),
               ws->com.src, s->md);
    rs_proj_fwd(r, &a->pj.o, k, n, s->md, m->hdv, Y, m->d);
    rs_nn_add(ctx, n, m->d, X, Y);
}

static recsys_status hstu_forward(recsys_ctx *ctx, const rs_model_config *c, const float *P,
                                  rs_workspace *ws, const rs_batch *b, float *out)
{
    recsys_status st = rs_model_begin_fwd(ctx, &HSTU_WS, c, P, ws, b, out);
    if (st) return st;
    ws->time_on = c->time_bias && b->times && b->next_times;
    hstu_args a;
    args_init(&a, ctx, c, P, NULL, ws, b);
    rs_model_run_hook(&a.r, b, &ws->com);
    rs_ws_common *w = &ws->com;
    int d = c->dim, n = w->n;
    float *X0 = w->x[0];
    rs_embed_edge_fwd(&a.r, w, X0);
    rs_dropout(ctx, n, d, X0, d, w->p, stream(w->seed, 0, S_EMB), w->src, X0);
    int last_only = !b->train && b->last_scratch; /* serving: see last_block.c */
    for (int k = 0; k < c->blocks - last_only; k++) block_fwd(&a, k, w->x[k], w->x[k + 1]);
    if (last_only) {
        rs_hstu_last_fwd(&a.r, &a.pj.uvqk, &a.pj.o, w->x[c->blocks - 1], n, b->B, w->base, w->len,
                         b, ws->time_on, b->last_scratch, out);
        return RECSYS_OK;
    }
    hstu_out ho = {ws, &ctx->kern, w->x[c->blocks], NULL};
    rs_padded_edge_fwd(ctx, w, out, out_fwd_rows, &ho);
    w->kept = b->train != 0;
    return RECSYS_OK;
}

/* --------------------------------------------------------------- backward */

/* dY: gradient of the block output (kept); dX: written. */
static void block_bwd(const hstu_args *a, int k, const float *X, const float *dY, float *dX)
{
    const rs_model_run *r = &a->r;
    recsys_ctx *ctx = r->ctx;
    rs_workspace *ws = a->ws;
    const dims *m = &a->m;
    const hblock *s = hblk(ws, k);
    int n = ws->com.n;
    uint64_t sd = stream(ws->com.seed, k, S_LIN);

    /* Y = X + Md W_oᵀ + b_o */
    rs_proj_bwd(r, &a->pj.o, k, n, s->md, m->hdv, dY, m->d, ws->tm2, m->hdv, 0);
    rs_dropout(ctx, n, m->hdv, ws->tm2, m->hdv, ws->com.p, sd, ws->com.src, ws->tm2); /* dM */
    rs_mul_bwd(ctx, n, m->hdv, s->g, m->cols, s->zn, ws->tm2, ws->dg, m->cols);
                                                           /* dU -> dg, tm2 = dZn */
    rs_layernorm_bwd(ctx, n, m->hdv, s->o, NULL, NULL, s->m2, s->r2, ws->tm2, ws->tm, NULL, NULL,
                     ws->partial);                         /* tm = dO */

    hstu_attn_job aj = attn_job_of(a, k, s);
    aj.d_o = ws->tm;
    aj.dg = ws->dg;
    int tasks = ws->com.B * m->h;
    rs_pool_run(ctx->pool, tasks, attn_bwd_task, &aj);
    /* Bias gradients: per-task buffers summed in task order. */
    float *grp = rs_grad(r, T_RAB_POS, k);
    float *grt = r->cfg->time_bias ? rs_grad(r, T_RAB_TIME, k) : NULL;
    int nrp = m->n_rab_pos;
    for (int t = 0; t < tasks; t++) {
        const float *rg = ws->rab_grad + (size_t)t * ws->rab_per_task;
        for (int i = 0; i < nrp; i++) grp[i] += rg[i];
        if (grt && ws->time_on)
            for (int i = 0; i < RS_HSTU_TIME_BUCKETS; i++) grt[i] += rg[nrp + i];
    }

    rs_silu_bwd(ctx, n, m->cols, s->sg, s->g, ws->dg);     /* dg = dH */
    rs_proj_bwd(r, &a->pj.uvqk, k, n, s->xn, m->d, ws->dg, m->cols, ws->t3, m->d, 0);
    rs_layernorm_bwd(ctx, n, m->d, X, NULL, NULL, s->m1, s->r1, ws->t3, dX, NULL, NULL,
                     ws->partial);
    rs_nn_add(ctx, n, m->d, dY, dX);
}

static recsys_status hstu_backward(recsys_ctx *ctx, const rs_model_config *c, const float *P,
                                   rs_workspace *ws, const rs_batch *b, const float *d_out,
                                   float *G)
{
    recsys_status st = rs_model_begin_bwd(ctx, &HSTU_WS, c, P, ws, b, d_out, G);
    if (st) return st;
    hstu_args a;
    args_init(&a, ctx, c, P, G, ws, b);
    rs_model_run_hook(&a.r, b, &ws->com);
    rs_ws_common *w = &ws->com;
    int d = c->dim, n = w->n;
    float *dY = ws->t1, *dX = ws->t2;
    hstu_out ho = {ws, &ctx->kern, w->x[c->blocks], dY};
    rs_padded_edge_bwd(ctx, w, d_out, out_bwd_rows, &ho);
    for (int k = c->blocks - 1; k >= 0; k--) {
        block_bwd(&a, k, w->x[k], dY, dX);
        float *tmp = dY;
        dY = dX;
        dX = tmp;
    }
    rs_dropout(ctx, n, d, dY, d, w->p, stream(w->seed, 0, S_EMB), w->src, dY);
    rs_embed_edge_bwd(&a.r, w, dY);
    return RECSYS_OK;
}

static void hstu_extend(recsys_ctx *ctx, const rs_model_config *c, const float *P, float *kv,
                        const int32_t *items, const int64_t *times, int r0, int n,
                        float *scratch, float *out)
{
    rs_tensor_table tab;
    hstu_layout(c, &tab);
    rs_model_run r = {ctx, c, &tab, P, NULL, NULL, NULL, NULL, 0, 1};
    dims m = get_dims(c);
    hstu_projs pj = hstu_projections(&m);
    rs_hstu_extend(&r, &pj.uvqk, &pj.o, kv, items, times, r0, n, scratch, out);
}

const rs_model_ops rs_hstu_ops = {
    .name = "hstu",
    .layout = hstu_layout,
    .n_params = rs_tensors_total,
    .init = hstu_init,
    .ws_new = hstu_ws_new,
    .ws_free = rs_ws_free,
    .forward = hstu_forward,
    .backward = hstu_backward,
    .extend = hstu_extend,
    .tensors = rs_tensors_list,
};
