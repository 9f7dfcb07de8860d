/*
 * Kernel table: one function pointer per op, filled at ctx creation from the
 * best ISA available (kernels/dispatch.c). Kernels never allocate, never see
 * a model, and are single-threaded: callers split work across the ctx pool.
 * All matrices are row-major with explicit leading dimensions.
 */
#ifndef RS_KERNELS_H
#define RS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "dropout_hash.h" /* rs_dropout_keep */

enum rs_isa { RS_ISA_SCALAR = 0, RS_ISA_AVX2 = 1, RS_ISA_AVX512 = 2 };

/*
 * C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C, op = transpose when
 * trans_a / trans_b is non-zero. Row-major: op(A)[i,k] is A[i*lda+k] or
 * A[k*lda+i]. beta == 0 means C is write-only (NaNs in C are ignored).
 * scratch: the caller's packing buffer of RS_GEMM_SCRATCH_FLOATS floats,
 * 64-byte aligned, one per thread (kernels never allocate). NULL is allowed:
 * the kernel then packs through a small stack buffer (correct, slower).
 */
typedef void (*rs_gemm_fn)(int trans_a, int trans_b, int M, int N, int K, float alpha,
                           const float *A, int lda, const float *B, int ldb, float beta,
                           float *C, int ldc, float *scratch);
#define RS_GEMM_SCRATCH_FLOATS (256 * 512 + 8192)

/*
 * Causal softmax attention for one (sequence, head), queries and keys of the
 * same sequence of length L; the first `start` rows/cols are padding and are
 * skipped (their outputs and lse are zero). Q,K,V,O have row stride ld; head
 * size dh. lse[L] receives the log-sum-exp of each row's scaled scores.
 * Dropout on the attention weights with probability drop_p (0 = off): weight
 * (i,j) is kept when rs_dropout_keep(seed, i*L+j, drop_p), then scaled by
 * 1/(1-drop_p). Rows are independent, so callers may split work by row.
 */
typedef void (*rs_attn_fwd_fn)(int L, int start, int dh, float scale, const float *Q,
                               const float *K, const float *V, int ld, float drop_p,
                               uint64_t seed, float *O, float *lse);
/* Backward of the above: writes dQ, dK, dV (row stride ld) given dO, O, lse. */
typedef void (*rs_attn_bwd_fn)(int L, int start, int dh, float scale, const float *Q,
                               const float *K, const float *V, const float *O,
                               const float *dO, const float *lse, int ld, float drop_p,
                               uint64_t seed, float *dQ, float *dK, float *dV);

/* y[i] = x[i] + r[i] (r may be NULL), then layer norm over d with gamma/beta
 * (may be NULL = no affine); writes mean/rstd per row. n rows. */
typedef void (*rs_layernorm_fwd_fn)(int n, int d, const float *x, const float *r,
                                    const float *gamma, const float *beta, float eps,
                                    float *y, float *mean, float *rstd);
/* Backward: given dy, x (+r as in forward), mean/rstd: dx (written), dgamma and
 * dbeta accumulated (+=, may be NULL). */
typedef void (*rs_layernorm_bwd_fn)(int n, int d, const float *x, const float *r,
                                    const float *gamma, const float *mean,
                                    const float *rstd, const float *dy, float *dx,
                                    float *dgamma, float *dbeta);

/* Adam/AdamW on n params: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²;
 * p -= lr * (m/bc1 / (sqrt(v/bc2) + eps) + wd * p). */
typedef void (*rs_adam_fn)(size_t n, float *p, const float *g, float *m, float *v, float lr,
                           float b1, float b2, float eps, float wd, float bc1, float bc2);

/* Dot product of n floats. */
typedef float (*rs_dot_fn)(size_t n, const float *a, const float *b);

/* ---- HSTU pointwise attention (kernels/ref/hstu_attention_ref.c, kernels/x86/hstu_attention_*.c, docs/MODELS.md §3) ----
 * One (sequence, head). Rows/cols [0, start) are padding. For start <= j <= i < L:
 *   S[i,j] = q_i·k_j + rab_pos[j-i+N-1] (+ rab_time[bucket(next_times[i] - times[j])])
 *   A[i,j] = SiLU(S[i,j]) / N,     o_i = Σ_j A[i,j] v_j
 * Padding rows of o are zero. N (>= L) is the length that normalises the
 * weights and sizes rab_pos (2N-1 scalars). Time bias only when rab_time is
 * non-NULL (RS_HSTU_TIME_BUCKETS scalars); bucket() is rs_hstu_time_bucket.
 * Nothing of size L x L is stored. */
#define RS_HSTU_TIME_BUCKETS 129
typedef struct rs_hstu_attn {
    int L, start, N, dqk, dv;
    const float *q, *k, *v; /* row i at q + i*ld (dqk floats), k (dqk), v (dv) */
    int ld;                 /* row stride of q, k, v and of dq, dk, dv */
    const float *rab_pos;   /* 2N-1, indexed by j-i+N-1 */
    const float *rab_time;  /* RS_HSTU_TIME_BUCKETS, or NULL: no time bias */
    const int64_t *times, *next_times; /* L each, read only with rab_time */
} rs_hstu_attn;
/* o: L rows of dv floats, stride ld_o (written). scratch: NULL or
 * rs_hstu_scratch_floats(dqk, dv) floats, 64-byte aligned (kernels never
 * allocate; with NULL they use a stack buffer or fall back to the reference). */
