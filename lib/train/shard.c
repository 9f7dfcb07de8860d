/* Row-sharded item table: fetch, gradient exchange, shard optimiser
 * (train/shard.h). */
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
    free(s->map);
    free(s->stamp);
    free(s->U);
    free(s->scount);
    free(s->rcount);
    free(s->order);
    free(s->send_ids);
    free(s->recv_ids);
    rs_free(s->send_rows);
    rs_free(s->recv_rows);
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
    size_t own = (size_t)(s->hi - s->lo) * d;
    s->W = rs_calloc(n_work, sizeof(float));
    s->G = rs_calloc(n_work, sizeof(float));
    s->rows = model->params + (size_t)s->lo * d; /* the model's own rows are the shard's */
    s->grads = rs_calloc(own ? own : 1, sizeof(float));
    recsys_status a1 = adam_like(&s->adam_dense, settings, s->n_dense);
    recsys_status a2 = adam_like(&s->adam_rows, settings, own);
    s->map = malloc(sizeof(int32_t) * n_rows);
    s->stamp = calloc(n_rows, sizeof(uint32_t));
    s->U = malloc(sizeof(int32_t) * (s->cap + 1));
    s->scount = calloc((size_t)N, sizeof(int64_t));
    s->rcount = calloc((size_t)N, sizeof(int64_t));
    s->order = malloc(sizeof(size_t) * (s->cap + 1));
    s->send_ids = malloc(sizeof(int32_t) * (s->cap + 1));
    s->send_rows = rs_malloc(sizeof(float) * (s->cap + 1) * d);
    if (softmax) s->ssm = rs_ssm_workspace_new((int)s->cap, c->dim, (int)n_pos, n_neg);
    if (!s->W || !s->G || !s->grads || a1 || a2 || !s->map || !s->stamp || !s->U ||
        !s->scount || !s->rcount || !s->order || !s->send_ids || !s->send_rows ||
        (softmax && !s->ssm)) {
        rs_shard_free(s);
        return rs_error(ctx, RECSYS_E_NOMEM, "out of memory for the item shard");
    }
    memcpy(s->W + (s->cap + 1) * d, model->params + n_rows * d, sizeof(float) * s->n_dense);
    *out = s;
    return RECSYS_OK;
}

static int owner(const rs_shard *s, int32_t g)
{
    int64_t n = (int64_t)s->n_items + 1, N = s->dt->d.size, q = n / N, rem = n % N;
    if (g < rem * (q + 1)) return (int)(g / (q + 1));
    return (int)(rem + (g - rem * (q + 1)) / q);
}

static int32_t compact(rs_shard *s, int32_t g)
{
    if (s->stamp[g] != s->cur) {
        s->stamp[g] = s->cur;
        s->map[g] = (int32_t)s->n_u;
        s->U[s->n_u++] = g;
    }
    return s->map[g];
}

/* Byte counts/displacements of per-rank element counts n[r] of `each` bytes. */
static size_t layout(int N, const int64_t *n, size_t each, size_t *counts, size_t *displs)
{
    size_t o = 0;
    for (int r = 0; r < N; r++) {
        counts[r] = (size_t)n[r] * each;
        displs[r] = o * each;
        o += (size_t)n[r];
    }
    return o;
}

static recsys_status grow_recv(rs_shard *s, size_t total)
{
    if (total <= s->cap_recv) return RECSYS_OK;
    size_t cap = total * 2;
    int32_t *ids = realloc(s->recv_ids, sizeof(int32_t) * cap);
    if (!ids) return rs_error(s->dt->d.ctx, RECSYS_E_NOMEM, "out of memory");
    s->recv_ids = ids;
    float *rows = rs_malloc(sizeof(float) * cap * (size_t)s->dim);
    if (!rows) return rs_error(s->dt->d.ctx, RECSYS_E_NOMEM, "out of memory");
    rs_free(s->recv_rows);
    s->recv_rows = rows;
    s->cap_recv = cap;
    return RECSYS_OK;
}

