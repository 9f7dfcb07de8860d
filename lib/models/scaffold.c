/* The shared model scaffolding (scaffold.h): tensor table, projections,
 * workspace, batch checks and the embedding and padded edges. */
#include "models/scaffold.h"

#include "nn/nn.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ tensor table */

void rs_tensors_begin(rs_tensor_table *t, const rs_model_config *c)
{
    size_t d = (size_t)c->dim;
    t->n = 0;
    t->blocks = c->blocks;
    t->off[0] = 0;
    rs_tensors_add(t, "item_emb", ((size_t)c->n_items + 1) * d, 0);
    rs_tensors_add(t, "pos_emb", ((size_t)c->max_len + 1) * d, 0);
}

int rs_tensors_add(rs_tensor_table *t, const char *name, size_t slice_floats, int per_block)
{
    int i = t->n++;
    t->name[i] = name;
    t->slice[i] = slice_floats;
    t->per_block[i] = per_block != 0;
    t->off[i + 1] = t->off[i] + slice_floats * (per_block ? (size_t)t->blocks : 1);
    return i;
}

void rs_tensors_of(const rs_model_config *c, rs_tensor_table *t)
{
    const rs_model_ops *ops = rs_model_ops_for(c->type);
    if (ops && ops->layout) {
        ops->layout(c, t);
        return;
    }
    t->n = 0;
    t->blocks = c->blocks;
    t->off[0] = 0;
}

size_t rs_tensors_total(const rs_model_config *c)
{
    rs_tensor_table t;
    rs_tensors_of(c, &t);
    return t.off[t.n];
}

int rs_tensors_list(const rs_model_config *c, const char **names, size_t *offsets,
                    size_t *sizes)
{
    rs_tensor_table t;
    rs_tensors_of(c, &t);
    int n = 0;
    for (int i = 0; i < t.n; i++) {
        if (t.off[i + 1] == t.off[i]) continue; /* an optional tensor switched off */
        if (names) names[n] = t.name[i];
        if (offsets) offsets[n] = t.off[i];
        if (sizes) sizes[n] = t.off[i + 1] - t.off[i];
        n++;
    }
    return n;
}

/* ------------------------------------------------------------ projections */

void rs_proj_fwd(const rs_model_run *r, const rs_proj *p, int k, int n, const float *x, int ldx,
                 float *y, int ldy)
{
    rs_linear_fwd(r->ctx, n, p->in, p->out, x, ldx, rs_proj_weight(r, p, k),
                  p->bias_fused ? NULL : rs_proj_bias(r, p, k), y, ldy);
    if (r->hook) r->hook->fwd(r->hook, r, p, k, n, x, ldx, y, ldy);
}

void rs_proj_bwd(const rs_model_run *r, const rs_proj *p, int k, int n, const float *x, int ldx,
                 const float *dy, int lddy, float *dx, int lddx, int accumulate_dx)
{
    int frozen = r->hook && r->hook->frozen_base;
    float *dW = frozen ? NULL : rs_grad(r, p->w, k) + (size_t)p->row0 * (size_t)p->in;
    float *db = frozen || p->b < 0 ? NULL : rs_grad(r, p->b, k) + p->row0;
    rs_linear_bwd(r->ctx, n, p->in, p->out, x, ldx, rs_proj_weight(r, p, k), dy, lddy, dx, lddx,
                  accumulate_dx, dW, db, r->partial);
    if (r->hook) r->hook->bwd(r->hook, r, p, k, n, x, ldx, dy, lddy, dx, lddx);
}

/* -------------------------------------------------------------- workspace */

void rs_ws_free(rs_workspace *ws)
{
    if (!ws) return;
    rs_ws_common *w = rs_ws(ws);
    rs_free(w->arena);
    free(w->base);
    free(w->len);
    free(w->src);
    free(w->items);
    free(w->pos);
    free(w->x);
    free(w->blocks);
    free(ws);
}