typedef void (*rs_hstu_fwd_fn)(const rs_hstu_attn *a, float *o, int ld_o, float *scratch);
/* Backward from d_o (stride ld_o): dq, dk, dv written (stride a->ld, padding
 * rows zero); d_rab_pos[2N-1] and d_rab_time[129] accumulated (+=;
 * d_rab_time unused without time bias). */
typedef void (*rs_hstu_bwd_fn)(const rs_hstu_attn *a, const float *d_o, int ld_o, float *dq,
                               float *dk, float *dv, float *d_rab_pos, float *d_rab_time,
                               float *scratch);
size_t rs_hstu_scratch_floats(int dqk, int dv);
/* bucket(Δ) = clamp(floor(ln(max(|Δ|,1)) / 0.301), 0, 128), in double. */
int rs_hstu_time_bucket(int64_t delta);

/* ---- point-wise row kernels (kernels/ref/pointwise_ref.c, kernels/x86/pointwise_*.c), used by lib/nn ----
 * Flat arrays of m floats; results are bitwise equal to the references
 * (same operations, no FMA contraction), except SiLU (vector exp).
 * dropout_fwd: y[c] = keep(c) ? x[c] * scale : 0 with keep(c) =
 *   rs_dropout_keep(seed, base + c, p); the keep bytes (0/1) go to mask when
 *   non-NULL. y may equal x. p > 0.
 * dropout_apply: y[c] = mask[c] ? x[c] * scale : 0 (y may equal x).
 * add: y[c] += x[c].   relu: y[c] = y[c] > 0 ? y[c] : 0.
 * relu_bwd: d[c] = y[c] > 0 ? d[c] * scale : 0 (scale 1: plain ReLU').
 * silu_fwd: s[c] = σ(a[c]), a[c] = a[c] * s[c].
 * silu_bwd: d[c] *= s[c] + g[c] (1 - s[c]) (s = σ(h), g = SiLU(h)).
 * softmax: x[c] = e^(x[c] - max) / Σ e^(x[j] - max) over m >= 1 values, at
 *   least one finite (entries of -inf get 0); vector exp in the SIMD variants, so within a
 *   few ulp of the reference, not bitwise.
 * embed_gather: row i of y (width d) = scale * table[ids[i]] (+= when
 *   accumulate), for rows i in [0, n).
 * embed_scatter: for i = 0..n-1 in order, ids[i] >= 0:
 *   table[ids[i]][c] += scale * dy[i][c] for columns c in [c0, c1). */
typedef void (*rs_dropout_fwd_fn)(size_t m, uint64_t seed, uint64_t base, float p, float scale,
                                  const float *x, float *y, uint8_t *mask);
typedef void (*rs_dropout_apply_fn)(size_t m, const uint8_t *mask, float scale, const float *x,
                                    float *y);
typedef void (*rs_vadd_fn)(size_t m, const float *x, float *y);
typedef void (*rs_relu_fn)(size_t m, float *y);
typedef void (*rs_relu_bwd_fn)(size_t m, const float *y, float scale, float *d);
typedef void (*rs_silu_fwd_fn)(size_t m, float *a, float *s);
typedef void (*rs_silu_bwd_fn)(size_t m, const float *s, const float *g, float *d);
typedef void (*rs_softmax_fn)(size_t m, float *x);
typedef void (*rs_embed_gather_fn)(int n, int d, const float *table, const int32_t *ids,
                                   float scale, int accumulate, float *y);
typedef void (*rs_embed_scatter_fn)(int n, int d, int c0, int c1, const int32_t *ids,
                                    float scale, const float *dy, float *table);

/* ---- one vector against many rows: scoring one user (kernels/ref/dot_ref.c,
 * x86/dot_*.c) ----
 * The rows are stored in panels of RS_PANEL: panel p holds rows
 * p*RS_PANEL .. +RS_PANEL-1 as d x RS_PANEL floats (row i's feature k at
 * [k][i % RS_PANEL]), rows past n zero (rs_pack_panels). dot_panels:
 * y[i] = Σ_k x[k] row_i[k] for i < n, one multiply-add chain per row over k
 * in order from zero: the bits rs_gemm of the same ISA gives for x times the
 * rows (d <= RS_PANEL_MAX_D, within one K block of the GEMMs), and the
 * double sums of rs_gemm_ref for the reference. So one user scored this way ranks exactly as in a batch. */
#define RS_PANEL 16
#define RS_PANEL_MAX_D 256
typedef void (*rs_dot_panels_fn)(size_t n, int d, const float *panels, const float *x, float *y);
size_t rs_panels_floats(size_t n, int d);
void rs_pack_panels(size_t n, int d, const float *rows, size_t ld, float *panels);
void rs_dot_panels_ref(size_t n, int d, const float *panels, const float *x, float *y);

