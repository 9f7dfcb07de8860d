/* The optimiser of lib/train: Adam (L2 weight decay added to the gradient)
 * and AdamW (decoupled weight decay), over one flat parameter vector. */
#ifndef RS_OPTIMIZER_H
#define RS_OPTIMIZER_H

#include "core/internal.h"

typedef struct rs_adam {
    float lr, beta1, beta2, eps, weight_decay;
    int decoupled_wd; /* 1: AdamW, 0: Adam with L2 */
    int64_t step;     /* steps taken (Adam's t) */
    size_t n;         /* parameters */
    float *m, *v;     /* first and second moments, n floats each */
} rs_adam;

/* Settings from trainer.lr, .beta1, .beta2, .eps, .weight_decay and
 * .optimizer; zeroed moments for n parameters. RECSYS_E_NOMEM on failure
 * (a is then safe to free). */
recsys_status rs_adam_init(rs_adam *a, const recsys_opts *opts, size_t n);
void rs_adam_free(rs_adam *a);

/* One step on params with grads (both a->n floats), split over ctx's pool.
 * With plain Adam, grads receive the L2 term (grads += wd * params). */
void rs_adam_step(recsys_ctx *ctx, rs_adam *a, float *params, float *grads);

#endif