rs_workspace *rs_ws_new(const rs_model_config *c, int B, const rs_ws_spec *spec)
{
    if (!c || B < 1 || c->max_len < 1 || c->heads < 1 || c->blocks < 1 ||
        (size_t)B > (size_t)INT_MAX / (size_t)c->max_len)
        return NULL;
    rs_workspace *ws = calloc(1, spec->ws_size);
    if (!ws) return NULL;
    rs_ws_common *w = rs_ws(ws);
    w->cfg = *c;
    w->cap_B = B;
    w->R = B * c->max_len;
    w->base = malloc(sizeof(int) * (size_t)B);
    w->len = malloc(sizeof(int) * (size_t)B);
    w->src = malloc(sizeof(int32_t) * (size_t)w->R);
    w->items = malloc(sizeof(int32_t) * (size_t)w->R);
    w->pos = malloc(sizeof(int32_t) * (size_t)w->R);
    w->x = calloc((size_t)c->blocks + 1, sizeof *w->x);
    w->blocks = calloc((size_t)c->blocks, spec->block_size);
    if (!w->base || !w->len || !w->src || !w->items || !w->pos || !w->x || !w->blocks) {
        rs_ws_free(ws);
        return NULL;
    }
    if (spec->prepare) spec->prepare(ws);
    /* One large arena keeps untouched pages (rows past the packed count,
     * per-block buffers at inference) out of the RSS. */
    size_t R = (size_t)w->R, d = (size_t)c->dim;
    rs_plan p = {NULL, 0};
    for (int pass = 0; pass < 2; pass++) {
        p.off = 0;
        for (int k = 0; k <= c->blocks; k++) w->x[k] = rs_plan_floats(&p, R * d);
        spec->plan(ws, &p);
        if (pass == 0) {
            w->arena = p.off <= SIZE_MAX / sizeof(float) ? rs_malloc(p.off * sizeof(float)) : NULL;
            if (!w->arena) {
                rs_ws_free(ws);
                return NULL;
            }
            p.base = w->arena;
        }
    }
    return ws;
}

/* ------------------------------------------------------- batch and edges */

static recsys_status check_batch(recsys_ctx *ctx, const rs_ws_spec *spec,
                                 const rs_model_config *c, rs_workspace *ws, const rs_batch *b)
{
    const char *model = spec->model;
    if (!ws || !b || !b->seq || !b->start)
        return rs_error(ctx, RECSYS_E_INVALID, "%s: NULL workspace or batch", model);
    const rs_ws_common *w = rs_ws(ws);
    if (b->L != c->max_len)
        return rs_error(ctx, RECSYS_E_INVALID, "%s: batch length %d, model max_len %d", model,
                        b->L, c->max_len);
    if (b->B < 0 || b->B > w->cap_B)
        return rs_error(ctx, RECSYS_E_INVALID, "%s: batch of %d rows, workspace holds %d", model,
                        b->B, w->cap_B);
    if (w->cfg.dim != c->dim || w->cfg.blocks != c->blocks || w->cfg.heads != c->heads ||
        w->cfg.max_len != c->max_len || !spec->same_shape(&w->cfg, c))
        return rs_error(ctx, RECSYS_E_INVALID, "%s: workspace made for another config", model);
    return RECSYS_OK;
}

/* Pack the non-pad positions of a left-padded batch: row r's positions
 * [start[r], L) become the packed rows base[r] .. base[r] + len[r] - 1.
 * Position embeddings count from the end of the row (slot t: t + 1) or,
 * with model.positions = start, from its first item (1, 2, ...). */
static recsys_status pack_positions(recsys_ctx *ctx, const char *model, const rs_model_config *c,
                                    const rs_batch *b, rs_ws_common *w)
{
    int L = c->max_len, n = 0;
    for (int r = 0; r < b->B; r++) {
        int s0 = b->start[r];
        if (s0 < 0 || s0 > L)
            return rs_error(ctx, RECSYS_E_INVALID, "%s: row %d starts at %d, not in 0..%d",
                            model, r, s0, L);
        w->base[r] = n;
        w->len[r] = L - s0;
        for (int t = s0; t < L; t++) {
            int32_t it = b->seq[(size_t)r * L + t];
            if (it < 1 || it > c->n_items)
                return rs_error(ctx, RECSYS_E_INVALID,
                                "%s: row %d position %d holds item %d, not in 1..%d", model, r,
                                t, (int)it, c->n_items);
            w->src[n] = (b->row0 + r) * L + t;
            w->items[n] = it;
            w->pos[n] = c->pos_from_start ? t - s0 + 1 : t + 1;
            n++;
        }
    }
    w->n = n;
    return RECSYS_OK;
}

