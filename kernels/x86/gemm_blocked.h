/*
 * Cache-blocked GEMM driver shared by the SIMD variants. Each ISA unit
 * includes this header, so it is compiled with that unit's -m flags, and
 * passes its register-tiled micro-kernel.
 *
 * Loop order (row-major C, vectors run along N), BLIS style:
 *   jc: N in blocks of <= nc_max columns
 *     pc: K in blocks of <= kc_max; op(B)[pc.., jc..] is packed into
 *         micro-panels of nr columns (k-major, zero padded to the vector
 *         width): the kc x nc block stays in L2
 *       ic: M in blocks of mc_max rows: their kc columns of A stay in L2
 *         jr: one nr-column micro-panel of B (kc x nr), kept in L1 while
 *           ir: every MR-row tile of the block calls the micro-kernel.
 * A is not packed: the model GEMMs are tall and skinny (M up to 25600, N
 * and K ~ 50..1024), each A element meets only a few panels, so copying it
 * would cost about as much as the arithmetic (measured: copying MR-row
 * panels was slower at every shape). Both layouts of A are read
 * contiguously: rows (A·B) or, transposed, MR adjacent floats per k (Aᵀ·B).
 * Blocks are balanced (K=300 runs as 2 x 150, not 256 + 44).
 */
#ifndef RS_GEMM_BLOCKED_H
#define RS_GEMM_BLOCKED_H

#include <stddef.h>
#include <string.h>

/* Blocks used when the caller passes no scratch buffer (kernels.h): the
 * kernels then pack through a buffer on their own stack, small enough for
 * any thread stack: kc x nc floats of packed B, then the packed A tiles of
 * Aᵀ·B, mc/mr tiles of rs_gemm_at_tile(kc, mr) floats (mr = 6). 28 KB. */
#define RS_GEMM_STACK_KC 64
#define RS_GEMM_STACK_NC 64
#define RS_GEMM_STACK_MC 48
#define RS_GEMM_STACK_MR 6
#define RS_GEMM_STACK_FLOATS                                                        \
    (RS_GEMM_STACK_KC * RS_GEMM_STACK_NC +                                          \
     RS_GEMM_STACK_MC / RS_GEMM_STACK_MR * (RS_GEMM_STACK_KC * RS_GEMM_STACK_MR + 16))

/* One micro-tile: C[mr x ncols] (=|+=) alpha * A-panel · B panel.
 * a[r*rsa + k*csa] is op(A)[r,k]; the B panel holds kc rows of nv vectors,
 * row k at bp + k*rsb (packed: rsb = nv*vw; read in place: rsb = ldb, the
 * last vector then must be loaded with a mask). beta is applied to C (0: C
 * write-only). */
typedef void (*rs_gemm_ukr)(int mr, int nv, int ncols, int kc, const float *a, size_t rsa,
                            size_t csa, const float *bp, size_t rsb, float *c, size_t ldc,
                            float alpha, float beta);

static inline int rs_gemm_min(int a, int b) { return a < b ? a : b; }
static inline int rs_gemm_round_up(int x, int m) { return (x + m - 1) / m * m; }

/* Even split of n into blocks of at most max (returns the block size). */
static inline int rs_gemm_block(int n, int max, int multiple)
{
    int blocks = (n + max - 1) / max;
    int b = rs_gemm_round_up((n + blocks - 1) / blocks, multiple);
    return b > max ? max : b;
}

/* C = beta * C over M x N (beta 0 writes zeros: NaNs in C are dropped). */
static inline void rs_gemm_scale_c(int M, int N, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f)
            for (int j = 0; j < N; j++) c[j] = 0.0f;
        else
            for (int j = 0; j < N; j++) c[j] *= beta;
    }
}

/* Pack op(B)[k0..k0+kc, j0..j0+nc] into panels of nr columns: the panel at
 * column jr starts at dst + jr*kc and is kc rows of wp floats, wp = its width
 * rounded up to vw, the padding zeroed. */
static inline void rs_gemm_pack_b(int trans_b, const float *B, size_t ldb, int k0, int j0,
                                  int kc, int nc, int vw, int nr, float *restrict dst)
{
    for (int jr = 0; jr < nc; jr += nr) {
        int w = rs_gemm_min(nr, nc - jr), wp = rs_gemm_round_up(w, vw);
        float *restrict d = dst + (size_t)jr * kc;
        if (!trans_b) {
            for (int k = 0; k < kc; k++) {
                const float *restrict s = B + (size_t)(k0 + k) * ldb + j0 + jr;
                float *restrict dk = d + (size_t)k * wp;
                for (int j = 0; j < w; j++) dk[j] = s[j];
                for (int j = w; j < wp; j++) dk[j] = 0.0f;
            }
        } else {
            /* Transposing copy, 8 k at a time so both sides stay in cache lines. */
            for (int kb = 0; kb < kc; kb += 8) {
                int kn = rs_gemm_min(8, kc - kb);
                for (int j = 0; j < w; j++) {
                    const float *s = B + (size_t)(j0 + jr + j) * ldb + k0 + kb;
                    for (int k = 0; k < kn; k++) d[(size_t)(kb + k) * wp + j] = s[k];
                }
                for (int k = 0; k < kn; k++)
                    for (int j = w; j < wp; j++) d[(size_t)(kb + k) * wp + j] = 0.0f;
            }
        }
    }
}

/* Copy the mc x kc block of op(A) for Aᵀ·B into MR-row tiles: tile t holds
 * the mr values of each k contiguously at dst + t*rs_gemm_at_tile(kc, mr_max)
 * + k*mr_max. Unpacked, the transposed A is read a few floats per row of A,
 * one 4 KB page per k when lda >= 1024, which the hardware prefetchers do
 * not follow. */
