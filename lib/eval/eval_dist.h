/* Evaluation sharded by users (lib/eval/eval_dist.c). */
#ifndef RS_EVAL_DIST_H
#define RS_EVAL_DIST_H

#include "models/model.h"

/* ranks[i] <- the 0-based rank (ties count half) of evaluated user
 * first + i (users with rs_user_evaluated, in id order), i < count; NaN for
 * a user left out (no negatives to sample). The same numbers
 * recsys_evaluate accumulates. */
recsys_status rs_evaluate_ranks(recsys_ctx *ctx, const recsys_model *model,
                                const recsys_dataset *ds, const recsys_opts *opts, int64_t first,
                                int64_t count, double *ranks);

#endif
