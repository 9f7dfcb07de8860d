/* Row-sharded item table (dist.shard_items, docs/DISTRIBUTED.md), the
 * trainer's side (lib/train: it runs the optimiser and the losses).
 *
 * Rank r owns the item rows [lo_r, hi_r) of the (n_items+1) x d table (a
 * contiguous split by id): their weights, Adam moments and gradient. The
 * model itself is split (recsys_model.sharded): its params hold the rows
 * [lo, hi), then the dense part, so no rank holds the whole table. A step:
 *   rs_shard_begin  the items the rank's rows touch get compact ids
 *                   1..n (0 stays padding) in the batch (rewritten in
 *                   place); their rows are fetched from their owners by
 *                   all-to-all (dist/rows.h) into a working model whose
 *                   table holds only them (cfg.n_items = the capacity),
 *                   followed by the dense parameters (replicated);
 *   (the trainer runs forward, loss and backward on the working model)
 *   rs_shard_end    statuses and loss shared; dense gradient summed in
 *                   rank order; each touched row's gradient sent to its
 *                   owner (all-to-all) and summed there in rank order; Adam
 *                   on the dense part (every rank) and on the shard (its
 *                   owner; every row of it, as the unsharded step does).
 * Per-rank memory: the shard's weights, gradient and moments (4/N of the
 * table), and the working table of at most rows x L x (2 + negatives)
 * items. Checkpoints go through rank 0 (the only one that holds a whole
 * table, and only while it saves or loads). */
#ifndef RS_TRAIN_SHARD_H
#define RS_TRAIN_SHARD_H

#include "dist/dist_train.h"
#include "dist/rows.h"
#include "train/optimizer.h"
#include "train/loss_softmax.h"

typedef struct rs_shard {
    rs_dist_train *dt;            /* borrowed: comm, scaling */
    recsys_model *model;          /* borrowed, split while the shard lives */
    rs_model_config cfg;          /* the working model: n_items = cap */
    int dim, n_items;             /* the real catalogue */
    int64_t lo, hi;               /* owned rows */
    size_t cap, n_dense;
    float *W, *G;                 /* working params and grads: (cap+1) x d table, then dense */
    float *grads;                 /* shard gradient, (hi-lo) x d */
    rs_adam adam_dense, adam_rows;
    rs_ssm_workspace *ssm;        /* sampled softmax over the working table (NULL: BCE) */
    rs_rows f;                    /* row fetch and return */
} rs_shard;

/* Splits `model` (whole, the same on every rank): it keeps rows [lo, hi). */
recsys_status rs_shard_new(rs_dist_train *dt, recsys_ctx *ctx, recsys_model *model,
                           const rs_adam *settings, int batch_rows, int n_neg,
                           int shared_negatives, int softmax, rs_shard **out);
/* Frees the shard; the model stays split (see rs_shard_unsplit). */
void rs_shard_free(rs_shard *s);
/* b: this rank's rows (ids rewritten to compact ids in place). */
recsys_status rs_shard_begin(rs_shard *s, rs_batch *b, int shared_negatives);
recsys_status rs_shard_end(rs_shard *s, recsys_ctx *ctx, recsys_status local, double *loss);
/* The model's dense part <- the working one (after an epoch, before saving). */
void rs_shard_sync_model(rs_shard *s);
/* Collective: the model whole again on every rank (its table gathered). */
recsys_status rs_shard_unsplit(rs_shard *s);
/* Checkpoints through rank 0 (collective): save writes the whole model and
 * moments there; resume reads them there and hands every rank its rows. */
#include "checkpoint/checkpoint.h"
recsys_status rs_shard_save(rs_shard *s, recsys_ctx *ctx, const char *path, rs_train_state *st);
recsys_status rs_shard_resume(rs_shard *s, recsys_ctx *ctx, const char *path,
                              rs_train_state *st);

#endif
