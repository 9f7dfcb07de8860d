/*
 * Reusable layers with explicit forward and backward passes. Each call
 * parallelises itself over the ctx pool (GEMMs through rs_gemm, the rest in
 * fixed row chunks), so none may be called from inside a pool task.
 *
 * Determinism: work is split into chunks that depend only on the sizes,
 * never on the thread count, and partial sums of shared gradients (biases,
 * layer-norm gains, embedding rows) are reduced in a fixed order. Results are
 * therefore bit-identical for any number of threads.
 *
 * Conventions: row-major activations with explicit row strides; a linear
 * layer's weight is [out x in] (y = x·Wᵀ + b, the torch layout); "+=" in a
 * comment means the call accumulates into that output.
 */
#ifndef RS_NN_H
#define RS_NN_H

#include "core/internal.h"

/* Rows per chunk for row-parallel element-wise work and partial sums. */
#define RS_NN_CHUNK_ROWS 64

static inline int rs_nn_chunks(int n) { return (n + RS_NN_CHUNK_ROWS - 1) / RS_NN_CHUNK_ROWS; }
/* One past the last row of the chunk that starts at row i0, of n rows. */
static inline int rs_nn_chunk_end(int i0, int n)
{
    return i0 + RS_NN_CHUNK_ROWS < n ? i0 + RS_NN_CHUNK_ROWS : n;
}

/* Floats of scratch the *_bwd calls below need for their partial sums over
 * n rows of width w (bias and gain gradients): rs_nn_chunks(n) * w. */
static inline size_t rs_nn_partial_floats(int n, int w) { return (size_t)rs_nn_chunks(n) * w; }

/* out[c] += Σ_i x[i*ld + c] over n rows and m columns, deterministically.
 * partial: rs_nn_partial_floats(n, m) floats. */
void rs_nn_colsum_acc(recsys_ctx *ctx, int n, int m, const float *x, int ld, float *out,
                      float *partial);

/* ------------------------------------------------------------------ linear */
/* y[n x out] = x[n x in] · Wᵀ + b (b may be NULL). */
void rs_linear_fwd(recsys_ctx *ctx, int n, int in, int out, const float *x, int ldx,
                   const float *W, const float *b, float *y, int ldy);
/* dW += dyᵀ·x, db += Σ rows dy (db may be NULL), dx = dy·W (dx += dy·W when
 * accumulate_dx; dx may be NULL). partial: rs_nn_partial_floats(n, out). */
void rs_linear_bwd(recsys_ctx *ctx, int n, int in, int out, const float *x, int ldx,
                   const float *W, const float *dy, int lddy, float *dx, int lddx,
                   int accumulate_dx, float *dW, float *db, float *partial);

/* --------------------------------------------------------------- embedding */
/* y[i] = scale * table[ids[i]] (+ y[i] when accumulate), rows of width d. */
void rs_embed_fwd(recsys_ctx *ctx, int n, int d, const float *table, const int32_t *ids,
                  float scale, int accumulate, float *y);
/* dtable[ids[i]] += scale * dy[i]. Rows with id < 0 are skipped. Parallel
 * over column blocks, so repeated ids never race and sums keep row order. */
void rs_embed_bwd(recsys_ctx *ctx, int n, int d, const int32_t *ids, float scale,
                  const float *dy, float *dtable);

/* ----------------------------------------------------------------- dropout */
/* y = x * keep / (1 - p) for an n x m block (row stride ld, y may be x).
 * Element (i, c) is kept when rs_dropout_keep(seed, row_id[i]*m + c, p), so
 * the mask depends on the logical row id, not on where the row is stored
 * (row_id NULL: row i). p == 0 copies (or does nothing in place). The
 * backward of dropout is the same call on the gradient. */
void rs_dropout(recsys_ctx *ctx, int n, int m, const float *x, int ld, float p, uint64_t seed,
                const int32_t *row_id, float *y);

/* Dropout recording its decisions (mask[i*m + c] = 1 when kept) so the
 * backward needs no hashing: y = x * mask / (1 - p), n x m contiguous rows
 * (y may be x). p == 0 copies and leaves mask alone. */
void rs_dropout_fwd_mask(recsys_ctx *ctx, int n, int m, const float *x, float p, uint64_t seed,
                         const int32_t *row_id, float *y, uint8_t *mask);
/* dx = dy * mask / (1 - p) (dx may be dy). */
void rs_dropout_bwd_mask(recsys_ctx *ctx, int n, int m, const float *dy, float p,
                         const uint8_t *mask, float *dx);

/* ------------------------------------------------- fused FFN element-wise */
/* The hidden layer of a feed-forward block, in place on the GEMM output y
 * (n x m contiguous): y = Dropout(ReLU(y + b)) (b may be NULL), dropout as
 * in rs_dropout. Only y is kept: its backward below needs nothing else. */
void rs_bias_relu_dropout_fwd(recsys_ctx *ctx, int n, int m, float *y, const float *b, float p,
                              uint64_t seed, const int32_t *row_id);
/* In place: dy = dy / (1 - p) where y > 0, else 0 (y the forward output: a
 * unit that was dropped or clipped by the ReLU is exactly zero there). */
