/* Checked, counted wrappers around the caller's collective table and the
 * rank-ordered dense sum (dist/dist.h). */
#include "dist/dist.h"

#include <stdlib.h>
#include <string.h>

recsys_status rs_dist_init(rs_dist *d, recsys_ctx *ctx, const recsys_collective *c)
{
    memset(d, 0, sizeof *d);
    d->ctx = ctx;
    if (!c || c->struct_size < (int)sizeof *c)
        return rs_error(ctx, RECSYS_E_INVALID,
                        "recsys_collective: struct_size %d, expected %d (newer header?)",
                        c ? c->struct_size : 0, (int)sizeof *c);
    if (!c->rank || !c->size || !c->allreduce_f32 || !c->allgather || !c->allgatherv ||
        !c->alltoallv || !c->broadcast || !c->barrier)
        return rs_error(ctx, RECSYS_E_INVALID, "recsys_collective: an operation is NULL");
    d->c = *c;
    d->rank = c->rank(c->user_data);
    d->size = c->size(c->user_data);
    if (d->size < 1 || d->rank < 0 || d->rank >= d->size)
        return rs_error(ctx, RECSYS_E_INVALID, "recsys_collective: rank %d of size %d", d->rank,
                        d->size);
    size_t n = (size_t)d->size;
    d->counts = calloc(n, sizeof *d->counts);
    d->displs = calloc(n, sizeof *d->displs);
    d->counts2 = calloc(n, sizeof *d->counts2);
    d->displs2 = calloc(n, sizeof *d->displs2);
    if (!d->counts || !d->displs || !d->counts2 || !d->displs2) {
        rs_dist_free(d);
        return rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
    }
    return RECSYS_OK;
}

void rs_dist_free(rs_dist *d)
{
    if (!d) return;
    free(d->counts);
    free(d->displs);
    free(d->counts2);
    free(d->displs2);
    d->counts = d->displs = d->counts2 = d->displs2 = NULL;
}

static recsys_status comm_fail(rs_dist *d, const char *op, int rc)
{
    const char *m = d->c.errmsg ? d->c.errmsg(d->c.user_data) : NULL;
    return rs_error(d->ctx, RECSYS_E_IO, "collective %s failed on rank %d of %d (code %d)%s%s",
                    op, d->rank, d->size, rc, m && *m ? ": " : "", m && *m ? m : "");
}

#define RUN(d, name, bytes, call)                                            \
    do {                                                                      \
        double t0_ = rs_now();                                                \
        int rc_ = (call);                                                     \
        (d)->seconds += rs_now() - t0_;                                       \
        (d)->calls++;                                                         \
        (d)->bytes_sent += (double)(bytes);                                   \
        if (rc_) return comm_fail((d), (name), rc_);                          \
    } while (0)

recsys_status rs_dist_allgather(rs_dist *d, const void *send, size_t bytes, void *recv)
{
    RUN(d, "allgather", (double)bytes * (d->size - 1),
        d->c.allgather(d->c.user_data, send, bytes, recv));
    return RECSYS_OK;
}

recsys_status rs_dist_allgatherv(rs_dist *d, const void *send, size_t bytes, void *recv,
                                 const size_t *counts, const size_t *displs)
{
    RUN(d, "allgatherv", (double)bytes * (d->size - 1),
        d->c.allgatherv(d->c.user_data, send, bytes, recv, counts, displs));
    return RECSYS_OK;
}

recsys_status rs_dist_alltoallv(rs_dist *d, const void *send, const size_t *scounts,
                                const size_t *sdispls, void *recv, const size_t *rcounts,
                                const size_t *rdispls)
{
    double out = 0;
    for (int r = 0; r < d->size; r++)
        if (r != d->rank) out += (double)scounts[r];
    RUN(d, "alltoallv", out,
        d->c.alltoallv(d->c.user_data, send, scounts, sdispls, recv, rcounts, rdispls));
    return RECSYS_OK;
}

recsys_status rs_dist_bcast(rs_dist *d, void *buf, size_t bytes, int root)
{
    RUN(d, "broadcast", d->rank == root ? (double)bytes * (d->size - 1) : 0.0,
        d->c.broadcast(d->c.user_data, buf, bytes, root));
    return RECSYS_OK;
}

recsys_status rs_dist_barrier(rs_dist *d)
{
    RUN(d, "barrier", 0.0, d->c.barrier(d->c.user_data));
    return RECSYS_OK;
}

recsys_status rs_dist_agree(rs_dist *d, recsys_status local)
{
    int32_t *all = malloc(sizeof *all * (size_t)d->size);
    if (!all) return rs_error(d->ctx, RECSYS_E_NOMEM, "out of memory");
    int32_t mine = local;
    recsys_status st = rs_dist_allgather(d, &mine, sizeof mine, all);
    if (!st) {
        for (int r = 0; r < d->size && !st; r++) {
            if (!all[r]) continue;
            st = all[r];
            if (r != d->rank || !local)
                rs_error(d->ctx, st, "rank %d of %d failed (%s); see its messages", r, d->size,
                         recsys_status_str(st));
        }
    }
    free(all);
    return st;
}

size_t rs_dist_sum_scratch(const rs_dist *d, size_t n)
{
    size_t seg = n / (size_t)d->size + 1;
    return seg * (size_t)d->size + seg;
}

recsys_status rs_dist_sum_ordered(rs_dist *d, float *buf, size_t n, float *scratch)
{
    int N = d->size;
    if (N == 1) return RECSYS_OK; /* the sum of one term */
    int64_t lo, hi;
    for (int r = 0; r < N; r++) {
        rs_dist_share((int64_t)n, N, r, &lo, &hi);
        d->counts[r] = (size_t)(hi - lo) * sizeof(float);
        d->displs[r] = (size_t)lo * sizeof(float);
    }
    rs_dist_share((int64_t)n, N, d->rank, &lo, &hi);
    size_t mine = (size_t)(hi - lo);
    for (int r = 0; r < N; r++) {
        d->counts2[r] = mine * sizeof(float);
        d->displs2[r] = (size_t)r * mine * sizeof(float);
    }
    /* recv: rank r's copy of my segment at scratch[r * mine] */
    recsys_status st = rs_dist_alltoallv(d, buf, d->counts, d->displs, scratch, d->counts2,
                                         d->displs2);
    if (st) return st;
    float *seg = scratch + (size_t)N * mine;
    memcpy(seg, scratch, mine * sizeof(float));
    for (int r = 1; r < N; r++) {
        const float *x = scratch + (size_t)r * mine;
        for (size_t i = 0; i < mine; i++) seg[i] += x[i];
    }
    return rs_dist_allgatherv(d, seg, mine * sizeof(float), buf, d->counts, d->displs);
}
