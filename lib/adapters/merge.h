/*
 * Merging adapters (docs/ADAPTERS.md, "Merging"): fold a LoRA into its base
 * weight, merge several users' LoRAs into one in delta-W space (weighted
 * linear or TIES sign election) and re-factorise the result to rank r with a
 * one-sided Jacobi SVD. These are the only places a d x d product B·A is
 * formed; the training and scoring paths never form it.
 */
#ifndef RS_ADAPTER_MERGE_H
#define RS_ADAPTER_MERGE_H

#include "core/internal.h"

#define RS_SVD_MAX 256

/* W[out x in] (row stride ldw) += scale · B · A. */
void rs_lora_fold(recsys_ctx *ctx, int in, int out, int r, float scale, const float *A,
                  const float *B, float *W, int ldw);

/* Thin SVD of a[m x n] (row-major, m >= n or not), n <= RS_SVD_MAX, by
 * one-sided Jacobi (Hestenes) in double: a = U·diag(s)·Vᵀ with the singular
 * values s[min(m,n)] in decreasing order, U [m x k], V [n x k], k = min(m,n).
 * Returns the number of sweeps, or -1 when it did not converge (or NOMEM). */
int rs_svd(int m, int n, const double *a, double *U, double *s, double *V);

/* Best rank-r factorisation of delta[out x in]: scale · B · A ≈ delta, with
 * B = U_r·sqrt(S_r), A = sqrt(S_r)·V_rᵀ / scale (balanced factors). */
recsys_status rs_lora_refactor(recsys_ctx *ctx, int in, int out, int r, float scale,
                               const double *delta, float *A, float *B);

enum rs_merge_mode { RS_MERGE_LINEAR = 0, RS_MERGE_TIES = 1 };

/* Merge n LoRAs (A_i [r x in], B_i [out x r], shared scale) with weights
 * w_i into one of rank r_out:
 *  - LINEAR: Δ = Σ w_i · scale·B_i·A_i;
 *  - TIES: each Δ_i = scale·B_i·A_i keeps its top `density` fraction of
 *    entries by magnitude (trim), every entry's sign is elected as the sign
 *    of Σ w_i·Δ_i over the kept values, and Δ is the weighted mean of the
 *    kept values that agree with it (disjoint merge);
 * then re-factorised to rank r_out. */
recsys_status rs_lora_merge(recsys_ctx *ctx, int n, const float *const *A, const float *const *B,
                            const float *w, int in, int out, int r, float scale, int mode,
                            float density, int r_out, float *A_out, float *B_out);

#endif
