/* Evaluation with a per-batch extra (adapters): internal. */
#ifndef RS_EVAL_HOOK_H
#define RS_EVAL_HOOK_H

#include "models/batch.h"

typedef struct rs_eval_hook {
    void *self;
    /* Called after the rows of users[0..rows) are filled into bb (b its
     * inference view), before the forward into F: may run passes of its own
     * on ws and F, change the rows' windows and set b->hook. */
    recsys_status (*before)(void *self, rs_workspace *ws, float *F, rs_batch_buf *bb,
                            rs_batch *b, const int64_t *users, int rows);
    double *user_rank; /* n_users, or NULL: each user's 0-based target rank (NaN: none) */
} rs_eval_hook;

/* recsys_evaluate with eh (NULL: plain). */
recsys_status rs_evaluate_with(recsys_ctx *ctx, const recsys_model *model,
                               const recsys_dataset *ds, const recsys_opts *opts,
                               const rs_eval_hook *eh, recsys_metrics **out);

#endif
