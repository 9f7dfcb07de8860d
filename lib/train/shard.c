/* Row-sharded item table: the split model, the step's fetch and gradient
 * exchange, the shard optimiser, checkpoints (train/shard.h). */
#include "train/shard.h"

#include <stdlib.h>
#include <string.h>

void rs_shard_free(rs_shard *s)
{
    if (!s) return;
    rs_free(s->W);
    rs_free(s->G);
    rs_free(s->grads);
    rs_adam_free(&s->adam_dense);
    rs_adam_free(&s->adam_rows);
    rs_ssm_workspace_free(s->ssm);
    rs_rows_free(&s->f);
    free(s);
}

static recsys_status adam_like(rs_adam *a, const rs_adam *settings, size_t n)
{
    *a = *settings;
    a->n = n;
    a->m = rs_calloc(n ? n : 1, sizeof(float));
    a->v = rs_calloc(n ? n : 1, sizeof(float));
    return a->m && a->v ? RECSYS_OK : RECSYS_E_NOMEM;
}

static size_t own_floats(const rs_shard *s) { return (size_t)(s->hi - s->lo) * (size_t)s->dim; }

/* The model keeps its rows [lo, hi) and the dense part. */
static recsys_status split(rs_shard *s, recsys_ctx *ctx, recsys_model *m)
{
    size_t d = (size_t)s->dim, own = own_floats(s), table = ((size_t)s->n_items + 1) * d;
    float *p = rs_malloc(sizeof(float) * (own + s->n_dense ? own + s->n_dense : 1));
    if (!p) return rs_error(ctx, RECSYS_E_NOMEM, "out of memory for the item shard");
    memcpy(p, m->params + (size_t)s->lo * d, sizeof(float) * own);
    memcpy(p + own, m->params + table, sizeof(float) * s->n_dense);
    rs_free(m->params);
    m->params = p;
    m->rows_lo = s->lo;
    m->rows_hi = s->hi;
    m->sharded = 1;
    return RECSYS_OK;
}

recsys_status rs_shard_new(rs_dist_train *dt, recsys_ctx *ctx, recsys_model *model,
                           const rs_adam *settings, int batch_rows, int n_neg,
                           int shared_negatives, int softmax, rs_shard **out)
{
    *out = NULL;
    rs_shard *s = calloc(1, sizeof *s);
    if (!s) return rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
    int N = dt->d.size;
    const rs_model_config *c = &model->cfg;
    s->dt = dt;
    s->model = model;
    s->dim = c->dim;
    s->n_items = c->n_items;
    size_t d = (size_t)c->dim, n_rows = (size_t)c->n_items + 1;
    rs_dist_share((int64_t)n_rows, N, dt->d.rank, &s->lo, &s->hi);
    size_t local_rows = ((size_t)batch_rows + (size_t)N - 1) / (size_t)N;
    size_t n_pos = local_rows * (size_t)c->max_len;
    size_t bound = 2 * n_pos + (shared_negatives ? (size_t)n_neg : n_pos * (size_t)n_neg);
    s->cap = bound < (size_t)c->n_items ? bound : (size_t)c->n_items;
    s->cfg = *c;
    s->cfg.n_items = (int)s->cap;
    s->n_dense = model->n_params - n_rows * d;
    size_t n_work = (s->cap + 1) * d + s->n_dense;
    if (model->ops->n_params(&s->cfg) != n_work) {
        free(s);
        return rs_error(ctx, RECSYS_E_INTERNAL,
                        "dist.shard_items: the dense parameters depend on the catalogue size");
    }
    size_t own = own_floats(s);
    /* Split first: the whole table goes before the shard's state comes. */
    recsys_status st = split(s, ctx, model);
    if (st) {
        free(s);
        return st;
    }
    s->W = rs_calloc(n_work, sizeof(float));
    s->G = rs_calloc(n_work, sizeof(float));
    s->grads = rs_calloc(own ? own : 1, sizeof(float));
    recsys_status a1 = adam_like(&s->adam_dense, settings, s->n_dense);
    recsys_status a2 = adam_like(&s->adam_rows, settings, own);
    recsys_status fs = rs_rows_init(&s->f, &dt->d, c->n_items, c->dim, s->cap);
    if (softmax) s->ssm = rs_ssm_workspace_new((int)s->cap, c->dim, (int)n_pos, n_neg);
    if (!s->W || !s->G || !s->grads || a1 || a2 || fs || (softmax && !s->ssm)) {
        rs_shard_free(s);
        return rs_error(ctx, RECSYS_E_NOMEM, "out of memory for the item shard");
    }
    memcpy(s->W + (s->cap + 1) * d, model->params + own, sizeof(float) * s->n_dense);
    *out = s;
    return RECSYS_OK;
}

