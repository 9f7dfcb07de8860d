/* GEMM: every kernel variant the CPU supports against rs_gemm_ref (double
 * accumulation) at awkward sizes, all transposes, alpha/beta variants,
 * padded leading dimensions; then rs_gemm through a ctx (threads, ISA caps,
 * K split, bf16 mode, oneDNN backend). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "kernels_isa.h"
#include "test_util.h"

/* Error bound: max |C - C_ref| / (|alpha| sum_k |a_ik||b_kj| + |beta||C0_ij|),
 * i.e. relative to the size of what was summed, not to the (possibly
 * cancelled) result. fp32 blocked sums of K <= 25600 terms stay far below. */
#define GEMM_FP32_TOL 1e-5
/* bf16 inputs carry 8 significant bits: each product is off by up to ~2^-8
 * relatively, whatever the accumulation. */
#define GEMM_BF16_TOL 1e-2

typedef struct variant {
    const char *name;
    rs_gemm_fn fn;
    int usable;
} variant;

static rs_cpu_features cpu(void)
{
    rs_cpu_features f;
    rs_cpu_detect(&f);
    return f;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static float frand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static float *rand_buf(size_t n)
{
    float *p = rs_malloc(n * sizeof(float) + 64);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

typedef struct problem {
    int ta, tb, M, N, K, lda, ldb, ldc;
    float alpha, beta;
    float *A, *B, *C0; /* C0: C before the call */
    size_t a_n, b_n, c_n;
} problem;

static void problem_init(problem *p, int ta, int tb, int M, int N, int K, int pad, float alpha,
                         float beta)
{
    *p = (problem){.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .alpha = alpha, .beta = beta};
    int a_rows = ta ? K : M, a_cols = ta ? M : K;
    int b_rows = tb ? N : K, b_cols = tb ? K : N;
    p->lda = a_cols + pad;
    p->ldb = b_cols + 2 * pad;
    p->ldc = N + pad;
    p->a_n = (size_t)a_rows * p->lda;
    p->b_n = (size_t)b_rows * p->ldb;
    p->c_n = (size_t)M * p->ldc;
    p->A = rand_buf(p->a_n);
    p->B = rand_buf(p->b_n);
    p->C0 = rand_buf(p->c_n);
    if (beta == 0.0f) /* C is write-only: NaNs there must not leak into the result */
        for (size_t i = 0; i < p->c_n; i++) p->C0[i] = NAN;
}

static void problem_free(problem *p)
{
    rs_free(p->A);
    rs_free(p->B);
    rs_free(p->C0);
}

/* Normalised error of C against the reference; also checks that padding
 * columns of C (beyond N) were left untouched. */
static double gemm_error(const problem *p, const float *C, int bf16)
{
    float *A = p->A, *B = p->B;
    if (bf16) {
        A = rs_malloc(p->a_n * sizeof(float) + 64);
        B = rs_malloc(p->b_n * sizeof(float) + 64);
        assert_non_null(A);
        assert_non_null(B);
        for (size_t i = 0; i < p->a_n; i++) A[i] = bf16_round(p->A[i]);
        for (size_t i = 0; i < p->b_n; i++) B[i] = bf16_round(p->B[i]);
    }
    float *ref = rs_malloc(p->c_n * sizeof(float) + 64);
    float *absA = rs_malloc(p->a_n * sizeof(float) + 64);
    float *absB = rs_malloc(p->b_n * sizeof(float) + 64);
    float *scale = rs_malloc(p->c_n * sizeof(float) + 64);
    assert_true(ref && absA && absB && scale);
    memcpy(ref, p->C0, p->c_n * sizeof(float));
    for (size_t i = 0; i < p->a_n; i++) absA[i] = fabsf(A[i]);
    for (size_t i = 0; i < p->b_n; i++) absB[i] = fabsf(B[i]);
    rs_gemm_ref(p->ta, p->tb, p->M, p->N, p->K, p->alpha, A, p->lda, B, p->ldb, p->beta, ref,
                p->ldc, NULL);
    rs_gemm_ref(p->ta, p->tb, p->M, p->N, p->K, 1.0f, absA, p->lda, absB, p->ldb, 0.0f, scale,
                p->ldc, NULL);
    double worst = 0.0;
    for (int i = 0; i < p->M; i++) {
        for (int j = 0; j < p->ldc; j++) {
            size_t x = (size_t)i * p->ldc + j;
            if (j >= p->N) { /* padding: must be bit-identical (NaN stays NaN) */
                if (memcmp(&C[x], &p->C0[x], sizeof(float)) != 0) worst = INFINITY;
                continue;
            }
            double s = fabs(p->alpha) * scale[x] +
                       (p->beta != 0.0f ? fabs(p->beta * p->C0[x]) : 0.0);
            double e = fabs((double)C[x] - ref[x]) / (s + 1e-30);
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e; /* NaN counts as failure */
        }
    }
    rs_free(ref);
    rs_free(absA);
    rs_free(absB);
    rs_free(scale);
    if (bf16) {
        rs_free(A);
        rs_free(B);
    }
    return worst;
}

/* Runs fn on p (C starts as C0) and returns the normalised error. */
static double run_variant(rs_gemm_fn fn, const problem *p, float *scratch, int bf16)
{
    float *C = rs_malloc(p->c_n * sizeof(float) + 64);
    assert_non_null(C);
    memcpy(C, p->C0, p->c_n * sizeof(float));
    fn(p->ta, p->tb, p->M, p->N, p->K, p->alpha, p->A, p->lda, p->B, p->ldb, p->beta, C,
       p->ldc, scratch);
    double e = gemm_error(p, C, bf16);
    rs_free(C);
    return e;
}

static int variants(variant *v)
{
    rs_cpu_features f = cpu();
    int n = 0;
#ifdef RS_HAVE_X86_KERNELS
    v[n++] = (variant){"gemm_avx2", rs_gemm_avx2, f.avx2_fma};
    v[n++] = (variant){"gemm_avx512", rs_gemm_avx512, f.avx512};
#else
    (void)f;
#endif
    return n;
}

static const float alphas[] = {1.0f, 0.5f, -1.5f, 1.0f, 0.0f};
static const float betas[] = {0.0f, 1.0f, 0.25f, -2.0f, 0.5f};

/* All sizes of interest x all transposes for one variant; K is sampled so
 * the whole matrix stays fast. Alpha/beta and padding rotate over the cases. */
static void sweep(rs_gemm_fn fn, const char *name, int bf16, double tol)
{
    static const int mn[] = {1, 3, 15, 16, 17, 63, 65, 127, 200, 257};
    static const int ks[] = {1, 3, 16, 17, 50, 65, 257};
    float *scratch = rs_malloc(RS_GEMM_SCRATCH_FLOATS * sizeof(float));
    assert_non_null(scratch);
    int n_mn = (int)(sizeof mn / sizeof *mn), n_k = (int)(sizeof ks / sizeof *ks);
    int count = 0;
    for (int t = 0; t < 4; t++) {
        for (int im = 0; im < n_mn; im++) {
            for (int in = 0; in < n_mn; in++) {
                /* each (M, N) pair sees two K values, all K values over the sweep */
                for (int s = 0; s < 2; s++) {
                    int K = ks[(im + 3 * in + s * 4 + t) % n_k];
                    int ab = (im + in + s + t) % 5, pad = (im + 2 * in + s) % 3 == 0 ? 0 : 5;
                    problem p;
                    problem_init(&p, t & 1, t >> 1, mn[im], mn[in], K, pad, alphas[ab], betas[ab]);
                    /* every 7th case without scratch: the stack-buffer path */
                    double e = run_variant(fn, &p, count % 7 == 3 ? NULL : scratch, bf16);
                    if (!(e <= tol))
                        fail_msg("%s ta=%d tb=%d M=%d N=%d K=%d lda=%d alpha=%g beta=%g: "
                                 "error %g > %g", name, p.ta, p.tb, p.M, p.N, p.K, p.lda,
                                 p.alpha, p.beta, e, tol);
                    problem_free(&p);
                    count++;
                }
            }
        }
    }
    rs_free(scratch);
}

static void test_variants_small(void **state)
{
    (void)state;
    variant v[4];
    int n = variants(v), ran = 0;
    for (int i = 0; i < n; i++) {
        if (!v[i].usable) continue;
        sweep(v[i].fn, v[i].name, 0, GEMM_FP32_TOL);
        ran++;
    }
    if (!ran) skip();
}

/* The ref is itself checked on a hand-computed case so the oracle is sound. */
static void test_ref_known_values(void **state)
{
    (void)state;
    const float A[6] = {1, 2, 3, 4, 5, 6};      /* 2x3 */
    const float B[6] = {7, 8, 9, 10, 11, 12};   /* 3x2 */
    float C[4] = {1, 1, 1, 1};
    rs_gemm_ref(0, 0, 2, 2, 3, 1.0f, A, 3, B, 2, 2.0f, C, 2, NULL);
    assert_float_equal(C[0], 58 + 2, 0);
    assert_float_equal(C[1], 64 + 2, 0);
    assert_float_equal(C[2], 139 + 2, 0);
    assert_float_equal(C[3], 154 + 2, 0);
    /* Aᵀ·Bᵀ with A stored 3x2 and B stored 2x3 gives the same product */
    const float At[6] = {1, 4, 2, 5, 3, 6}, Bt[6] = {7, 9, 11, 8, 10, 12};
    float D[4];
    rs_gemm_ref(1, 1, 2, 2, 3, 1.0f, At, 2, Bt, 3, 0.0f, D, 2, NULL);
    assert_float_equal(D[0], 58, 0);
    assert_float_equal(D[3], 154, 0);
}

/* The model shapes: M = 25600 rows, d = 50, the three training products. */
static void test_variants_model_shapes(void **state)
{
    (void)state;
    variant v[4];
    int n = variants(v), ran = 0;
    float *scratch = rs_malloc(RS_GEMM_SCRATCH_FLOATS * sizeof(float));
    assert_non_null(scratch);
    for (int i = 0; i < n; i++) {
        if (!v[i].usable) continue;
        ran++;
        /* pad: extra leading dimension; 1000 makes lda >= 1024, where Aᵀ·B copies A */
        struct { int ta, tb, M, N, K, pad; } shapes[] = {
            {0, 0, 25600, 50, 50, 0}, {0, 1, 25600, 50, 50, 0}, {1, 0, 50, 50, 25600, 0},
            {0, 0, 600, 130, 520, 7}, {1, 1, 70, 90, 300, 0},   {1, 0, 37, 300, 270, 1000},
            {1, 0, 250, 40, 70, 1000},
        };
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
            for (int with_scratch = 0; with_scratch < 2; with_scratch++) {
                if (!with_scratch && shapes[s].M * shapes[s].N * shapes[s].K > 20000000) continue;
                problem p;
                problem_init(&p, shapes[s].ta, shapes[s].tb, shapes[s].M, shapes[s].N,
                             shapes[s].K, shapes[s].pad, 1.0f, s == 2 ? 1.0f : 0.0f);
                double e = run_variant(v[i].fn, &p, with_scratch ? scratch : NULL, 0);
                if (!(e <= GEMM_FP32_TOL))
                    fail_msg("%s %dx%dx%d ta=%d tb=%d scratch=%d: error %g", v[i].name, p.M,
                             p.N, p.K, p.ta, p.tb, with_scratch, e);
                problem_free(&p);
            }
        }
    }
    rs_free(scratch);
    if (!ran) skip();
}

static void test_bf16_kernel(void **state)
{
    (void)state;
#ifdef RS_HAVE_X86_KERNELS
    rs_cpu_features f = cpu();
    if (!f.avx512_bf16) skip();
    /* Against the reference on bf16-rounded inputs: only the fp32
     * accumulation differs, so the fp32 bound holds... */
    sweep(rs_gemm_avx512_bf16, "gemm_avx512_bf16", 1, GEMM_FP32_TOL);
    /* ...and against the exact fp32 product, the bf16 bound. */
    problem p;
    problem_init(&p, 0, 1, 300, 50, 129, 3, 1.0f, 0.5f);
    double exact = run_variant(rs_gemm_avx512_bf16, &p, NULL, 0);
    assert_true(exact <= GEMM_BF16_TOL);
    assert_true(exact > 1e-6); /* it really did round the inputs */
    problem_free(&p);
#else
    skip();
#endif
}

/* ------------------------------------------------------------ via the ctx */

static double run_ctx(recsys_ctx *ctx, const problem *p, int bf16)
{
    float *C = rs_malloc(p->c_n * sizeof(float) + 64);
    assert_non_null(C);
    memcpy(C, p->C0, p->c_n * sizeof(float));
    rs_gemm(ctx, p->ta, p->tb, p->M, p->N, p->K, p->alpha, p->A, p->lda, p->B, p->ldb, p->beta,
            C, p->ldc);
    double e = gemm_error(p, C, bf16);
    rs_free(C);
    return e;
}

/* Shapes that exercise every split: rows only, rows + columns, K split
 * (weight gradient), tiny (serial), and ones with odd sizes. */
static const struct { int ta, tb, M, N, K; float alpha, beta; } ctx_shapes[] = {
    {0, 0, 4000, 50, 64, 1.0f, 0.0f},   /* rows */
    {0, 1, 3001, 65, 50, 0.5f, 1.0f},   /* rows, A·Bᵀ */
    {1, 0, 50, 64, 6000, 1.0f, 1.0f},   /* K split, accumulate into C */
    {1, 0, 17, 3, 5000, -1.0f, 0.0f},   /* K split, tiny C, NaN C */
    {0, 0, 40, 700, 90, 1.0f, 0.25f},   /* columns */
    {1, 1, 130, 257, 200, 2.0f, 0.0f},  /* everything transposed */
    {0, 0, 5, 7, 9, 1.0f, 0.0f},        /* serial */
};

static void check_ctx_shapes(recsys_ctx *ctx, const char *what, int bf16, double tol)
{
    for (size_t s = 0; s < sizeof ctx_shapes / sizeof *ctx_shapes; s++) {
        problem p;
        problem_init(&p, ctx_shapes[s].ta, ctx_shapes[s].tb, ctx_shapes[s].M, ctx_shapes[s].N,
                     ctx_shapes[s].K, (int)(s % 2) * 3, ctx_shapes[s].alpha, ctx_shapes[s].beta);
        double e = run_ctx(ctx, &p, bf16);
        if (!(e <= tol))
            fail_msg("%s shape %zu (%dx%dx%d ta=%d tb=%d): error %g", what, s, p.M, p.N, p.K,
                     p.ta, p.tb, e);
        problem_free(&p);
    }
}

static void test_ctx_threads_and_caps(void **state)
{
    (void)state;
    static const char *caps[] = {"scalar", "avx2", "avx512"};
    for (int threads = 1; threads <= 2; threads++) {
        recsys_ctx *ctx = new_ctx(threads);
        for (int c = 0; c < 3; c++) {
            assert_int_equal(recsys_ctx_set_max_isa(ctx, caps[c]), RECSYS_OK);
            char what[64];
            snprintf(what, sizeof what, "%s/%d threads", recsys_ctx_kernel_name(ctx, 0), threads);
            check_ctx_shapes(ctx, what, 0, GEMM_FP32_TOL);
        }
        /* the per-ctx scratch has grown, and is reused by the next calls */
        assert_non_null(ctx->gemm_scratch);
        recsys_ctx_free(ctx);
    }
}

static void test_ctx_bf16(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(2);
    if (recsys_ctx_set_bf16(ctx, 1) != RECSYS_OK) {
        recsys_ctx_free(ctx);
        skip();
    }
    check_ctx_shapes(ctx, "bf16", 1, GEMM_FP32_TOL);
    recsys_ctx_free(ctx);
}

static void test_ctx_onednn(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(2);
    recsys_status st = recsys_ctx_set_gemm_backend(ctx, "onednn");
#ifdef RECSYS_HAVE_ONEDNN
    assert_int_equal(st, RECSYS_OK);
    assert_string_equal(recsys_ctx_kernel_name(ctx, RECSYS_KERNEL_GEMM), "gemm_onednn");
    check_ctx_shapes(ctx, "onednn", 0, GEMM_FP32_TOL);
    assert_int_equal(recsys_ctx_set_gemm_backend(ctx, "native"), RECSYS_OK);
    recsys_ctx_free(ctx);
#else
    assert_int_equal(st, RECSYS_E_UNSUPPORTED);
    recsys_ctx_free(ctx);
    skip();
#endif
}

/* M, N <= 0 are no-ops; K = 0 gives beta*C (0 when beta = 0, even over NaN). */
static void test_degenerate(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(2);
    float C[6] = {1, 2, 3, 4, 5, 6}, A[1] = {7}, B[1] = {8};
    rs_gemm(ctx, 0, 0, 0, 3, 4, 1.0f, A, 1, B, 1, 0.0f, C, 3);
    assert_float_equal(C[0], 1, 0);
    rs_gemm(ctx, 0, 0, 2, 3, 0, 1.0f, A, 1, B, 3, 2.0f, C, 3);
    assert_float_equal(C[5], 12, 0);
    C[0] = NAN;
    rs_gemm(ctx, 0, 0, 2, 3, 0, 1.0f, A, 1, B, 3, 0.0f, C, 3);
    for (int i = 0; i < 6; i++) assert_float_equal(C[i], 0, 0);
    variant v[4];
    int n = variants(v);
    for (int i = 0; i < n; i++) {
        if (!v[i].usable) continue;
        float D[2] = {NAN, NAN};
        v[i].fn(0, 0, 1, 2, 0, 1.0f, A, 1, B, 2, 0.0f, D, 2, NULL);
        assert_float_equal(D[0], 0, 0);
        assert_float_equal(D[1], 0, 0);
    }
    recsys_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_known_values),
        cmocka_unit_test(test_variants_small),
        cmocka_unit_test(test_variants_model_shapes),
        cmocka_unit_test(test_bf16_kernel),
        cmocka_unit_test(test_ctx_threads_and_caps),
        cmocka_unit_test(test_ctx_bf16),
        cmocka_unit_test(test_ctx_onednn),
        cmocka_unit_test(test_degenerate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
