/*
 * Low-rank adapter math on the kernels (docs/ADAPTERS.md).
 *
 * A LoRA on a projection with `in` inputs and `out` outputs is a pair
 * A [r x in], B [out x r] (row-major, the torch layout) adding
 *     y += scale · B · (A · x),     scale = alpha / r,
 * computed as two thin GEMMs through a rank-r bottleneck t = A·x: a d x d
 * product B·A is never formed on the training or scoring path.
 *
 * Rows may be split in segments, each with its own A, B (the CPU analogue of
 * Punica's BGMV/SGMV: one call, every row its own adapter). One segment runs
 * its GEMMs across the whole pool; several segments run one pool task each.
 *
 * The personalised bank (RecLoRA) mixes K flat adapter vectors per user with
 * gate weights: A_u = Σ_k α_uk A_k and B_u = Σ_k α_uk B_k, which is one GEMM
 * over the flattened vectors (rs_bank_mix). The gate is
 *     α_u = softmax( W2 · Dropout(ReLU(W1 · LN(h_u) + b1)) + b2 ) / tau ).
 *
 * Layering: adapters sit above core, nn and models, beside train and eval.
 */
#ifndef RS_LORA_H
#define RS_LORA_H

#include "core/internal.h"

/* A run of rows with its own adapter. */
typedef struct rs_lora_seg {
    int row0, n;        /* rows row0 .. row0+n-1 of x, y, t (and dy, dx, u) */
    const float *A;     /* r x in, or NULL: these rows get no adapter */
    const float *B;     /* out x r */
    float *dA, *dB;     /* backward: += gradients (NULL: not wanted). Segments
                           running in one call must not share dA / dB. */
} rs_lora_seg;

/* Forward over the segments: t[i] = A·x[i] (t: rows x r contiguous, kept for
 * the backward; rows of adapter-less segments are zeroed) and
 * y[i] += scale · B · t[i]. x has row stride ldx, y row stride ldy: y may
 * point at a column range of a wider fused output (SASRec's q|k|v). */
void rs_lora_fwd(recsys_ctx *ctx, int nseg, const rs_lora_seg *seg, int in, int out, int r,
                 float scale, const float *x, int ldx, float *t, float *y, int ldy);

/* Backward from dy (row stride lddy), after rs_lora_fwd on the same rows:
 *   u = scale · dy · B        (u: rows x r scratch, written)
 *   dB += scale · dyᵀ · t,  dA += uᵀ · x,  dx += u · A   (dx may be NULL). */
void rs_lora_bwd(recsys_ctx *ctx, int nseg, const rs_lora_seg *seg, int in, int out, int r,
                 float scale, const float *x, int ldx, const float *t, const float *dy,
                 int lddy, float *u, float *dx, int lddx);

/* ----------------------------------------------------------------- bank */
/* out[U x P] = alpha[U x K] · bank[K x P]: U users' mixed adapter vectors. */
void rs_bank_mix(recsys_ctx *ctx, int U, int K, size_t P, const float *alpha, const float *bank,
                 float *out);
/* dbank += alphaᵀ · dout (may be NULL); dalpha = dout · bankᵀ (may be NULL). */
void rs_bank_mix_bwd(recsys_ctx *ctx, int U, int K, size_t P, const float *alpha,
                     const float *bank, const float *dout, float *dbank, float *dalpha);

/* ----------------------------------------------------------------- gate */
typedef struct rs_gate_shape {
    int d;         /* input: the base model's user state */
    int hidden;    /* MLP width (reference: 60) */
    int K;         /* bank size */
    float tau;     /* softmax temperature */
    float dropout; /* on the hidden layer, training only */
} rs_gate_shape;

/* Parameters, in this order: ln_g[d], ln_b[d], W1[hidden x d], b1[hidden],
 * W2[K x hidden], b2[K]. */
size_t rs_gate_n_params(const rs_gate_shape *g);
/* LN gain 1, bias 0; W1, W2 Kaiming-uniform; biases 0. */
void rs_gate_init(const rs_gate_shape *g, float *params, rs_rng *rng);

/* What the gate keeps between forward and backward, for up to cap users. */
typedef struct rs_gate_ws {
    int cap, U;
    float *xn, *mean, *rstd, *hid, *alpha, *scratch;
} rs_gate_ws;
recsys_status rs_gate_ws_init(rs_gate_ws *w, const rs_gate_shape *g, int cap);
void rs_gate_ws_release(rs_gate_ws *w);

/* alpha[U x K] (also kept in w->alpha) from h[U x d] (row stride ldh).
 * train: dropout with stream seed (row ids row_id[i], NULL: i). */
void rs_gate_fwd(recsys_ctx *ctx, const rs_gate_shape *g, const float *params, rs_gate_ws *w,
                 int U, const float *h, int ldh, int train, uint64_t seed, const int32_t *row_id,
                 float *alpha);
/* grads += ∂/∂params from dalpha[U x K] (h is detached: no dh). */
void rs_gate_bwd(recsys_ctx *ctx, const rs_gate_shape *g, const float *params, rs_gate_ws *w,
                 const float *h, int ldh, int train, const float *dalpha, float *grads);

#endif