recsys_status rs_shard_begin(rs_shard *s, rs_batch *b, int shared_negatives)
{
    size_t d = (size_t)s->dim, n = (size_t)b->B * (size_t)b->L, R = (size_t)b->n_neg;
    rs_rows_begin(&s->f);
    /* The trainer's own batch buffers: rewritten to compact ids. */
    int32_t *seq = (int32_t *)b->seq, *pos = (int32_t *)b->pos, *neg = (int32_t *)b->neg;
    for (size_t i = 0; i < n; i++) {
        seq[i] = rs_rows_id(&s->f, seq[i]);
        pos[i] = rs_rows_id(&s->f, pos[i]);
    }
    size_t n_neg = shared_negatives ? R : n * R;
    for (size_t i = 0; i < n_neg; i++) neg[i] = rs_rows_id(&s->f, neg[i]);
    memset(s->G, 0, sizeof(float) * ((s->cap + 1) * d + s->n_dense));
    return rs_rows_get(&s->f, s->model->params, s->W);
}

recsys_status rs_shard_end(rs_shard *s, recsys_ctx *ctx, recsys_status local, double *loss)
{
    rs_dist_train *dt = s->dt;
    rs_dist *D = &dt->d;
    size_t d = (size_t)s->dim;
    recsys_status st = rs_dist_train_agree(dt, local, loss);
    if (st) return st;
    float *Gd = s->G + (s->cap + 1) * d;
    if ((st = rs_dist_sum_ordered(D, Gd, s->n_dense, dt->scratch))) return st;
    /* Gradient rows to their owners, in the order of the fetch. */
    if ((st = rs_rows_put(&s->f, s->G))) return st;
    /* Sum in rank order: the first contribution is copied, later ones added. */
    memset(s->grads, 0, sizeof(float) * own_floats(s));
    if (++dt->cur2 == 0) {
        memset(dt->stamp2, 0, sizeof(uint32_t) * ((size_t)s->n_items + 1));
        dt->cur2 = 1;
    }
    for (size_t j = 0; j < s->f.n_recv; j++) {
        int32_t g = s->f.recv_ids[j];
        float *row = s->grads + (size_t)(g - s->lo) * d;
        const float *x = s->f.recv_rows + j * d;
        if (dt->stamp2[g] != dt->cur2) {
            dt->stamp2[g] = dt->cur2;
            memcpy(row, x, sizeof(float) * d);
        } else {
            for (size_t c = 0; c < d; c++) row[c] += x[c];
        }
    }
    rs_adam_step(ctx, &s->adam_dense, s->W + (s->cap + 1) * d, Gd);
    rs_adam_step(ctx, &s->adam_rows, s->model->params, s->grads);
    dt->steps++;
    return RECSYS_OK;
}

void rs_shard_sync_model(rs_shard *s)
{
    size_t d = (size_t)s->dim;
    memcpy(s->model->params + own_floats(s), s->W + (s->cap + 1) * d,
           sizeof(float) * s->n_dense);
}

recsys_status rs_shard_unsplit(rs_shard *s)
{
    rs_dist *D = &s->dt->d;
    recsys_model *m = s->model;
    size_t d = (size_t)s->dim, table = ((size_t)s->n_items + 1) * d, own = own_floats(s);
    rs_shard_sync_model(s);
    float *p = rs_malloc(sizeof(float) * (m->n_params ? m->n_params : 1));
    recsys_status st = rs_dist_agree(
        D, p ? RECSYS_OK : rs_error(D->ctx, RECSYS_E_NOMEM, "out of memory for the model"));
    for (int r = 0; !st && r < D->size; r++) {
        int64_t lo, hi;
        rs_dist_share((int64_t)s->n_items + 1, D->size, r, &lo, &hi);
        D->counts[r] = (size_t)(hi - lo) * d * sizeof(float);
        D->displs[r] = (size_t)lo * d * sizeof(float);
    }
    if (!st) st = rs_dist_allgatherv(D, m->params, own * sizeof(float), p, D->counts, D->displs);
    if (st) {
        rs_free(p);
        return st;
    }
    memcpy(p + table, m->params + own, sizeof(float) * s->n_dense);
    rs_free(m->params);
    m->params = p;
    m->sharded = 0;
    m->rows_lo = m->rows_hi = 0;
    return RECSYS_OK;
}

/* ---------------------------------------------------------- checkpoints */

/* Whole-size weights and moments, allocated on rank 0 only. */
typedef struct whole {
    float *p, *m, *v;
} whole;

static recsys_status whole_new(rs_shard *s, whole *w)
{
    rs_dist *D = &s->dt->d;
    size_t n = s->model->n_params ? s->model->n_params : 1;
    *w = (whole){0};
    recsys_status st = RECSYS_OK;
    if (D->rank == 0) {
        w->p = rs_malloc(sizeof(float) * n);
        w->m = rs_malloc(sizeof(float) * n);
        w->v = rs_malloc(sizeof(float) * n);
        if (!w->p || !w->m || !w->v)
            st = rs_error(D->ctx, RECSYS_E_NOMEM, "out of memory for a checkpoint on rank 0");
    }
    return rs_dist_agree(D, st);
}

