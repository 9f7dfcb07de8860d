/* Row-sharded tables: fetch, return, gather and scatter (dist/rows.h). */
#include "dist/rows.h"

#include <stdlib.h>
#include <string.h>

void rs_rows_free(rs_rows *f)
{
    free(f->map);
    free(f->stamp);
    free(f->U);
    free(f->scount);
    free(f->rcount);
    free(f->order);
    free(f->send_ids);
    free(f->recv_ids);
    rs_free(f->send_rows);
    rs_free(f->recv_rows);
    memset(f, 0, sizeof *f);
}

recsys_status rs_rows_init(rs_rows *f, rs_dist *d, int n_items, int dim, size_t cap)
{
    memset(f, 0, sizeof *f);
    f->d = d;
    f->n_items = n_items;
    f->dim = dim;
    f->cap = cap;
    size_t n_rows = (size_t)n_items + 1, N = (size_t)d->size;
    rs_dist_share((int64_t)n_rows, d->size, d->rank, &f->lo, &f->hi);
    f->map = malloc(sizeof(int32_t) * n_rows);
    f->stamp = calloc(n_rows, sizeof(uint32_t));
    f->U = malloc(sizeof(int32_t) * (cap + 1));
    f->scount = calloc(N, sizeof(int64_t));
    f->rcount = calloc(N, sizeof(int64_t));
    f->order = malloc(sizeof(size_t) * (cap + 1));
    f->send_ids = malloc(sizeof(int32_t) * (cap + 1));
    f->send_rows = rs_malloc(sizeof(float) * (cap + 1) * (size_t)dim);
    if (!f->map || !f->stamp || !f->U || !f->scount || !f->rcount || !f->order ||
        !f->send_ids || !f->send_rows) {
        rs_rows_free(f);
        return rs_error(d->ctx, RECSYS_E_NOMEM, "out of memory for the item shard");
    }
    return RECSYS_OK;
}

void rs_rows_begin(rs_rows *f)
{
    if (++f->cur == 0) {
        memset(f->stamp, 0, sizeof(uint32_t) * ((size_t)f->n_items + 1));
        f->cur = 1;
    }
    f->n_u = 0;
    rs_rows_id(f, 0); /* padding stays 0 */
}

