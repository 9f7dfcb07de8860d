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

enum rs_isa { RS_ISA_SCALAR = 0, RS_ISA_AVX2 = 1, RS_ISA_AVX512 = 2 };

/*
 * C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C, op = transpose when
 * trans_a / trans_b is non-zero. Row-major: op(A)[i,k] is A[i*lda+k] or
 * A[k*lda+i]. beta == 0 means C is write-only (NaNs in C are ignored).
 */
typedef void (*rs_gemm_fn)(int trans_a, int trans_b, int M, int N, int K, float alpha,
                           const float *A, int lda, const float *B, int ldb, float beta,
                           float *C, int ldc);

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

/* The dropout decision shared by every kernel variant and the references. */
static inline int rs_dropout_keep(uint64_t seed, uint64_t counter, float drop_p)
{
    uint64_t x = seed ^ (counter * 0xd1342543de82ef95ULL);
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return (float)(x >> 40) * (1.0f / 16777216.0f) >= drop_p;
}

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

typedef struct rs_kernels {
    enum rs_isa isa;
    rs_gemm_fn gemm;
    rs_attn_fwd_fn attn_fwd;
    rs_attn_bwd_fn attn_bwd;
    rs_layernorm_fwd_fn layernorm_fwd;
    rs_layernorm_bwd_fn layernorm_bwd;
    rs_adam_fn adam;
    rs_dot_fn dot;
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
                 int lda, const float *B, int ldb, float beta, float *C, int ldc);
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

#endif