static void whole_free(whole *w)
{
    rs_free(w->p);
    rs_free(w->m);
    rs_free(w->v);
}

/* On rank 0, the model is whole while fn runs (its params swapped). */
static recsys_status with_whole_model(rs_shard *s, float *p,
                                      recsys_status (*fn)(void *), void *arg)
{
    recsys_model *m = s->model;
    float *mine = m->params;
    m->params = p;
    m->sharded = 0;
    recsys_status st = fn(arg);
    m->params = mine;
    m->sharded = 1;
    return st;
}

typedef struct ck_call {
    recsys_ctx *ctx;
    recsys_model *model;
    const char *path;
    rs_train_state *st;
} ck_call;

static recsys_status save_call(void *a)
{
    ck_call *c = a;
    return rs_checkpoint_save_train(c->ctx, c->model, c->path, c->st);
}

static recsys_status load_call(void *a)
{
    ck_call *c = a;
    return rs_checkpoint_load_train(c->ctx, c->path, c->model, c->st);
}

recsys_status rs_shard_save(rs_shard *s, recsys_ctx *ctx, const char *path, rs_train_state *ts)
{
    rs_dist *D = &s->dt->d;
    rs_dist_set_ctx(D, ctx);
    size_t d = (size_t)s->dim, table = ((size_t)s->n_items + 1) * d, own = own_floats(s);
    int n = s->n_items, dim = s->dim;
    whole w;
    recsys_status st = whole_new(s, &w);
    if (st) return st;
    rs_shard_sync_model(s);
    st = rs_rows_gather(D, n, dim, s->model->params, w.p, 0);
    if (!st) st = rs_rows_gather(D, n, dim, s->adam_rows.m, w.m, 0);
    if (!st) st = rs_rows_gather(D, n, dim, s->adam_rows.v, w.v, 0);
    if (st) {
        whole_free(&w);
        return st;
    }
    if (D->rank == 0) {
        memcpy(w.p + table, s->model->params + own, sizeof(float) * s->n_dense);
        memcpy(w.m + table, s->adam_dense.m, sizeof(float) * s->n_dense);
        memcpy(w.v + table, s->adam_dense.v, sizeof(float) * s->n_dense);
        ts->m = w.m;
        ts->v = w.v;
        ts->step = s->adam_rows.step;
        ck_call c = {ctx, s->model, path, ts};
        st = with_whole_model(s, w.p, save_call, &c);
    }
    whole_free(&w);
    ts->m = ts->v = NULL;
    return rs_dist_agree(D, st);
}

recsys_status rs_shard_resume(rs_shard *s, recsys_ctx *ctx, const char *path,
                              rs_train_state *ts)
{
    rs_dist *D = &s->dt->d;
    rs_dist_set_ctx(D, ctx);
    size_t d = (size_t)s->dim, table = ((size_t)s->n_items + 1) * d, own = own_floats(s);
    int n = s->n_items, dim = s->dim;
    whole w;
    recsys_status st = whole_new(s, &w);
    if (st) return st;
    if (D->rank == 0) {
        ts->m = w.m;
        ts->v = w.v;
        ck_call c = {ctx, s->model, path, ts};
        st = with_whole_model(s, w.p, load_call, &c);
        ts->m = ts->v = NULL;
    }
    st = rs_dist_agree(D, st);
    if (!st) st = rs_dist_sync_state(s->dt, s->model->n_params, ts);
    if (!st) st = rs_rows_scatter(D, n, dim, w.p, s->model->params, 0);
    if (!st) st = rs_rows_scatter(D, n, dim, w.m, s->adam_rows.m, 0);
    if (!st) st = rs_rows_scatter(D, n, dim, w.v, s->adam_rows.v, 0);
    float *dense = s->model->params + own;
    if (!st && D->rank == 0) {
        memcpy(dense, w.p + table, sizeof(float) * s->n_dense);
        memcpy(s->adam_dense.m, w.m + table, sizeof(float) * s->n_dense);
        memcpy(s->adam_dense.v, w.v + table, sizeof(float) * s->n_dense);
    }
    size_t bytes = sizeof(float) * s->n_dense;
    if (!st) st = rs_dist_bcast(D, dense, bytes, 0);
    if (!st) st = rs_dist_bcast(D, s->adam_dense.m, bytes, 0);
    if (!st) st = rs_dist_bcast(D, s->adam_dense.v, bytes, 0);
    whole_free(&w);
    if (st) return st;
    memcpy(s->W + (s->cap + 1) * d, dense, bytes);
    s->adam_rows.step = s->adam_dense.step = ts->step;
    return RECSYS_OK;
}