recsys_status rs_model_begin_fwd(recsys_ctx *ctx, const rs_ws_spec *spec,
                                 const rs_model_config *c, const float *P, rs_workspace *ws,
                                 const rs_batch *b, const float *out)
{
    recsys_status st = check_batch(ctx, spec, c, ws, b);
    if (st) return st;
    if (!P || !out)
        return rs_error(ctx, RECSYS_E_INVALID, "%s: NULL params or output", spec->model);
    rs_ws_common *w = rs_ws(ws);
    w->kept = 0;
    st = pack_positions(ctx, spec->model, c, b, w);
    if (st) return st;
    w->B = b->B;
    w->seed = b->seed;
    w->row0 = b->row0;
    w->p = b->train ? c->dropout : 0.0f;
    return RECSYS_OK;
}

recsys_status rs_model_begin_bwd(recsys_ctx *ctx, const rs_ws_spec *spec,
                                 const rs_model_config *c, const float *P, rs_workspace *ws,
                                 const rs_batch *b, const float *d_out, const float *G)
{
    recsys_status st = check_batch(ctx, spec, c, ws, b);
    if (st) return st;
    if (!P || !d_out || !G) return rs_error(ctx, RECSYS_E_INVALID, "%s: NULL argument", spec->model);
    const rs_ws_common *w = rs_ws(ws);
    if (!w->kept || b->B != w->B || b->seed != w->seed)
        return rs_error(ctx, RECSYS_E_STATE,
                        "%s: backward must follow a training forward (train = 1) on the same "
                        "batch", spec->model);
    return RECSYS_OK;
}

void rs_embed_edge_fwd(const rs_model_run *r, const rs_ws_common *w, float *X0)
{
    int d = r->cfg->dim;
    rs_embed_fwd(r->ctx, w->n, d, rs_param(r, RS_T_ITEM, 0), w->items, sqrtf((float)d), 0, X0);
    rs_embed_fwd(r->ctx, w->n, d, rs_param(r, RS_T_POS, 0), w->pos, 1.0f, 1, X0);
}

void rs_embed_edge_bwd(const rs_model_run *r, const rs_ws_common *w, const float *dX0)
{
    int d = r->cfg->dim;
    rs_embed_bwd(r->ctx, w->n, d, w->items, sqrtf((float)d), dX0, rs_grad(r, RS_T_ITEM, 0));
    rs_embed_bwd(r->ctx, w->n, d, w->pos, 1.0f, dX0, rs_grad(r, RS_T_POS, 0));
}

typedef struct padded_edge_job {
    const rs_ws_common *w;
    float *out;
    const float *d_out;
    rs_edge_fn fwd;
    rs_edge_grad_fn bwd;
    void *arg;
} padded_edge_job;

static void padded_fwd_task(void *arg, int row, int thread)
{
    (void)thread;
    const padded_edge_job *j = arg;
    const rs_ws_common *w = j->w;
    int d = w->cfg.dim, L = w->cfg.max_len, n = w->len[row], st = L - n;
    float *o = j->out + (size_t)row * L * d;
    memset(o, 0, sizeof(float) * (size_t)st * d);
    j->fwd(j->arg, row, (size_t)w->base[row], n, o + (size_t)st * d);
}

static void padded_bwd_task(void *arg, int row, int thread)
{
    (void)thread;
    const padded_edge_job *j = arg;
    const rs_ws_common *w = j->w;
    int d = w->cfg.dim, L = w->cfg.max_len, n = w->len[row], st = L - n;
    j->bwd(j->arg, row, (size_t)w->base[row], n, j->d_out + ((size_t)row * L + st) * d);
}

void rs_padded_edge_fwd(recsys_ctx *ctx, const rs_ws_common *w, float *out, rs_edge_fn fn,
                        void *arg)
{
    padded_edge_job j = {w, out, NULL, fn, NULL, arg};
    rs_pool_run(ctx->pool, w->B, padded_fwd_task, &j);
}

void rs_padded_edge_bwd(recsys_ctx *ctx, const rs_ws_common *w, const float *d_out,
                        rs_edge_grad_fn fn, void *arg)
{
    padded_edge_job j = {w, NULL, d_out, NULL, fn, arg};
    rs_pool_run(ctx->pool, w->B, padded_bwd_task, &j);
}
