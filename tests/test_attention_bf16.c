/*
 * bf16 attention kernels (kernels/x86/attention_bf16.c) against the scalar
 * references, on random data with awkward sizes, padding offsets, dropout
 * and row strides larger than dh. Skipped when the ctx's kernel table has no
 * bf16 attention (CPU without AVX-512-BF16, or RECSYS_MAX_ISA below avx512).
 *
 * Error measure: max |x - ref| / max(max |ref|, NERR_FLOOR) per output array.
 * Bounds:
 *   BF16_TOL  vs the reference run on bf16-rounded Q, K, V, dO: the kernel
 *             also rounds the softmax weights P before P·V, and the backward
 *             uses the unrounded dO/K/Q in its fp32 accumulations (the
 *             reference sees rounded ones): each a ~2^-9 relative error.
 *   FP32_TOL  vs the plain fp32 reference: the input rounding on top, on
 *             the scale FP32_FLOOR = 1 (inputs are O(1)): where the exact dS
 *             cancels (L = 1: dQ = 0) a ~2^-9 |dO||V| residue remains.
 *             Observed ~5e-3 vs the rounded reference, ~1.5e-2 vs fp32.
 * The errors vs fp32 must also be clearly above fp32 noise (BF16_MIN_ERR):
 * proof that the products really are rounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/internal.h"
#include "kernels_isa.h"
#include "core/rng.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BF16_TOL 2e-2
#define FP32_TOL 5e-2
#define NERR_FLOOR 1e-1
#define FP32_FLOOR 1.0
#define BF16_MIN_ERR 1e-4

static void check(double err, double tol, const char *what, int L, int dh, int start, float drop)
{
    if (!(err <= tol)) {
        print_error("%s: L=%d dh=%d start=%d drop=%.2f err=%.3g > %.3g\n", what, L, dh, start,
                    drop, err, tol);
        fail();
    }
}

/* The bf16 entries of the ctx's table, or NULL (then the test skips). */
static recsys_ctx *bf16_ctx(void)
{
    rs_cpu_features f;
    rs_cpu_detect(&f);
    if (!f.avx512_bf16) return NULL;
    recsys_ctx *ctx = NULL;
    assert_int_equal(recsys_ctx_new(&ctx), RECSYS_OK);
    if (!ctx->kern.attn_fwd_bf16 || !ctx->kern.attn_bwd_bf16) {
        recsys_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

static void test_attention_bf16(void **state)
{
    (void)state;
    recsys_ctx *ctx = bf16_ctx();
    if (!ctx) skip();
    const rs_attn_fwd_fn fwd = ctx->kern.attn_fwd_bf16;
    const rs_attn_bwd_fn bwd = ctx->kern.attn_bwd_bf16;
    static const int Ls[] = {1, 3, 17, 63, 65, 200};
    static const int dhs[] = {1, 7, 25, 50, 64};
    static const float drops[] = {0.0f, 0.3f};
    rs_rng rng;
    rs_rng_seed(&rng, 2024);
    double worst_bf = 0.0, worst_fp = 0.0;
    for (size_t li = 0; li < sizeof Ls / sizeof *Ls; li++)
        for (size_t di = 0; di < sizeof dhs / sizeof *dhs; di++)
            for (int si = 0; si < 2; si++)
                for (size_t pi = 0; pi < 2; pi++) {
                    const int L = Ls[li], dh = dhs[di], ld = dh + 3, start = si ? L / 3 : 0;
                    const float drop = drops[pi], scale = 1.0f / sqrtf((float)dh);
                    const uint64_t seed = 99 + li * 7 + di;
                    const size_t n = (size_t)L * ld;
                    /* in[0..3]: Q K V dO; rin: the same rounded to bf16 */
                    float *in[4], *rin[4];
                    for (int t = 0; t < 4; t++) {
                        in[t] = alloc_f(n);
                        rin[t] = alloc_f(n);
                        for (size_t e = 0; e < n; e++) {
                            in[t][e] = (float)(4.0 * rs_rng_uniform(&rng) - 2.0);
                            rin[t][e] = bf16_round(in[t][e]);
                        }
                    }
                    float *O = alloc_f(n), *Or = alloc_f(n), *Of = alloc_f(n);
                    float *lse = alloc_f((size_t)L), *lser = alloc_f((size_t)L),
                          *lsef = alloc_f((size_t)L);
                    float *g[3], *gr[3], *gf[3]; /* dQ dK dV: kernel, rounded ref, fp32 ref */
                    for (int t = 0; t < 3; t++) {
                        g[t] = alloc_f(n);
                        gr[t] = alloc_f(n);
                        gf[t] = alloc_f(n);
                    }
                    for (size_t e = 0; e < n; e++) O[e] = SENTINEL;
                    for (int t = 0; t < 3; t++)
                        for (size_t e = 0; e < n; e++) g[t][e] = SENTINEL;

                    /* forward */
                    fwd(L, start, dh, scale, in[0], in[1], in[2], ld, drop, seed, O, lse);
                    rs_attn_fwd_ref(L, start, dh, scale, rin[0], rin[1], rin[2], ld, drop, seed,
                                    Or, lser);
                    rs_attn_fwd_ref(L, start, dh, scale, in[0], in[1], in[2], ld, drop, seed, Of,
                                    lsef);
                    assert_true(padding_intact(O, L, dh, ld));
                    double e1 = nerr_strided(O, Or, L, dh, ld, NERR_FLOOR),
                           e2 = nerr_strided(lse, lser, 1, L, L, NERR_FLOOR);
                    double e3 = nerr_strided(O, Of, L, dh, ld, FP32_FLOOR),
                           e4 = nerr_strided(lse, lsef, 1, L, L, FP32_FLOOR);
                    check(e1, BF16_TOL, "O vs bf16 ref", L, dh, start, drop);
                    check(e2, BF16_TOL, "lse vs bf16 ref", L, dh, start, drop);
                    check(e3, FP32_TOL, "O vs fp32 ref", L, dh, start, drop);
                    check(e4, FP32_TOL, "lse vs fp32 ref", L, dh, start, drop);
                    for (int i = 0; i < start; i++) assert_true(lse[i] == 0.0f && O[(size_t)i * ld] == 0.0f);
                    worst_bf = fmax(worst_bf, fmax(e1, e2));
                    worst_fp = fmax(worst_fp, fmax(e3, e4));

                    /* backward vs the rounded reference (same O and lse for both) */
                    bwd(L, start, dh, scale, in[0], in[1], in[2], Or, in[3], lser, ld, drop, seed,
                        g[0], g[1], g[2]);
                    rs_attn_bwd_ref(L, start, dh, scale, rin[0], rin[1], rin[2], Or, rin[3], lser,
                                    ld, drop, seed, gr[0], gr[1], gr[2]);
                    static const char *names_bf[3] = {"dQ vs bf16 ref", "dK vs bf16 ref",
                                                      "dV vs bf16 ref"};
                    for (int t = 0; t < 3; t++) {
                        assert_true(padding_intact(g[t], L, dh, ld));
                        double e = nerr_strided(g[t], gr[t], L, dh, ld, NERR_FLOOR);
                        check(e, BF16_TOL, names_bf[t], L, dh, start, drop);
                        worst_bf = fmax(worst_bf, e);
                    }
                    /* backward vs the fp32 reference */
                    bwd(L, start, dh, scale, in[0], in[1], in[2], Of, in[3], lsef, ld, drop, seed,
                        g[0], g[1], g[2]);
                    rs_attn_bwd_ref(L, start, dh, scale, in[0], in[1], in[2], Of, in[3], lsef, ld,
                                    drop, seed, gf[0], gf[1], gf[2]);
                    static const char *names_fp[3] = {"dQ vs fp32 ref", "dK vs fp32 ref",
                                                      "dV vs fp32 ref"};
                    for (int t = 0; t < 3; t++) {
                        double e = nerr_strided(g[t], gf[t], L, dh, ld, FP32_FLOOR);
                        check(e, FP32_TOL, names_fp[t], L, dh, start, drop);
                        worst_fp = fmax(worst_fp, e);
                    }

                    for (int t = 0; t < 4; t++) {
                        free(in[t]);
                        free(rin[t]);
                    }
                    for (int t = 0; t < 3; t++) {
                        free(g[t]);
                        free(gr[t]);
                        free(gf[t]);
                    }
                    free(O);
                    free(Or);
                    free(Of);
                    free(lse);
                    free(lser);
                    free(lsef);
                }
    print_message("worst error: %.3g vs bf16-input ref, %.3g vs fp32 ref\n", worst_bf, worst_fp);
    assert_true(worst_fp > BF16_MIN_ERR);
    recsys_ctx_free(ctx);
}

/* The entries exist only with AVX-512-BF16 and an avx512 cap. */
static void test_dispatch_bf16(void **state)
{
    (void)state;
    rs_cpu_features f;
    rs_cpu_detect(&f);
    rs_kernels k;
    rs_kernels_init(&k, &f, RS_ISA_AVX2);
    assert_null(k.attn_fwd_bf16);
    assert_null(k.attn_bwd_bf16);
    rs_kernels_init(&k, &f, RS_ISA_AVX512);
#ifdef RS_HAVE_X86_KERNELS
    if (f.avx512_bf16) {
        assert_ptr_equal(k.attn_fwd_bf16, rs_attn_fwd_avx512_bf16);
        assert_ptr_equal(k.attn_bwd_bf16, rs_attn_bwd_avx512_bf16);
        return;
    }
#endif
    assert_null(k.attn_fwd_bf16);
    assert_null(k.attn_bwd_bf16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attention_bf16),
        cmocka_unit_test(test_dispatch_bf16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
