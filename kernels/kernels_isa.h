/*
 * Declarations of the per-ISA kernel variants. Each lives in a translation
 * unit compiled with its own -m flags (kernels/meson.build); dispatch.c and
 * the tests are compiled without them and only see these declarations, so a
 * variant is called only after rs_cpu_detect said the CPU supports it.
 * Signatures are the typedefs of kernels.h.
 */
#ifndef RS_KERNELS_ISA_H
#define RS_KERNELS_ISA_H

#include "kernels.h"

/* oneDNN backend (kernels/gemm_onednn.c, any CPU): dnnl_sgemm. Returns 0 on
 * success, -1 when oneDNN failed or is not built in (the caller falls back). */
int rs_gemm_onednn(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Largest head size of the tiled softmax attention kernels (their stack
 * buffers); larger heads fall back to the reference, on every ISA. */
#define RS_ATTN_DH_MAX 256

#if defined(__x86_64__) || defined(__i386__)
#define RS_HAVE_X86_KERNELS 1

/* ---- GEMM (kernels/x86/gemm_avx2.c, gemm_avx512.c, gemm_bf16.c) ---- */
void rs_gemm_avx2(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc,
                  float *scratch);
void rs_gemm_avx512(int trans_a, int trans_b, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta, float *C,
                    int ldc, float *scratch);
/* AVX-512-BF16: A and B rounded to bfloat16 (nearest even), products summed
 * in fp32 with vdpbf16ps; alpha, beta and C stay fp32. */
void rs_gemm_avx512_bf16(int trans_a, int trans_b, int M, int N, int K, float alpha,
                         const float *A, int lda, const float *B, int ldb, float beta,
                         float *C, int ldc, float *scratch);

/* ---- attention, layernorm, adam, dot: declared below by their authors ---- */

/* ---- fused causal softmax attention (kernels/x86/attention_avx2.c, attention_avx512.c) ----
 * Tiled over queries (one SIMD lane per query row) with an online softmax;
 * the L x L matrix is never stored. Tile buffers live on the stack (up to
 * ~56 KiB in the backward); head sizes above RS_ATTN_DH_MAX fall back to the
 * scalar reference. */
void rs_attn_fwd_avx2(int L, int start, int dh, float scale, const float *Q, const float *K,
                      const float *V, int ld, float drop_p, uint64_t seed, float *O,
                      float *lse);
void rs_attn_bwd_avx2(int L, int start, int dh, float scale, const float *Q, const float *K,
                      const float *V, const float *O, const float *dO, const float *lse,
                      int ld, float drop_p, uint64_t seed, float *dQ, float *dK, float *dV);
void rs_attn_fwd_avx512(int L, int start, int dh, float scale, const float *Q,
                        const float *K, const float *V, int ld, float drop_p, uint64_t seed,
                        float *O, float *lse);
void rs_attn_bwd_avx512(int L, int start, int dh, float scale, const float *Q,
                        const float *K, const float *V, const float *O, const float *dO,
                        const float *lse, int ld, float drop_p, uint64_t seed, float *dQ,
                        float *dK, float *dV);

/* AVX-512-BF16 (kernels/x86/attention_bf16.c): Q·K, dO·V and the forward P·V
 * with bf16-rounded inputs (vdpbf16ps, fp32 sums); softmax statistics, lse,
 * dropout and the dQ/dK/dV accumulations in fp32. */
void rs_attn_fwd_avx512_bf16(int L, int start, int dh, float scale, const float *Q,
                             const float *K, const float *V, int ld, float drop_p,
                             uint64_t seed, float *O, float *lse);
void rs_attn_bwd_avx512_bf16(int L, int start, int dh, float scale, const float *Q,
                             const float *K, const float *V, const float *O, const float *dO,
                             const float *lse, int ld, float drop_p, uint64_t seed, float *dQ,
                             float *dK, float *dV);

/* ---- layer norm (+residual), Adam, dot (kernels/x86/layernorm_*.c, adam_*.c, dot_*.c) ---- */
void rs_layernorm_fwd_avx2(int n, int d, const float *x, const float *r, const float *gamma,
                           const float *beta, float eps, float *y, float *mean, float *rstd);
void rs_layernorm_bwd_avx2(int n, int d, const float *x, const float *r, const float *gamma,
                           const float *mean, const float *rstd, const float *dy, float *dx,
                           float *dgamma, float *dbeta);
void rs_adam_avx2(size_t n, float *p, const float *g, float *m, float *v, float lr, float b1,
                  float b2, float eps, float wd, float bc1, float bc2);
float rs_dot_avx2(size_t n, const float *a, const float *b);
void rs_dot_panels_avx2(size_t n, int d, const float *panels, const float *x, float *y);
void rs_layernorm_fwd_avx512(int n, int d, const float *x, const float *r, const float *gamma,
                             const float *beta, float eps, float *y, float *mean, float *rstd);
void rs_layernorm_bwd_avx512(int n, int d, const float *x, const float *r, const float *gamma,
                             const float *mean, const float *rstd, const float *dy, float *dx,
                             float *dgamma, float *dbeta);
void rs_adam_avx512(size_t n, float *p, const float *g, float *m, float *v, float lr, float b1,
                    float b2, float eps, float wd, float bc1, float bc2);
float rs_dot_avx512(size_t n, const float *a, const float *b);
void rs_dot_panels_avx512(size_t n, int d, const float *panels, const float *x, float *y);

/* ---- HSTU pointwise attention (kernels/x86/hstu_attention_avx2.c, hstu_attention_avx512.c) ---- */
void rs_hstu_fwd_avx2(const rs_hstu_attn *a, float *o, int ld_o, float *scratch);
void rs_hstu_bwd_avx2(const rs_hstu_attn *a, const float *d_o, int ld_o, float *dq, float *dk,
                      float *dv, float *d_rab_pos, float *d_rab_time, float *scratch);
void rs_hstu_fwd_avx512(const rs_hstu_attn *a, float *o, int ld_o, float *scratch);
void rs_hstu_bwd_avx512(const rs_hstu_attn *a, const float *d_o, int ld_o, float *dq, float *dk,
                        float *dv, float *d_rab_pos, float *d_rab_time, float *scratch);

/* ---- point-wise row kernels (kernels/x86/pointwise_avx2.c, pointwise_avx512.c) ---- */
RS_POINTWISE_DECL(avx2)
RS_POINTWISE_DECL(avx512)

/* y[c] = e^x[c] with the kernels' shared vector exp (x86/simd_exp.h), for
 * the accuracy test (tests/test_simd.c); not in the kernel table. */
void rs_exp_row_avx2(size_t m, const float *x, float *y);
void rs_exp_row_avx512(size_t m, const float *x, float *y);

#endif
#endif
