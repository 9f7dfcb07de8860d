/* Training losses on the encoder's hidden states. */
#ifndef RS_LOSS_H
#define RS_LOSS_H

#include "models/model.h"

/*
 * Binary cross-entropy with sampled negatives (docs/MODELS.md §2), over the
 * positions t of the batch with b->pos[t] != 0:
 *   loss = -Σ_t [ log σ(F_t·I[pos_t]) + Σ_k log(1 - σ(F_t·I[neg_t,k])) ] / #positions
 * with k over the b->n_neg negatives of position t (b->neg[t*n_neg + k]).
 * F: hidden states [b->B * b->L * cfg->dim]; items: the item table
 * [(cfg->n_items+1) x dim]. *loss receives the mean (0 when no position has
 * a target). dF (may be NULL) receives ∂loss/∂F (written; zero rows where
 * pos == 0); d_items (may be NULL) accumulates the table gradient (+=).
 * Deterministic for any thread count; allocates a small per-call scratch of
 * B*L*(1+n_neg) floats. Errors: RECSYS_E_INVALID (ids outside
 * [0, n_items], bad shapes), RECSYS_E_NOMEM.
 */
recsys_status rs_loss_bce(recsys_ctx *ctx, const rs_model_config *cfg, const float *items,
                          const rs_batch *b, const float *F, float *dF, float *d_items,
                          double *loss);

/* The same with caller-provided scratch of rs_loss_bce_scratch_floats(B, L,
 * n_neg) floats for batches of up to B x L (NULL: allocate per call), so a
 * training step allocates nothing. */
size_t rs_loss_bce_scratch_floats(int B, int L, int n_neg);
recsys_status rs_loss_bce_ws(recsys_ctx *ctx, const rs_model_config *cfg, const float *items,
                             const rs_batch *b, const float *F, float *dF, float *d_items,
                             float *scratch, double *loss);

#endif