recsys_status rs_shard_begin(rs_shard *s, rs_batch *b, int shared_negatives)
{
    rs_dist *D = &s->dt->d;
    int N = D->size;
    size_t d = (size_t)s->dim, n = (size_t)b->B * (size_t)b->L, R = (size_t)b->n_neg;
    size_t n_rows = (size_t)s->n_items + 1;
    if (++s->cur == 0) {
        memset(s->stamp, 0, sizeof(uint32_t) * n_rows);
        s->cur = 1;
    }
    s->n_u = 0;
    compact(s, 0); /* padding stays 0 */
    /* The trainer's own batch buffers: rewritten to compact ids. */
    int32_t *seq = (int32_t *)b->seq, *pos = (int32_t *)b->pos, *neg = (int32_t *)b->neg;
    for (size_t i = 0; i < n; i++) {
        seq[i] = compact(s, seq[i]);
        pos[i] = compact(s, pos[i]);
    }
    size_t n_neg = shared_negatives ? R : n * R;
    for (size_t i = 0; i < n_neg; i++) neg[i] = compact(s, neg[i]);
    memset(s->G, 0, sizeof(float) * ((s->cap + 1) * d + s->n_dense));
    /* Requests grouped by owner, in compact order within each. */
    for (int r = 0; r < N; r++) s->scount[r] = 0;
    for (size_t k = 0; k < s->n_u; k++) s->scount[owner(s, s->U[k])]++;
    size_t at[256], *pat = N <= 256 ? at : malloc(sizeof(size_t) * (size_t)N);
    if (!pat) return rs_error(D->ctx, RECSYS_E_NOMEM, "out of memory");
    for (int r = 0, o = 0; r < N; o += (int)s->scount[r], r++) pat[r] = (size_t)o;
    for (size_t k = 0; k < s->n_u; k++) {
        size_t j = pat[owner(s, s->U[k])]++;
        s->order[j] = k;
        s->send_ids[j] = s->U[k];
    }
    if (pat != at) free(pat);
    /* how many each rank asks me for */
    for (int r = 0; r < N; r++) {
        D->counts[r] = D->counts2[r] = sizeof(int64_t);
        D->displs[r] = D->displs2[r] = (size_t)r * sizeof(int64_t);
    }
    recsys_status st = rs_dist_alltoallv(D, s->scount, D->counts, D->displs, s->rcount,
                                         D->counts2, D->displs2);
    if (st) return st;
    size_t total = layout(N, s->rcount, sizeof(int32_t), D->counts2, D->displs2);
    layout(N, s->scount, sizeof(int32_t), D->counts, D->displs);
    if ((st = grow_recv(s, total))) return st;
    st = rs_dist_alltoallv(D, s->send_ids, D->counts, D->displs, s->recv_ids, D->counts2,
                           D->displs2);
    if (st) return st;
    /* Answer with my rows, then receive mine in request order. */
    for (size_t j = 0; j < total; j++)
        memcpy(s->recv_rows + j * d, s->rows + (size_t)(s->recv_ids[j] - s->lo) * d,
               sizeof(float) * d);
    layout(N, s->rcount, sizeof(float) * d, D->counts2, D->displs2);
    layout(N, s->scount, sizeof(float) * d, D->counts, D->displs);
    st = rs_dist_alltoallv(D, s->recv_rows, D->counts2, D->displs2, s->send_rows, D->counts,
                           D->displs);
    if (st) return st;
    for (size_t j = 0; j < s->n_u; j++)
        memcpy(s->W + s->order[j] * d, s->send_rows + j * d, sizeof(float) * d);
    return RECSYS_OK;
}

