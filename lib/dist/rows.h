/* A table of (n_items+1) rows of d floats split by row id over the ranks
 * (contiguous shares, rs_dist_share): the communication of row-sharded
 * item tables (dist.shard_items, docs/DISTRIBUTED.md), shared by training
 * (lib/train/shard.c) and evaluation (lib/eval/eval_shard.c).
 *
 * A round of row fetching: rs_rows_begin, then rs_rows_id maps each global
 * id the caller needs to a compact id 1..n (0 stays padding, id 0 -> 0);
 * rs_rows_get fills table[compact] with the rows from their owners (two
 * all-to-alls: ids, then rows); rs_rows_put sends rows of the same compact
 * table (gradients) back to their owners, which find them, rank after rank,
 * in recv_ids / recv_rows (n_recv of them). Every rank calls get and put
 * the same number of times (with nothing to ask for, if so). */
#ifndef RS_DIST_ROWS_H
#define RS_DIST_ROWS_H

#include "dist/dist.h"

typedef struct rs_rows {
    rs_dist *d;                   /* borrowed */
    int n_items, dim;
    int64_t lo, hi;               /* this rank's rows */
    size_t cap;                   /* most compact ids in a round (padding excluded) */
    int32_t *map;                 /* global -> compact (valid when stamp is current) */
    uint32_t *stamp, cur;
    int32_t *U;                   /* compact -> global; n_u of them, U[0] = 0 */
    size_t n_u;
    int64_t *scount, *rcount;     /* rows asked of / by each rank */
    size_t *order;                /* compact ids grouped by owner */
    int32_t *send_ids, *recv_ids;
    float *send_rows, *recv_rows;
    size_t n_recv, cap_recv;
} rs_rows;

recsys_status rs_rows_init(rs_rows *f, rs_dist *d, int n_items, int dim, size_t cap);
void rs_rows_free(rs_rows *f);
void rs_rows_begin(rs_rows *f);
/* The compact id of global row g (the caller keeps to cap distinct ids). */
static inline int32_t rs_rows_id(rs_rows *f, int32_t g)
{
    if (f->stamp[g] != f->cur) {
        f->stamp[g] = f->cur;
        f->map[g] = (int32_t)f->n_u;
        f->U[f->n_u++] = g;
    }
    return f->map[g];
}
/* mine: this rank's rows [lo, hi); table: (cap+1) x d, rows 0..n_u-1 set. */
recsys_status rs_rows_get(rs_rows *f, const float *mine, float *table);
/* table rows 0..n_u-1 to their owners (after rs_rows_get of this round). */
recsys_status rs_rows_put(rs_rows *f, const float *table);

/* The whole table on rank `root` (full: (n_items+1) x d there, ignored
 * elsewhere) <- every rank's rows `mine`; and back (rank r <- its rows). */
recsys_status rs_rows_gather(rs_dist *d, int n_items, int dim, const float *mine, float *full,
                             int root);
recsys_status rs_rows_scatter(rs_dist *d, int n_items, int dim, const float *full, float *mine,
                              int root);

#endif
