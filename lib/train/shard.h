/* Row-sharded item table (dist.shard_items, docs/DISTRIBUTED.md), the
 * trainer's side (lib/train: it runs the optimiser and the losses).
 *
 * Rank r owns the item rows [lo_r, hi_r) of the (n_items+1) x d table (a
 * contiguous split by id) with their Adam moments and gradient. A step:
 *   rs_shard_begin  the items the rank's rows touch get compact ids
 *                   1..n (0 stays padding) in the batch (rewritten in
 *                   place); their rows are fetched from their owners by
 *                   all-to-all into a working model whose table holds only
 *                   them (cfg.n_items = the capacity), followed by the
 *                   dense parameters (replicated on every rank);
 *   (the trainer runs forward, loss and backward on the working model)
 *   rs_shard_end    statuses and loss shared; dense gradient summed in
 *                   rank order; each touched row's gradient sent to its
 *                   owner (all-to-all) and summed there in rank order; Adam
 *                   on the dense part (every rank) and on the shard (its
 *                   owner; every row of it, as the unsharded step does).
 * rs_shard_sync_model gathers the table and dense weights into the model
 * (after every epoch), so evaluation, saving and sessions see a whole
 * model. Per-rank memory: the model's table (whose rows [lo, hi) are the
 * shard's weights; the other rows are refreshed at the end of an epoch),
 * the shard's gradient and moments (3/N of the table), and the working
 * table of at most rows x L x (2 + negatives) items. */
#ifndef RS_TRAIN_SHARD_H
#define RS_TRAIN_SHARD_H

#include "dist/dist_train.h"
#include "train/optimizer.h"
#include "train/loss_softmax.h"

typedef struct rs_shard {
    rs_dist_train *dt;            /* borrowed: comm, touched ids, scaling */
    rs_model_config cfg;          /* the working model: n_items = cap */
    int dim, n_items;             /* the real catalogue */
    int64_t lo, hi;               /* owned rows */
    size_t cap, n_dense;
    float *W, *G;                 /* working params and grads: (cap+1) x d table, then dense */
    float *rows;                  /* shard weights: the model's rows [lo, hi) (borrowed) */
    float *grads;                 /* shard gradient, (hi-lo) x d */
    rs_adam adam_dense, adam_rows;
    rs_ssm_workspace *ssm;        /* sampled softmax over the working table (NULL: BCE) */
    int32_t *map;                 /* global id -> compact id (valid when stamp current) */
    uint32_t *stamp, cur;
    int32_t *U;                   /* compact id -> global id; n_u of them */
    size_t n_u;
    /* all-to-all scratch */
    int64_t *scount, *rcount;     /* per rank */
    size_t *order;                /* compact ids grouped by owner */
    int32_t *send_ids, *recv_ids;
    float *send_rows, *recv_rows;
    size_t cap_recv;
} rs_shard;

recsys_status rs_shard_new(rs_dist_train *dt, recsys_ctx *ctx, recsys_model *model,
                           const rs_adam *settings, int batch_rows, int n_neg,
                           int shared_negatives, int softmax, rs_shard **out);
void rs_shard_free(rs_shard *s);
/* b: this rank's rows (ids rewritten to compact ids in place). */
recsys_status rs_shard_begin(rs_shard *s, rs_batch *b, int shared_negatives);
recsys_status rs_shard_end(rs_shard *s, recsys_ctx *ctx, recsys_status local, double *loss);
recsys_status rs_shard_sync_model(rs_shard *s, recsys_model *model);
/* Full-size Adam moments on every rank (m, v: model->n_params floats,
 * caller-allocated) <- the shards' and the dense part's; and back. */
recsys_status rs_shard_gather_state(rs_shard *s, float *m, float *v, size_t item_off);
void rs_shard_scatter_state(rs_shard *s, const recsys_model *model, const float *m,
                            const float *v);

#endif