recsys_status rs_shard_end(rs_shard *s, recsys_ctx *ctx, recsys_status local, double *loss)
{
    rs_dist_train *dt = s->dt;
    rs_dist *D = &dt->d;
    int N = D->size;
    size_t d = (size_t)s->dim;
    recsys_status st = rs_dist_train_agree(dt, local, loss);
    if (st) return st;
    float *Gd = s->G + (s->cap + 1) * d;
    if ((st = rs_dist_sum_ordered(D, Gd, s->n_dense, dt->scratch))) return st;
    /* Gradient rows to their owners, in the order of the fetch. */
    for (size_t j = 0; j < s->n_u; j++)
        memcpy(s->send_rows + j * d, s->G + s->order[j] * d, sizeof(float) * d);
    size_t total = layout(N, s->rcount, sizeof(float) * d, D->counts2, D->displs2);
    layout(N, s->scount, sizeof(float) * d, D->counts, D->displs);
    st = rs_dist_alltoallv(D, s->send_rows, D->counts, D->displs, s->recv_rows, D->counts2,
                           D->displs2);
    if (st) return st;
    /* Sum in rank order: the first contribution is copied, later ones added. */
    size_t own = (size_t)(s->hi - s->lo) * d;
    memset(s->grads, 0, sizeof(float) * own);
    if (++dt->cur2 == 0) {
        memset(dt->stamp2, 0, sizeof(uint32_t) * ((size_t)s->n_items + 1));
        dt->cur2 = 1;
    }
    for (size_t j = 0; j < total; j++) {
        int32_t g = s->recv_ids[j];
        float *row = s->grads + (size_t)(g - s->lo) * d;
        const float *x = s->recv_rows + j * d;
        if (dt->stamp2[g] != dt->cur2) {
            dt->stamp2[g] = dt->cur2;
            memcpy(row, x, sizeof(float) * d);
        } else {
            for (size_t c = 0; c < d; c++) row[c] += x[c];
        }
    }
    rs_adam_step(ctx, &s->adam_dense, s->W + (s->cap + 1) * d, Gd);
    rs_adam_step(ctx, &s->adam_rows, s->rows, s->grads);
    dt->steps++;
    return RECSYS_OK;
}

recsys_status rs_shard_sync_model(rs_shard *s, recsys_model *model)
{
    rs_dist *D = &s->dt->d;
    size_t d = (size_t)s->dim, n_rows = (size_t)s->n_items + 1;
    for (int r = 0; r < D->size; r++) {
        int64_t lo, hi;
        rs_dist_share((int64_t)n_rows, D->size, r, &lo, &hi);
        D->counts[r] = (size_t)(hi - lo) * d * sizeof(float);
        D->displs[r] = (size_t)lo * d * sizeof(float);
    }
    /* in place: this rank's part already sits in model->params */
    recsys_status st = rs_dist_allgatherv(D, s->rows, D->counts[D->rank], model->params,
                                          D->counts, D->displs);
    if (st) return st;
    memcpy(model->params + n_rows * d, s->W + (s->cap + 1) * d, sizeof(float) * s->n_dense);
    return RECSYS_OK;
}

recsys_status rs_shard_gather_state(rs_shard *s, float *m, float *v, size_t item_off)
{
    (void)item_off;
    rs_dist *D = &s->dt->d;
    size_t d = (size_t)s->dim, n_rows = (size_t)s->n_items + 1;
    for (int r = 0; r < D->size; r++) {
        int64_t lo, hi;
        rs_dist_share((int64_t)n_rows, D->size, r, &lo, &hi);
        D->counts[r] = (size_t)(hi - lo) * d * sizeof(float);
        D->displs[r] = (size_t)lo * d * sizeof(float);
    }
    size_t mine = D->counts[D->rank];
    recsys_status st = rs_dist_allgatherv(D, s->adam_rows.m, mine, m, D->counts, D->displs);
    if (!st) st = rs_dist_allgatherv(D, s->adam_rows.v, mine, v, D->counts, D->displs);
    if (st) return st;
    memcpy(m + n_rows * d, s->adam_dense.m, sizeof(float) * s->n_dense);
    memcpy(v + n_rows * d, s->adam_dense.v, sizeof(float) * s->n_dense);
    return RECSYS_OK;
}

void rs_shard_scatter_state(rs_shard *s, const recsys_model *model, const float *m,
                            const float *v)
{
    size_t d = (size_t)s->dim, n_rows = (size_t)s->n_items + 1;
    size_t own = (size_t)(s->hi - s->lo) * d, o = (size_t)s->lo * d;
    memcpy(s->adam_rows.m, m + o, sizeof(float) * own);
    memcpy(s->adam_rows.v, v + o, sizeof(float) * own);
    memcpy(s->W + (s->cap + 1) * d, model->params + n_rows * d, sizeof(float) * s->n_dense);
    memcpy(s->adam_dense.m, m + n_rows * d, sizeof(float) * s->n_dense);
    memcpy(s->adam_dense.v, v + n_rows * d, sizeof(float) * s->n_dense);
}
