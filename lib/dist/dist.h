/* The collective layer of lib/dist: the caller's recsys_collective table
 * wrapped with checks, error messages and counters, plus the two
 * reductions distributed training needs (a dense sum in rank order and a
 * sum of sparse item rows). docs/DISTRIBUTED.md describes the protocol. */
#ifndef RS_DIST_H
#define RS_DIST_H

#include "core/internal.h"

typedef struct rs_dist {
    recsys_collective c;
    recsys_ctx *ctx;      /* where errors are recorded */
    int rank, size;
    /* counters: payload bytes addressed to other ranks, seconds inside
     * collectives, calls */
    double bytes_sent, seconds;
    int64_t calls;
    size_t *counts, *displs, *counts2, *displs2; /* size entries each */
} rs_dist;

/* Copy and check the table (struct_size, every operation present, rank in
 * [0, size)). RECSYS_E_INVALID, RECSYS_E_NOMEM, RECSYS_E_IO. */
recsys_status rs_dist_init(rs_dist *d, recsys_ctx *ctx, const recsys_collective *c);
void rs_dist_free(rs_dist *d);
/* Point errors at another ctx (the caller's ctx of the current call). */
static inline void rs_dist_set_ctx(rs_dist *d, recsys_ctx *ctx) { d->ctx = ctx; }

recsys_status rs_dist_allgather(rs_dist *d, const void *send, size_t bytes, void *recv);
recsys_status rs_dist_allgatherv(rs_dist *d, const void *send, size_t bytes, void *recv,
                                 const size_t *counts, const size_t *displs);
recsys_status rs_dist_alltoallv(rs_dist *d, const void *send, const size_t *scounts,
                                const size_t *sdispls, void *recv, const size_t *rcounts,
                                const size_t *rdispls);
recsys_status rs_dist_bcast(rs_dist *d, void *buf, size_t bytes, int root);
recsys_status rs_dist_barrier(rs_dist *d);

/* Every rank learns every rank's status: returns RECSYS_OK when all were
 * OK, else the first failing rank's status (its message when it is this
 * rank, else "rank R failed (...)"), so all ranks fail together. */
recsys_status rs_dist_agree(rs_dist *d, recsys_status local);

/* Share [lo, hi) of n items owned by rank r when n is split in size
 * contiguous parts (the first n % size parts one longer). */
static inline void rs_dist_share(int64_t n, int size, int r, int64_t *lo, int64_t *hi)
{
    int64_t q = n / size, rem = n % size;
    *lo = r * q + (r < rem ? r : rem);
    *hi = *lo + q + (r < rem ? 1 : 0);
}

/* In place: buf[0..n) <- the sum over ranks, added in rank order
 * (r0 + r1 + ... exactly, the same bits on every rank and for every run):
 * reduce-scatter by alltoallv, each rank sums its segment, allgatherv.
 * scratch holds at least rs_dist_sum_scratch(d, n) floats. */
size_t rs_dist_sum_scratch(const rs_dist *d, size_t n);
recsys_status rs_dist_sum_ordered(rs_dist *d, float *buf, size_t n, float *scratch);

#endif
