/* Data-parallel training step (docs/DISTRIBUTED.md): the trainer's hooks.
 *
 * Every rank fills the whole global batch with the common RNG (so negatives
 * and dropout seeds are the same for any rank count), then
 *   rs_dist_train_slice    keeps this rank's contiguous share of the rows;
 *   rs_dist_train_scale    after the loss: weights the local mean loss's
 *                          gradient by local/global target count;
 *   rs_dist_train_reduce   after backward: dense gradients summed in rank
 *                          order, item-table rows the ranks touched summed
 *                          in rank order, the global mean loss.
 * Then every rank applies the same optimiser step. */
#ifndef RS_DIST_TRAIN_H
#define RS_DIST_TRAIN_H

#include "dist/dist.h"
#include "models/model.h"

typedef struct rs_dist_train {
    rs_dist d;
    int n_items, dim;
    size_t item_off, n_table, n_params, n_dense;
    float *dense, *scratch;      /* packed dense gradient, its sum scratch */
    uint32_t *stamp, *stamp2;    /* per item: touched this step / summed this step */
    uint32_t cur, cur2;
    int32_t *ids;                /* items this rank's rows touched */
    size_t n_ids, cap_ids;
    float *rows;                 /* their gradient rows, packed */
    int32_t *rids;               /* all ranks' ids, rank after rank */
    float *rrows;
    size_t cap_r;
    int64_t *counts;             /* ids per rank */
    int64_t local_pos, global_pos;
    int64_t steps;
} rs_dist_train;

recsys_status rs_dist_train_new(recsys_ctx *ctx, const recsys_collective *c,
                                const recsys_model *model, rs_dist_train **out);
void rs_dist_train_free(rs_dist_train *dt);

/* b: the global batch view -> this rank's rows (b->B may become 0). */
void rs_dist_train_slice(rs_dist_train *dt, rs_batch *b, int shared_negatives);
/* After the loss on the local rows: collect the touched items, scale dF
 * (local rows) and the loss's item-table gradient rows. */
recsys_status rs_dist_train_scale(rs_dist_train *dt, const rs_batch *b, int shared_negatives,
                                  float *dF, float *d_items);
/* After backward (or after a local failure `local`): all ranks' statuses
 * are shared first, so one rank's failure fails every rank; then grads
 * (model layout) <- the global gradient on every rank and *loss <- the
 * global mean loss. */
/* The first half of rs_dist_train_reduce: statuses and the global loss. */
recsys_status rs_dist_train_agree(rs_dist_train *dt, recsys_status local, double *loss);
recsys_status rs_dist_train_reduce(rs_dist_train *dt, recsys_status local, float *grads,
                                   double *loss);

#include "checkpoint/checkpoint.h"

/* Every rank <- rank 0's epoch, step and RNG (after checking that every
 * rank has a model of n_params). */
recsys_status rs_dist_sync_state(rs_dist_train *dt, size_t n_params, rs_train_state *s);
/* Every rank <- rank 0's weights, optimiser moments and state scalars. */
recsys_status rs_dist_sync_train(rs_dist_train *dt, recsys_model *model, rs_train_state *s);
/* Rank 0 writes the checkpoint (atomically, the usual format); every rank
 * returns rank 0's status. */
recsys_status rs_dist_save_train(rs_dist_train *dt, recsys_ctx *ctx, const recsys_model *model,
                                 const char *path, const rs_train_state *s);
/* Rank 0 reads it and broadcasts: a checkpoint written with any number of
 * ranks (or none) resumes on any number. */
recsys_status rs_dist_load_train(rs_dist_train *dt, recsys_ctx *ctx, const char *path,
                                 recsys_model *model, rs_train_state *s);

#endif