void rs_relu_dropout_bwd(recsys_ctx *ctx, int n, int m, const float *y, float p, float *dy);
/* The output of a feed-forward block with its residuals, in place on the
 * GEMM output y: y = Dropout(y + b) (+ add1) (+ add2) (b, add1, add2 may be
 * NULL), recording the dropout mask as rs_dropout_fwd_mask does. */
void rs_bias_dropout_add_fwd(recsys_ctx *ctx, int n, int m, float *y, const float *b, float p,
                             uint64_t seed, const int32_t *row_id, uint8_t *mask,
                             const float *add1, const float *add2);

/* -------------------------------------------------------------------- relu */
/* x = max(x, 0) in place. */
void rs_relu_fwd(recsys_ctx *ctx, int n, int m, float *x, int ld);
/* dx *= [y > 0] in place, y the forward output. */
void rs_relu_bwd(recsys_ctx *ctx, int n, int m, const float *y, int ldy, float *dx, int lddx);

/* -------------------------------------------------------------- elementwise */
/* y += x for n rows of width m (contiguous, stride m). */
void rs_nn_add(recsys_ctx *ctx, int n, int m, const float *x, float *y);

/* -------------------------------------------------------- gating (HSTU) */
/* x = SiLU(x) in place and sig = σ(x) (the input's), n x m contiguous. */
void rs_silu_fwd(recsys_ctx *ctx, int n, int m, float *x, float *sig);
/* dx *= SiLU'(h) = σ + y (1 - σ) in place, with sig = σ(h), y = SiLU(h). */
void rs_silu_bwd(recsys_ctx *ctx, int n, int m, const float *sig, const float *y, float *dx);
/* y = a ⊙ b for n rows of width m: a has row stride lda, b and y stride m. */
void rs_mul_fwd(recsys_ctx *ctx, int n, int m, const float *a, int lda, const float *b,
                float *y);
/* Backward of y = a ⊙ b with dy in place: da = dy ⊙ b (written, stride
 * ldda), then dy becomes db = dy ⊙ a. */
void rs_mul_bwd(recsys_ctx *ctx, int n, int m, const float *a, int lda, const float *b,
                float *dy, float *da, int ldda);

/* ----------------------------------------------------------- L2 row norm */
/* Row-level, single-threaded: for use inside a caller's pool task.
 * y[i] = x[i] / max(‖x[i]‖, eps) for n rows of width d (contiguous);
 * inv[i] receives the factor 1 / max(‖x[i]‖, eps). */
void rs_l2norm_rows_fwd(const rs_kernels *k, int n, int d, const float *x, float eps, float *y,
                        float *inv);
/* dx from dy (both n x d contiguous): (dy - <dy, y> y) · inv with y = x · inv,
 * or dy · inv on rows whose norm was clamped to eps. */
void rs_l2norm_rows_bwd(const rs_kernels *k, int n, int d, const float *x, const float *inv,
                        float eps, const float *dy, float *dx);

/* -------------------------------------------------------------- layer norm */
/* y = LN(x + r) * gamma + beta (r, gamma, beta may be NULL), mean/rstd kept
 * per row for the backward. Rows of width d, contiguous. */
void rs_layernorm_fwd(recsys_ctx *ctx, int n, int d, const float *x, const float *r,
                      const float *gamma, const float *beta, float eps, float *y, float *mean,
                      float *rstd);
/* dx = ∂/∂(x+r) (written), dgamma/dbeta += (may be NULL).
 * partial: rs_nn_partial_floats(n, 2*d). */
void rs_layernorm_bwd(recsys_ctx *ctx, int n, int d, const float *x, const float *r,
                      const float *gamma, const float *mean, const float *rstd, const float *dy,
                      float *dx, float *dgamma, float *dbeta, float *partial);

/* --------------------------------------------------------------- attention */
/* Causal multi-head attention over n_seq sequences stored in one buffer:
 * sequence s occupies rows [base[s], base[s] + len[s]) and its first start[s]
 * rows are padding (start NULL: no padding). Head h uses columns
 * [h*dh, (h+1)*dh) of Q, K, V and O, which share the row stride ld (the
 * kernel's contract). lse has heads rows of lse_stride floats: (s, h) uses
 * lse[h*lse_stride + base[s] ...]. Attention-weight dropout of (s, h) uses
 * the stream rs_attn_seed(seed, s, h, heads). Runs one kernel call per
 * (sequence, head) across the pool. */
typedef struct rs_attn_layout {
    int n_seq, heads, dh, ld, lse_stride;
    const int *base, *len, *start;
    float scale, drop_p;
    uint64_t seed;
    int seq0;  /* dropout stream of sequence s is that of seq0 + s (a rank's share of a batch) */
} rs_attn_layout;

static inline uint64_t rs_attn_seed(uint64_t seed, int s, int h, int heads)
{
    return rs_hash64(seed, (uint64_t)s * (uint64_t)heads + (uint64_t)h);
}

void rs_attention_fwd(recsys_ctx *ctx, const rs_attn_layout *a, const float *Q, const float *K,
                      const float *V, float *O, float *lse);
/* dQ, dK, dV written (row stride a->ld, like dO). */
void rs_attention_bwd(recsys_ctx *ctx, const rs_attn_layout *a, const float *Q, const float *K,
                      const float *V, const float *O, const float *dO, const float *lse,
                      float *dQ, float *dK, float *dV);

#endif
