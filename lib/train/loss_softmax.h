/* Sampled softmax loss (docs/MODELS.md §3, the HSTU reference recipe). */
#ifndef RS_LOSS_SOFTMAX_H
#define RS_LOSS_SOFTMAX_H

#include "models/model.h"

/*
 * Over the positions t of the batch with b->pos[t] != 0 (t = row * L + slot):
 *   F̂_t   = F_t / max(‖F_t‖, 1e-6)        when normalize, else F_t
 *   ê_k   = I[k] / max(‖I[k]‖, 1e-6)      when normalize, else I[k]
 *   l_t,0 = <F̂_t, ê_pos_t> / temperature
 *   l_t,r = <F̂_t, ê_neg_t,r> / temperature, r = 1..R (R = b->n_neg),
 *           or exactly -5e4 when neg_t,r == pos_t
 *   loss  = mean_t ( -log softmax(l_t)[0] )
 * Negatives: per position b->neg[t*R + r-1] (shared_negatives == 0), or the
 * same R items b->neg[0..R) for every position (shared_negatives != 0; the
 * logits are then one GEMM of F̂ against R rows). No positions x R x d
 * gather is ever formed: logits are dot products against the item table
 * (scaled by per-item inverse norms computed once per call).
 *
 * F: [b->B * b->L * cfg->dim] hidden states; items: the item table
 * [(cfg->n_items+1) x dim]. *loss receives the mean (0 when no position has
 * a target). dF (may be NULL) receives ∂loss/∂F (written, zero rows where
 * pos == 0). d_items (may be NULL) accumulates ∂loss/∂items (+=, through
 * the normalisation). For an HSTU model, whose output is already unit-norm,
 * normalising again is an exact no-op up to rounding.
 *
 * Multi-threaded over the ctx pool (must not be called from a pool task);
 * deterministic for any thread count: per-position work is independent, the
 * item gradient is summed by column blocks in position order and by GEMMs.
 * Errors: RECSYS_E_INVALID (ids outside [0, n_items], temperature <= 0,
 * shapes), RECSYS_E_NOMEM.
 *
 * rs_loss_sampled_softmax allocates its scratch per call (about
 * positions * (2R + 2 + 2d) floats + 2 (n_items+1) floats); the _ws form
 * reuses a workspace made once by rs_ssm_workspace_new.
 */
recsys_status rs_loss_sampled_softmax(recsys_ctx *ctx, const rs_model_config *cfg,
                                      const float *items, const rs_batch *b, const float *F,
                                      float temperature, int normalize, int shared_negatives,
                                      float *dF, float *d_items, double *loss);

typedef struct rs_ssm_workspace rs_ssm_workspace;

/* Scratch for batches of up to max_positions (B * L) positions with n_neg
 * negatives over a catalogue of n_items and hidden size dim. NULL on
 * failure or bad sizes. */
rs_ssm_workspace *rs_ssm_workspace_new(int n_items, int dim, int max_positions, int n_neg);
void rs_ssm_workspace_free(rs_ssm_workspace *ws);

/* As rs_loss_sampled_softmax with a workspace (ws NULL: allocate per call).
 * RECSYS_E_INVALID when the batch exceeds the sizes ws was made for. */
recsys_status rs_loss_sampled_softmax_ws(recsys_ctx *ctx, const rs_model_config *cfg,
                                         const float *items, const rs_batch *b, const float *F,
                                         float temperature, int normalize, int shared_negatives,
                                         rs_ssm_workspace *ws, float *dF, float *d_items,
                                         double *loss);

#endif