typedef struct rs_kernels {
    enum rs_isa isa;
    rs_gemm_fn gemm;
    rs_gemm_fn gemm_bf16; /* bf16-input GEMM, NULL when the CPU/cap lacks it */
    rs_attn_fwd_fn attn_fwd;
    rs_attn_bwd_fn attn_bwd;
    rs_attn_fwd_fn attn_fwd_bf16; /* bf16-product attention, NULL when the CPU/cap lacks it */
    rs_attn_bwd_fn attn_bwd_bf16;
    rs_layernorm_fwd_fn layernorm_fwd;
    rs_layernorm_bwd_fn layernorm_bwd;
    rs_adam_fn adam;
    rs_dot_fn dot;
    rs_dot_panels_fn dot_panels;
    rs_hstu_fwd_fn hstu_fwd;
    rs_hstu_bwd_fn hstu_bwd;
    rs_dropout_fwd_fn dropout_fwd;
    rs_dropout_apply_fn dropout_apply;
    rs_vadd_fn add;
    rs_relu_fn relu;
    rs_relu_bwd_fn relu_bwd;
    rs_silu_fwd_fn silu_fwd;
    rs_silu_bwd_fn silu_bwd;
    rs_softmax_fn softmax;
    rs_embed_gather_fn embed_gather;
    rs_embed_scatter_fn embed_scatter;
    const char *names[8]; /* indexed by RECSYS_KERNEL_* */
} rs_kernels;

/* CPU support detected with CPUID + XGETBV. */
typedef struct rs_cpu_features {
    int avx2_fma;  /* AVX2 + FMA, YMM state enabled by the OS */
    int avx512;    /* F, BW, VL, DQ + opmask/ZMM state enabled */
    int avx512_bf16;
} rs_cpu_features;

void rs_cpu_detect(rs_cpu_features *f);
/* Fill the table for the best ISA <= max_isa that f allows. */
void rs_kernels_init(rs_kernels *k, const rs_cpu_features *f, enum rs_isa max_isa);

/* Scalar references, always built; the tests compare SIMD variants to these. */
void rs_gemm_ref(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc,
                 float *scratch);
void rs_attn_fwd_ref(int L, int start, int dh, float scale, const float *Q, const float *K,
                     const float *V, int ld, float drop_p, uint64_t seed, float *O, float *lse);
void rs_attn_bwd_ref(int L, int start, int dh, float scale, const float *Q, const float *K,
                     const float *V, const float *O, const float *dO, const float *lse,
                     int ld, float drop_p, uint64_t seed, float *dQ, float *dK, float *dV);
void rs_layernorm_fwd_ref(int n, int d, const float *x, const float *r, const float *gamma,
                          const float *beta, float eps, float *y, float *mean, float *rstd);
void rs_layernorm_bwd_ref(int n, int d, const float *x, const float *r, const float *gamma,
                          const float *mean, const float *rstd, const float *dy, float *dx,
                          float *dgamma, float *dbeta);
void rs_adam_ref(size_t n, float *p, const float *g, float *m, float *v, float lr, float b1,
                 float b2, float eps, float wd, float bc1, float bc2);
float rs_dot_ref(size_t n, const float *a, const float *b);
void rs_hstu_fwd_ref(const rs_hstu_attn *a, float *o, int ld_o, float *scratch);
void rs_hstu_bwd_ref(const rs_hstu_attn *a, const float *d_o, int ld_o, float *dq, float *dk,
                     float *dv, float *d_rab_pos, float *d_rab_time, float *scratch);

/* Point-wise references (kernels/ref/pointwise_ref.c) and per-ISA variants
 * (kernels_isa.h), named rs_<op>_ref / _avx2 / _avx512. */
#define RS_POINTWISE_DECL(sfx)                                                              \
    void rs_dropout_fwd_##sfx(size_t m, uint64_t seed, uint64_t base, float p, float scale, \
                              const float *x, float *y, uint8_t *mask);                   \
    void rs_dropout_apply_##sfx(size_t m, const uint8_t *mask, float scale, const float *x, \
                                float *y);                                                \
    void rs_vadd_##sfx(size_t m, const float *x, float *y);                                 \
    void rs_relu_##sfx(size_t m, float *y);                                                 \
    void rs_relu_bwd_##sfx(size_t m, const float *y, float scale, float *d);                \
    void rs_silu_fwd_##sfx(size_t m, float *a, float *s);                                   \
    void rs_silu_bwd_##sfx(size_t m, const float *s, const float *g, float *d);             \
    void rs_softmax_##sfx(size_t m, float *x);                                              \
    void rs_embed_gather_##sfx(int n, int d, const float *table, const int32_t *ids,        \
                               float scale, int accumulate, float *y);                    \
    void rs_embed_scatter_##sfx(int n, int d, int c0, int c1, const int32_t *ids,           \
                                float scale, const float *dy, float *table);
RS_POINTWISE_DECL(ref)

#endif