static int owner(const rs_rows *f, int32_t g)
{
    int64_t n = (int64_t)f->n_items + 1, N = f->d->size, q = n / N, rem = n % N;
    if (g < rem * (q + 1)) return (int)(g / (q + 1));
    return (int)(rem + (g - rem * (q + 1)) / q);
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

static recsys_status grow_recv(rs_rows *f, size_t total)
{
    if (total <= f->cap_recv) return RECSYS_OK;
    size_t cap = total * 2;
    int32_t *ids = realloc(f->recv_ids, sizeof(int32_t) * cap);
    if (!ids) return rs_error(f->d->ctx, RECSYS_E_NOMEM, "out of memory");
    f->recv_ids = ids;
    float *rows = rs_malloc(sizeof(float) * cap * (size_t)f->dim);
    if (!rows) return rs_error(f->d->ctx, RECSYS_E_NOMEM, "out of memory");
    rs_free(f->recv_rows);
    f->recv_rows = rows;
    f->cap_recv = cap;
    return RECSYS_OK;
}

recsys_status rs_rows_get(rs_rows *f, const float *mine, float *table)
{
    rs_dist *D = f->d;
    int N = D->size;
    size_t d = (size_t)f->dim;
    /* Requests grouped by owner, in compact order within each. */
    for (int r = 0; r < N; r++) f->scount[r] = 0;
    for (size_t k = 0; k < f->n_u; k++) f->scount[owner(f, f->U[k])]++;
    size_t at[256], *pat = N <= 256 ? at : malloc(sizeof(size_t) * (size_t)N);
    if (!pat) return rs_error(D->ctx, RECSYS_E_NOMEM, "out of memory");
    for (int r = 0, o = 0; r < N; o += (int)f->scount[r], r++) pat[r] = (size_t)o;
    for (size_t k = 0; k < f->n_u; k++) {
        size_t j = pat[owner(f, f->U[k])]++;
        f->order[j] = k;
        f->send_ids[j] = f->U[k];
    }
    if (pat != at) free(pat);
    /* how many each rank asks me for */
    for (int r = 0; r < N; r++) {
        D->counts[r] = D->counts2[r] = sizeof(int64_t);
        D->displs[r] = D->displs2[r] = (size_t)r * sizeof(int64_t);
    }
    recsys_status st = rs_dist_alltoallv(D, f->scount, D->counts, D->displs, f->rcount,
                                         D->counts2, D->displs2);
    if (st) return st;
    size_t total = layout(N, f->rcount, sizeof(int32_t), D->counts2, D->displs2);
    layout(N, f->scount, sizeof(int32_t), D->counts, D->displs);
    if ((st = grow_recv(f, total))) return st;
    f->n_recv = total;
    st = rs_dist_alltoallv(D, f->send_ids, D->counts, D->displs, f->recv_ids, D->counts2,
                           D->displs2);
    if (st) return st;
    /* Answer with my rows, then receive mine in request order. */
    for (size_t j = 0; j < total; j++)
        memcpy(f->recv_rows + j * d, mine + (size_t)(f->recv_ids[j] - f->lo) * d,
               sizeof(float) * d);
    layout(N, f->rcount, sizeof(float) * d, D->counts2, D->displs2);
    layout(N, f->scount, sizeof(float) * d, D->counts, D->displs);
    st = rs_dist_alltoallv(D, f->recv_rows, D->counts2, D->displs2, f->send_rows, D->counts,
                           D->displs);
    if (st) return st;
    for (size_t j = 0; j < f->n_u; j++)
        memcpy(table + f->order[j] * d, f->send_rows + j * d, sizeof(float) * d);
    return RECSYS_OK;
}

recsys_status rs_rows_put(rs_rows *f, const float *table)
{
    rs_dist *D = f->d;
    int N = D->size;
    size_t d = (size_t)f->dim;
    for (size_t j = 0; j < f->n_u; j++)
        memcpy(f->send_rows + j * d, table + f->order[j] * d, sizeof(float) * d);
    layout(N, f->rcount, sizeof(float) * d, D->counts2, D->displs2);
    layout(N, f->scount, sizeof(float) * d, D->counts, D->displs);
    return rs_dist_alltoallv(D, f->send_rows, D->counts, D->displs, f->recv_rows, D->counts2,
                             D->displs2);
}

/* Rank r's share of the table, in bytes, into (counts[r], displs[r]). */
static void shares(rs_dist *D, int n_items, int dim, size_t *counts, size_t *displs)
{
    for (int r = 0; r < D->size; r++) {
        int64_t lo, hi;
        rs_dist_share((int64_t)n_items + 1, D->size, r, &lo, &hi);
        counts[r] = (size_t)(hi - lo) * (size_t)dim * sizeof(float);
        displs[r] = (size_t)lo * (size_t)dim * sizeof(float);
    }
}

/* A gather (scatter) is an all-to-all in which only the root receives
 * (sends): the collective table has no gatherv. */
recsys_status rs_rows_gather(rs_dist *D, int n_items, int dim, const float *mine, float *full,
                             int root)
{
    int N = D->size;
    float none = 0;
    if (!full) full = &none; /* not the root: receives nothing */
    shares(D, n_items, dim, D->counts2, D->displs2);
    size_t own = D->counts2[D->rank];
    for (int r = 0; r < N; r++) {
        D->counts[r] = r == root ? own : 0;
        D->displs[r] = 0;
        if (D->rank != root) D->counts2[r] = 0;
    }
    return rs_dist_alltoallv(D, mine, D->counts, D->displs, full, D->counts2, D->displs2);
}

recsys_status rs_rows_scatter(rs_dist *D, int n_items, int dim, const float *full, float *mine,
                              int root)
{
    int N = D->size;
    float none = 0;
    if (!full) full = &none; /* not the root: sends nothing */
    shares(D, n_items, dim, D->counts, D->displs);
    size_t own = D->counts[D->rank];
    for (int r = 0; r < N; r++) {
        if (D->rank != root) D->counts[r] = 0;
        D->counts2[r] = r == root ? own : 0;
        D->displs2[r] = 0;
    }
    return rs_dist_alltoallv(D, full, D->counts, D->displs, mine, D->counts2, D->displs2);
}
