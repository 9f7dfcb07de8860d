/* Evaluation sharded by users (lib/eval/eval_dist.c). */
#ifndef RS_EVAL_DIST_H
#define RS_EVAL_DIST_H

#include "models/model.h"
#include "dist/dist.h"

/* The inputs of user u's evaluated target (items[offsets[u] + n] is it). */
static inline int64_t rs_eval_input_len(const recsys_dataset *ds, int test_split, int64_t u)
{
    int64_t n = rs_user_train_len(ds, u);
    return test_split && ds->holdout == 2 ? n + 1 : n;
}

/* Sharded full ranking (lib/eval/eval_shard.c): every evaluated user's
 * state and target score are known on every rank; a rank scores its rows. */
typedef struct rs_eval_shard {
    const float *rows;        /* the table rows [lo, hi) (L2-normalised when the model is) */
    int64_t lo, hi;
    const float *states;      /* per evaluated user (in id order): the state, d floats */
    const float *tscores;     /* per evaluated user: the target's score */
    double *greater, *ties;   /* out, per evaluated user: this shard's candidates scoring
                                 above / equal to the target (-1: left out) */
} rs_eval_shard;
recsys_status rs_evaluate_shard_counts(recsys_ctx *ctx, const recsys_model *model,
                                       const recsys_dataset *ds, const recsys_opts *opts,
                                       const rs_eval_shard *sh);
/* recsys_evaluate_distributed of a row-sharded model (model->sharded). */
recsys_status rs_evaluate_sharded(recsys_ctx *ctx, const recsys_model *model,
                                  const recsys_dataset *ds, const recsys_opts *opts, rs_dist *d,
                                  recsys_metrics **out);

/* ranks[i] <- the 0-based rank (ties count half) of evaluated user
 * first + i (users with rs_user_evaluated, in id order), i < count; NaN for
 * a user left out (no negatives to sample). The same numbers
 * recsys_evaluate accumulates. */
recsys_status rs_evaluate_ranks(recsys_ctx *ctx, const recsys_model *model,
                                const recsys_dataset *ds, const recsys_opts *opts, int64_t first,
                                int64_t count, double *ranks);

#endif
