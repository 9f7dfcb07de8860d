/* Data-parallel training step: slicing, weighting, gradient exchange
 * (dist/dist_train.h). */
#include "dist/dist_train.h"

#include <stdlib.h>
#include <string.h>

void rs_dist_train_free(rs_dist_train *dt)
{
    if (!dt) return;
    rs_dist_free(&dt->d);
    rs_free(dt->dense);
    rs_free(dt->scratch);
    free(dt->stamp);
    free(dt->stamp2);
    free(dt->ids);
    rs_free(dt->rows);
    free(dt->rids);
    rs_free(dt->rrows);
    free(dt->counts);
    free(dt);
}

recsys_status rs_dist_train_new(recsys_ctx *ctx, const recsys_collective *c,
                                const recsys_model *model, rs_dist_train **out)
{
    *out = NULL;
    rs_dist_train *dt = calloc(1, sizeof *dt);
    if (!dt) return rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
    recsys_status st = rs_dist_init(&dt->d, ctx, c);
    if (st) { free(dt); return st; }
    const rs_model_config *cfg = &model->cfg;
    dt->n_items = cfg->n_items;
    dt->dim = cfg->dim;
    dt->item_off = RS_ITEM_TABLE_OFFSET;
    dt->n_table = ((size_t)cfg->n_items + 1) * (size_t)cfg->dim;
    dt->n_params = model->n_params;
    dt->n_dense = dt->n_params - dt->n_table;
    size_t n_items = (size_t)cfg->n_items + 1;
    dt->dense = rs_malloc(sizeof(float) * (dt->n_dense ? dt->n_dense : 1));
    dt->scratch = rs_malloc(sizeof(float) * rs_dist_sum_scratch(&dt->d, dt->n_dense));
    dt->stamp = calloc(n_items, sizeof *dt->stamp);
    dt->stamp2 = calloc(n_items, sizeof *dt->stamp2);
    dt->counts = calloc((size_t)dt->d.size, sizeof *dt->counts);
    if (!dt->dense || !dt->scratch || !dt->stamp || !dt->stamp2 || !dt->counts) {
        rs_dist_train_free(dt);
        return rs_error(ctx, RECSYS_E_NOMEM, "out of memory for distributed training buffers");
    }
    *out = dt;
    return RECSYS_OK;
}

void rs_dist_train_slice(rs_dist_train *dt, rs_batch *b, int shared_negatives)
{
    int64_t lo, hi;
    rs_dist_share(b->B, dt->d.size, dt->d.rank, &lo, &hi);
    size_t L = (size_t)b->L, o = (size_t)lo * L;
    int64_t g = 0, l = 0;
    for (size_t i = 0; i < (size_t)b->B * L; i++) g += b->pos[i] != 0;
    for (size_t i = o; i < (size_t)hi * L; i++) l += b->pos[i] != 0;
    dt->global_pos = g;
    dt->local_pos = l;
    b->B = (int)(hi - lo);
    b->seq += o;
    b->pos += o;
    if (b->times) b->times += o;
    if (b->next_times) b->next_times += o;
    if (!shared_negatives) b->neg += o * (size_t)b->n_neg;
    b->start += lo;
    b->row0 += (int)lo; /* dropout masks of the global rows */
}

static recsys_status grow(rs_dist_train *dt, size_t need)
{
    if (need <= dt->cap_ids) return RECSYS_OK;
    size_t cap = dt->cap_ids ? dt->cap_ids : 1024;
    while (cap < need) cap *= 2;
    int32_t *ids = realloc(dt->ids, cap * sizeof *ids);
    if (!ids) return rs_error(dt->d.ctx, RECSYS_E_NOMEM, "out of memory");
    dt->ids = ids;
    float *rows = rs_malloc(sizeof(float) * cap * (size_t)dt->dim);
    if (!rows) return rs_error(dt->d.ctx, RECSYS_E_NOMEM, "out of memory");
    rs_free(dt->rows);
    dt->rows = rows;
    dt->cap_ids = cap;
    return RECSYS_OK;
}

static void touch(rs_dist_train *dt, int32_t it)
{
    if (dt->stamp[it] == dt->cur) return;
    dt->stamp[it] = dt->cur;
    dt->ids[dt->n_ids++] = it;
}

static void next_stamp(uint32_t *stamp, uint32_t *cur, size_t n)
{
    if (++*cur == 0) {
        memset(stamp, 0, n * sizeof *stamp);
        *cur = 1;
    }
}

recsys_status rs_dist_train_scale(rs_dist_train *dt, const rs_batch *b, int shared_negatives,
                                  float *dF, float *d_items)
{
    size_t n_items = (size_t)dt->n_items + 1, n = (size_t)b->B * (size_t)b->L;
    size_t R = (size_t)b->n_neg;
    size_t bound = 2 * n + (shared_negatives ? R : n * R);
    recsys_status st = grow(dt, bound < n_items ? bound : n_items);
    if (st) return st;
    next_stamp(dt->stamp, &dt->cur, n_items);
    dt->n_ids = 0;
    for (size_t i = 0; i < n; i++) {
        touch(dt, b->seq[i]);
        if (!b->pos[i]) continue;
        touch(dt, b->pos[i]);
        if (!shared_negatives)
            for (size_t k = 0; k < R; k++) touch(dt, b->neg[i * R + k]);
    }
    if (shared_negatives)
        for (size_t k = 0; k < R; k++) touch(dt, b->neg[k]);
    if (dt->d.size == 1 || dt->local_pos == dt->global_pos) return RECSYS_OK;
    float s = dt->global_pos ? (float)((double)dt->local_pos / (double)dt->global_pos) : 0.0f;
    size_t d = (size_t)dt->dim;
    for (size_t i = 0; i < n * d; i++) dF[i] *= s;
    for (size_t k = 0; k < dt->n_ids; k++) {
        float *row = d_items + (size_t)dt->ids[k] * d;
        for (size_t c = 0; c < d; c++) row[c] *= s;
    }
    return RECSYS_OK;
}