static inline size_t rs_gemm_at_tile(int kc, int mr_max)
{
    /* +16 floats: tiles kc*mr_max apart would share a few L1 sets and evict
     * each other while the copy writes all of them at once */
    return (size_t)kc * mr_max + 16;
}

static inline __attribute__((always_inline)) void
rs_gemm_pack_at(const float *A, size_t lda, int mc, int kc, int mr_max, float *restrict dst)
{
    int full = mc / mr_max;
    size_t ts = rs_gemm_at_tile(kc, mr_max);
    for (int k = 0; k < kc; k++) {
        const float *restrict s = A + k * lda;
        float *restrict d = dst + (size_t)k * mr_max;
        for (int t = 0; t < full; t++) /* constant length: a couple of vector moves */
            memcpy(d + t * ts, s + t * mr_max, sizeof(float) * (size_t)mr_max);
        for (int m = full * mr_max; m < mc; m++) d[full * ts + m - full * mr_max] = s[m];
    }
}

/* Skip packing B when it is cheap to read in place and would be reused by
 * few row tiles: the weight gradient Xᵀ·dY has M = 50..200 rows, so packing
 * B (25600 x N) would cost about as much as multiplying with it. */
static inline int rs_gemm_b_in_place(int trans_b, int M, int ldb)
{
    return !trans_b && M <= 192 && (ldb <= 1024 || ldb % 1024 != 0);
}

/* buf: kc_max*nc_max floats for the packed B block, then the packed A
 * block (Aᵀ·B only): mc_max/mr_max tiles of rs_gemm_at_tile(kc_max) floats.
 * Aᵀ·B copies A when lda >= at_pack_lda (0: never) and several column
 * panels reuse it; below that the copy was measured slower than reading A
 * in place (lda 512: -10%), from lda 1024 faster (+10% AVX-512, +60% AVX2). */
static inline __attribute__((always_inline)) void
rs_gemm_drive(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
              int lda, const float *B, int ldb, float beta, float *C, int ldc, float *buf,
              int kc_max, int nc_max, int mc_max, int vw, int nr, int mr_max, int at_pack_lda,
              rs_gemm_ukr ukr)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        rs_gemm_scale_c(M, N, beta, C, ldc);
        return;
    }
    size_t rsa = trans_a ? 1 : (size_t)lda, csa = trans_a ? (size_t)lda : 1;
    int kc_step = rs_gemm_block(K, kc_max, 1);
    int nc_step = rs_gemm_block(N, nc_max, nr);
    int b_packed = !rs_gemm_b_in_place(trans_b, M, ldb);
    int a_packed = trans_a && at_pack_lda > 0 && lda >= at_pack_lda && nc_step > nr;
    float *abuf = buf + (size_t)kc_max * nc_max;
    for (int jc = 0; jc < N; jc += nc_step) {
        int nc = rs_gemm_min(nc_step, N - jc);
        for (int pc = 0; pc < K; pc += kc_step) {
            int kc = rs_gemm_min(kc_step, K - pc);
            size_t at_tile = rs_gemm_at_tile(kc, mr_max);
            if (b_packed) rs_gemm_pack_b(trans_b, B, (size_t)ldb, pc, jc, kc, nc, vw, nr, buf);
            float b = pc == 0 ? beta : 1.0f;
            for (int ic = 0; ic < M; ic += mc_max) {
                int mc_end = rs_gemm_min(M, ic + mc_max);
                if (a_packed)
                    rs_gemm_pack_at(A + ic + pc * csa, (size_t)lda, mc_end - ic, kc, mr_max, abuf);
                for (int jr = 0; jr < nc; jr += nr) {
                    int ncols = rs_gemm_min(nr, nc - jr), nv = (ncols + vw - 1) / vw;
                    const float *bp = b_packed ? buf + (size_t)jr * kc
                                               : B + (size_t)pc * ldb + jc + jr;
                    size_t rsb = b_packed ? (size_t)nv * vw : (size_t)ldb;
                    for (int ir = ic; ir < mc_end; ir += mr_max) {
                        int mr = rs_gemm_min(mr_max, M - ir);
                        float *c = C + (size_t)ir * ldc + jc + jr;
                        if (a_packed) {
                            const float *at = abuf + (size_t)((ir - ic) / mr_max) * at_tile;
                            ukr(mr, nv, ncols, kc, at, 1, (size_t)mr_max, bp, rsb, c,
                                (size_t)ldc, alpha, b);
                        } else {
                            ukr(mr, nv, ncols, kc, A + ir * rsa + pc * csa, rsa, csa, bp, rsb,
                                c, (size_t)ldc, alpha, b);
                        }
                    }
                }
            }
        }
    }
}

/* The fp32 entry point of each ISA: the caller's scratch with the full
 * blocks, or the stack buffer with the small ones, then the blocked driver. */
static inline __attribute__((always_inline)) void
rs_gemm_run(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
            const float *B, int ldb, float beta, float *C, int ldc, float *scratch, int kc_max,
            int nc_max, int mc_max, int vw, int nr, int mr_max, int at_pack_lda,
            rs_gemm_ukr ukr_n, rs_gemm_ukr ukr_t)
{
    _Alignas(64) float local[RS_GEMM_STACK_FLOATS];
    float *buf = scratch ? scratch : local;
    int kc = scratch ? kc_max : RS_GEMM_STACK_KC, nc = scratch ? nc_max : RS_GEMM_STACK_NC;
    int mc = scratch ? mc_max : RS_GEMM_STACK_MC;
    rs_gemm_drive(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, buf, kc, nc,
                  mc, vw, nr, mr_max, at_pack_lda, trans_a ? ukr_t : ukr_n);
}

#endif