static recsys_status reduce_dense(rs_dist_train *dt, float *grads)
{
    if (dt->d.size == 1) return RECSYS_OK;
    size_t a = dt->item_off, tail = dt->n_params - a - dt->n_table;
    memcpy(dt->dense, grads, a * sizeof(float));
    memcpy(dt->dense + a, grads + a + dt->n_table, tail * sizeof(float));
    recsys_status st = rs_dist_sum_ordered(&dt->d, dt->dense, dt->n_dense, dt->scratch);
    if (st) return st;
    memcpy(grads, dt->dense, a * sizeof(float));
    memcpy(grads + a + dt->n_table, dt->dense + a, tail * sizeof(float));
    return RECSYS_OK;
}

static recsys_status reduce_rows(rs_dist_train *dt, float *d_items)
{
    rs_dist *d = &dt->d;
    size_t dim = (size_t)dt->dim, n_items = (size_t)dt->n_items + 1;
    for (size_t k = 0; k < dt->n_ids; k++)
        memcpy(dt->rows + k * dim, d_items + (size_t)dt->ids[k] * dim, dim * sizeof(float));
    int64_t mine = (int64_t)dt->n_ids;
    recsys_status st = rs_dist_allgather(d, &mine, sizeof mine, dt->counts);
    if (st) return st;
    size_t total = 0;
    for (int r = 0; r < d->size; r++) {
        d->counts[r] = (size_t)dt->counts[r] * sizeof(int32_t);
        d->displs[r] = total * sizeof(int32_t);
        d->counts2[r] = (size_t)dt->counts[r] * dim * sizeof(float);
        d->displs2[r] = total * dim * sizeof(float);
        total += (size_t)dt->counts[r];
    }
    if (total > dt->cap_r) {
        size_t cap = total * 2;
        int32_t *ids = realloc(dt->rids, cap * sizeof *ids);
        if (!ids) return rs_error(d->ctx, RECSYS_E_NOMEM, "out of memory");
        dt->rids = ids;
        float *rows = rs_malloc(sizeof(float) * cap * dim);
        if (!rows) return rs_error(d->ctx, RECSYS_E_NOMEM, "out of memory");
        rs_free(dt->rrows);
        dt->rrows = rows;
        dt->cap_r = cap;
    }
    st = rs_dist_allgatherv(d, dt->ids, dt->n_ids * sizeof(int32_t), dt->rids, d->counts,
                            d->displs);
    if (!st)
        st = rs_dist_allgatherv(d, dt->rows, dt->n_ids * dim * sizeof(float), dt->rrows,
                                d->counts2, d->displs2);
    if (st) return st;
    /* Each touched row <- rank 0's term (+ rank 1's ...), in rank order. */
    next_stamp(dt->stamp2, &dt->cur2, n_items);
    for (size_t k = 0; k < total; k++) {
        int32_t it = dt->rids[k];
        float *row = d_items + (size_t)it * dim;
        const float *x = dt->rrows + k * dim;
        if (dt->stamp2[it] != dt->cur2) {
            dt->stamp2[it] = dt->cur2;
            memcpy(row, x, dim * sizeof(float));
        } else {
            for (size_t c = 0; c < dim; c++) row[c] += x[c];
        }
    }
    return RECSYS_OK;
}

recsys_status rs_dist_train_agree(rs_dist_train *dt, recsys_status local, double *loss)
{
    /* Every rank's status and weighted loss: a rank that failed locally
     * (NaN, ...) makes all ranks fail here, never leaves them waiting in
     * the gradient exchange. */
    rs_dist *d = &dt->d;
    double mine[2] = {local ? (double)local : 0.0, local ? 0.0 : *loss * (double)dt->local_pos};
    double stack[64], *all = stack;
    if ((size_t)d->size * 2 > 64 && !(all = malloc(sizeof(double) * 2 * (size_t)d->size)))
        return rs_error(d->ctx, RECSYS_E_NOMEM, "out of memory");
    recsys_status st = rs_dist_allgather(d, mine, sizeof mine, all);
    double sum = 0;
    for (int r = 0; r < d->size && !st; r++) {
        if (all[2 * r] != 0.0) {
            st = (recsys_status)all[2 * r];
            if (r != d->rank)
                rs_error(d->ctx, st, "rank %d of %d failed (%s) in training step %lld", r,
                         d->size, recsys_status_str(st), (long long)dt->steps + 1);
        }
        sum += all[2 * r + 1];
    }
    if (all != stack) free(all);
    if (local) return local;
    if (st) return st;
    if (d->size > 1) *loss = dt->global_pos ? sum / (double)dt->global_pos : 0.0;
    return RECSYS_OK;
}

recsys_status rs_dist_train_reduce(rs_dist_train *dt, recsys_status local, float *grads,
                                   double *loss)
{
    recsys_status st = rs_dist_train_agree(dt, local, loss);
    if (!st) st = reduce_dense(dt, grads);
    if (!st) st = reduce_rows(dt, grads + dt->item_off);
    if (!st) dt->steps++;
    return st;
}
