/*
 * Point-wise row kernels (dropout with the counter hash, add, ReLU, SiLU,
 * embedding gather / scatter-add) of every ISA variant this CPU supports
 * against the scalar references, at sizes around the vector widths.
 * Everything but SiLU must be bitwise equal (same operations, no FMA), and
 * the dropout keep bytes must equal rs_dropout_keep for every counter,
 * including bases that carry across the 32-bit boundary (the AVX2 variant
 * builds its 64-bit multiplies from 32-bit halves). Every output buffer has
 * GUARD sentinel floats/bytes after its end that the kernels must leave.
 *   SILU_TOL  |x - ref| / max(|ref|, SILU_FLOOR): the SIMD exp is within 1 ulp
 *             (kernels/x86/simd_exp.h); σ and h σ add a few roundings. Observed ~3e-7.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/internal.h"
#include "kernels_isa.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SILU_TOL 2e-6
#define SILU_FLOOR 1e-30
#define SENT SENTINEL /* GUARD, SENTINEL: test_util.h */
#define SENT_BYTE 0xa5

static const size_t sizes[] = {0, 1, 7, 15, 16, 17, 25, 31, 32, 33, 50, 63, 65, 257};
#define NSIZES (sizeof sizes / sizeof sizes[0])

typedef struct pw_variant {
    const char *name;
    rs_dropout_fwd_fn dropout_fwd;
    rs_dropout_apply_fn dropout_apply;
    rs_vadd_fn add;
    rs_relu_fn relu;
    rs_relu_bwd_fn relu_bwd;
    rs_silu_fwd_fn silu_fwd;
    rs_silu_bwd_fn silu_bwd;
    rs_softmax_fn softmax;
    rs_embed_gather_fn gather;
    rs_embed_scatter_fn scatter;
} pw_variant;

#define PW_VARIANT(sfx)                                                                     \
    (pw_variant){#sfx,                rs_dropout_fwd_##sfx, rs_dropout_apply_##sfx,          \
                 rs_vadd_##sfx,       rs_relu_##sfx,        rs_relu_bwd_##sfx,               \
                 rs_silu_fwd_##sfx,   rs_silu_bwd_##sfx,    rs_softmax_##sfx,                \
                 rs_embed_gather_##sfx, rs_embed_scatter_##sfx}

/* SIMD variants this CPU runs (the reference is always compared against). */
static int get_variants(pw_variant *v)
{
    int n = 0;
#ifdef RS_HAVE_X86_KERNELS
    rs_cpu_features f;
    rs_cpu_detect(&f);
    if (f.avx2_fma) v[n++] = PW_VARIANT(avx2);
    if (f.avx512) v[n++] = PW_VARIANT(avx512);
#else
    (void)v;
#endif
    return n;
}

static void expect_same(const float *x, const float *ref, size_t n, const char *what,
                        const char *vname, size_t m)
{
    if (memcmp(x, ref, sizeof(float) * n) != 0 || !guard_ok(x, n)) {
        print_error("%s %s: m=%zu differs from the reference (or wrote past the end)\n", vname,
                    what, m);
        fail();
    }
}

static void test_dropout_fwd(void **state)
{
    (void)state;
    pw_variant v[4];
    int nv = get_variants(v);
    const uint64_t seeds[] = {0, 1, 0x123456789abcdefULL, ~0ULL, 42};
    const uint64_t bases[] = {0, 5, 0xfffffffdULL, 0x1fffffff0ULL, ~0ULL - 40};
    const float ps[] = {0.1f, 0.5f, 0.25f, 0.9f, 1e-7f, 0.99999994f, 1.0f, 0.3333333f};
    rs_rng r;
    rs_rng_seed(&r, 7);
    float *x = alloc_f(257), *y = alloc_f(257), *yr = alloc_f(257);
    uint8_t mk[257 + GUARD], mr[257 + GUARD];
    long kept = 0, total = 0;
    fill(&r, x, 257, -2.0f, 2.0f);
    for (size_t si = 0; si < NSIZES; si++) {
        size_t m = sizes[si];
        for (size_t a = 0; a < sizeof seeds / sizeof *seeds; a++)
            for (size_t b = 0; b < sizeof bases / sizeof *bases; b++)
                for (size_t q = 0; q < sizeof ps / sizeof *ps; q++) {
                    float p = ps[q], scale = 1.0f / (1.0f - (p < 1.0f ? p : 0.5f));
                    rs_dropout_fwd_ref(m, seeds[a], bases[b], p, scale, x, yr, mr);
                    for (size_t c = 0; c < m; c++) {
                        assert_int_equal(mr[c], rs_dropout_keep(seeds[a], bases[b] + c, p));
                        kept += mr[c];
                        total++;
                    }
                    for (int k = 0; k < nv; k++) {
                        memset(mk, SENT_BYTE, sizeof mk);
                        for (size_t c = 0; c < m + GUARD; c++) y[c] = SENT;
                        v[k].dropout_fwd(m, seeds[a], bases[b], p, scale, x, y, mk);
                        if (memcmp(mk, mr, m) != 0) {
                            print_error("%s dropout keep: m=%zu seed=%llx base=%llx p=%g\n",
                                        v[k].name, m, (unsigned long long)seeds[a],
                                        (unsigned long long)bases[b], (double)p);
                            fail();
                        }
                        for (size_t c = m; c < m + GUARD; c++) assert_int_equal(mk[c], SENT_BYTE);
                        expect_same(y, yr, m, "dropout fwd", v[k].name, m);
                        /* in place, no mask */
                        memcpy(y, x, sizeof(float) * m);
                        v[k].dropout_fwd(m, seeds[a], bases[b], p, scale, y, y, NULL);
                        expect_same(y, yr, m, "dropout fwd in place", v[k].name, m);
                    }
                }
    }
    /* the decisions are not degenerate: overall keep rate between the extremes */
    assert_true(kept > total / 4 && kept < total);
    free(x);
    free(y);
    free(yr);
}

/* Many consecutive counters and random seeds at p = 0.1 (the models' rate). */
static void test_dropout_many_counters(void **state)
{
    (void)state;
    pw_variant v[4];
    int nv = get_variants(v);
    enum { M = 4099 };
    float *x = alloc_f(M), *y = alloc_f(M), *yr = alloc_f(M);
    uint8_t *mk = malloc(M), *mr = malloc(M);
    assert_non_null(mk);
    assert_non_null(mr);
    rs_rng r;
    rs_rng_seed(&r, 11);
    fill(&r, x, M, -1.0f, 1.0f);
    for (int t = 0; t < 64; t++) {
        uint64_t seed = rs_rng_next(&r), base = rs_rng_next(&r) >> (t % 40);
        float p = t % 2 ? 0.1f : (float)rs_rng_uniform(&r);
        rs_dropout_fwd_ref(M, seed, base, p, 1.25f, x, yr, mr);
        for (int k = 0; k < nv; k++) {
            v[k].dropout_fwd(M, seed, base, p, 1.25f, x, y, mk);
            assert_memory_equal(mk, mr, M);
            expect_same(y, yr, M, "dropout fwd (long)", v[k].name, M);
        }
    }
    free(x);
    free(y);
    free(yr);
    free(mk);
    free(mr);
}

static void test_dropout_apply(void **state)
{
    (void)state;
    pw_variant v[4];
    int nv = get_variants(v);
    rs_rng r;
    rs_rng_seed(&r, 3);
    float *x = alloc_f(257), *y = alloc_f(257), *yr = alloc_f(257);
    uint8_t mk[257];
    fill(&r, x, 257, -3.0f, 3.0f);
    /* any non-zero byte keeps, as in the reference */
    for (int c = 0; c < 257; c++) mk[c] = (uint8_t)(c % 3 == 0 ? 0 : c % 5 == 0 ? 255 : c % 7 ? 1 : 2);
    for (size_t si = 0; si < NSIZES; si++) {
        size_t m = sizes[si];
        rs_dropout_apply_ref(m, mk, 1.1111112f, x, yr);
        for (int k = 0; k < nv; k++) {
            for (size_t c = 0; c < m + GUARD; c++) y[c] = SENT;
            v[k].dropout_apply(m, mk, 1.1111112f, x, y);
            expect_same(y, yr, m, "dropout apply", v[k].name, m);
        }
    }
    free(x);
    free(y);
    free(yr);
}

/* add, relu, relu_bwd (scale 1 and a dropout scale), with NaN, ±0 and ±inf. */
static void test_add_relu(void **state)
{
    (void)state;
    pw_variant v[4];
    int nv = get_variants(v);
    rs_rng r;
    rs_rng_seed(&r, 5);
    float *x = alloc_f(257), *y0 = alloc_f(257), *y = alloc_f(257), *yr = alloc_f(257);
    fill(&r, x, 257, -2.0f, 2.0f);
    fill(&r, y0, 257, -2.0f, 2.0f);
    y0[3] = NAN;
    y0[8] = -0.0f;
    y0[9] = 0.0f;
    y0[16] = INFINITY;
    y0[17] = -INFINITY;
    y0[40] = -0.0f;
    for (size_t si = 0; si < NSIZES; si++) {
        size_t m = sizes[si];
        for (int k = 0; k < nv; k++) {
            memcpy(yr, y0, sizeof(float) * m);
            memcpy(y, y0, sizeof(float) * m);
            rs_vadd_ref(m, x, yr);
            v[k].add(m, x, y);
            expect_same(y, yr, m, "add", v[k].name, m);

            memcpy(yr, y0, sizeof(float) * m);
            memcpy(y, y0, sizeof(float) * m);
            rs_relu_ref(m, yr);
            v[k].relu(m, y);
            expect_same(y, yr, m, "relu", v[k].name, m);

            for (int s = 0; s < 2; s++) {
                float scale = s ? 1.1111112f : 1.0f;
                memcpy(yr, x, sizeof(float) * m);
                memcpy(y, x, sizeof(float) * m);
                rs_relu_bwd_ref(m, y0, scale, yr);
                v[k].relu_bwd(m, y0, scale, y);
                expect_same(y, yr, m, "relu bwd", v[k].name, m);
            }
        }
    }
    free(x);
    free(y0);
    free(y);
    free(yr);
}

static void test_silu(void **state)
{
    (void)state;
    pw_variant v[4];
    int nv = get_variants(v);
    rs_rng r;
    rs_rng_seed(&r, 9);
    size_t n = 257;
    float *h = alloc_f(n), *a = alloc_f(n), *s = alloc_f(n), *ar = alloc_f(n), *sr = alloc_f(n);
    float *g = alloc_f(n), *d = alloc_f(n), *dr = alloc_f(n), *d0 = alloc_f(n);
    fill(&r, h, n, -12.0f, 12.0f);
    fill(&r, d0, n, -1.0f, 1.0f);
    h[0] = 0.0f;
    h[5] = -100.0f;
    h[6] = 100.0f;
    h[7] = -87.5f;
    for (size_t si = 0; si < NSIZES; si++) {
        size_t m = sizes[si];
        memcpy(ar, h, sizeof(float) * m);
        rs_silu_fwd_ref(m, ar, sr);
        memcpy(g, ar, sizeof(float) * m);
        memcpy(dr, d0, sizeof(float) * m);
        rs_silu_bwd_ref(m, sr, g, dr);
        for (int k = 0; k < nv; k++) {
            memcpy(a, h, sizeof(float) * m);
            v[k].silu_fwd(m, a, s);
            assert_true(guard_ok(a, m) && guard_ok(s, m));
            for (size_t c = 0; c < m; c++) {
                double ea = fabs((double)a[c] - ar[c]) / fmax(fabs(ar[c]), SILU_FLOOR);
                double es = fabs((double)s[c] - sr[c]) / fmax(fabs(sr[c]), SILU_FLOOR);
                if (!(ea <= SILU_TOL && es <= SILU_TOL)) {
                    print_error("%s silu fwd: m=%zu h=%g a=%g ref %g, s=%g ref %g\n", v[k].name,
                                m, (double)h[c], (double)a[c], (double)ar[c], (double)s[c],
                                (double)sr[c]);
                    fail();
                }
            }
            /* the backward itself is exact given the same s and g */
            memcpy(d, d0, sizeof(float) * m);
            v[k].silu_bwd(m, sr, g, d);
            expect_same(d, dr, m, "silu bwd", v[k].name, m);
        }
    }
    float *bufs[] = {h, a, s, ar, sr, g, d, dr, d0};
    for (int i = 0; i < 9; i++) free(bufs[i]);
}

/* Softmax of rows of every awkward length, with masked (-inf) entries and
 * a wide range: each SIMD variant within 2e-6 (relative) of the reference,
 * masked entries exactly 0, the row summing to 1, nothing written past it. */
static void test_softmax(void **state)
{
    (void)state;
    pw_variant v[4];
    int nv = get_variants(v);
    rs_rng r;
    rs_rng_seed(&r, 21);
    size_t n = 257;
    float *x0 = alloc_f(n), *x = alloc_f(n), *xr = alloc_f(n);
    fill(&r, x0, n, -30.0f, 30.0f);
    for (size_t c = 3; c < n; c += 5) x0[c] = -INFINITY;
    x0[1] = 80.0f; /* far above the rest: the others underflow towards 0 */
    for (size_t si = 0; si < NSIZES; si++) {
        size_t m = sizes[si];
        if (!m) continue;
        memcpy(xr, x0, sizeof(float) * m);
        rs_softmax_ref(m, xr);
        double sum = 0;
        for (size_t c = 0; c < m; c++) sum += xr[c];
        assert_true(fabs(sum - 1.0) < 1e-5);
        for (int k = 0; k < nv; k++) {
            memcpy(x, x0, sizeof(float) * m);
            v[k].softmax(m, x);
            assert_true(guard_ok(x, m));
            for (size_t c = 0; c < m; c++) {
                double e = fabs((double)x[c] - xr[c]) / fmax(fabs(xr[c]), 1e-30);
                if (x0[c] == -INFINITY) assert_true(x[c] == 0.0f);
                else if (!(e <= 2e-6 || fabs((double)x[c] - xr[c]) < 1e-37)) {
                    print_error("%s softmax: m=%zu c=%zu x=%g got %g ref %g\n", v[k].name, m, c,
                                (double)x0[c], (double)x[c], (double)xr[c]);
                    fail();
                }
            }
        }
    }
    free(x0);
    free(x);
    free(xr);
}

static void test_embedding(void **state)
{
    (void)state;
    pw_variant v[4];
    int nv = get_variants(v);
    rs_rng r;
    rs_rng_seed(&r, 13);
    const int dims[] = {1, 7, 15, 16, 17, 25, 50, 65};
    const int rows[] = {0, 1, 7, 17, 65};
    enum { V = 23 };
    for (size_t di = 0; di < sizeof dims / sizeof *dims; di++)
        for (size_t ri = 0; ri < sizeof rows / sizeof *rows; ri++) {
            int d = dims[di], n = rows[ri];
            size_t nd = (size_t)n * d, vd = (size_t)V * d;
            float *table = alloc_f(vd), *y0 = alloc_f(nd), *y = alloc_f(nd), *yr = alloc_f(nd);
            float *dy = alloc_f(nd), *t0 = alloc_f(vd), *t = alloc_f(vd), *tr = alloc_f(vd);
            int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
            assert_non_null(ids);
            fill(&r, table, vd, -1.0f, 1.0f);
            fill(&r, y0, nd, -1.0f, 1.0f);
            fill(&r, dy, nd, -1.0f, 1.0f);
            fill(&r, t0, vd, -1.0f, 1.0f);
            for (int i = 0; i < n; i++) ids[i] = (int32_t)(rs_rng_next(&r) % 5); /* repeats */
            float scale = sqrtf((float)d);
            for (int k = 0; k < nv; k++)
                for (int acc = 0; acc < 2; acc++) {
                    memcpy(yr, y0, sizeof(float) * nd);
                    memcpy(y, y0, sizeof(float) * nd);
                    rs_embed_gather_ref(n, d, table, ids, scale, acc, yr);
                    v[k].gather(n, d, table, ids, scale, acc, y);
                    expect_same(y, yr, nd, acc ? "gather (accumulate)" : "gather", v[k].name, nd);
                }
            /* scatter: padding ids skipped, repeated rows summed in row order,
             * whole width and a column block that starts mid-row */
            if (n > 2) ids[2] = -1;
            int blocks[][2] = {{0, d}, {d / 3, d}, {0, d / 2 + 1 < d ? d / 2 + 1 : d}};
            for (int k = 0; k < nv; k++)
                for (int bI = 0; bI < 3; bI++) {
                    memcpy(tr, t0, sizeof(float) * vd);
                    memcpy(t, t0, sizeof(float) * vd);
                    rs_embed_scatter_ref(n, d, blocks[bI][0], blocks[bI][1], ids, 0.5f * scale, dy, tr);
                    v[k].scatter(n, d, blocks[bI][0], blocks[bI][1], ids, 0.5f * scale, dy, t);
                    expect_same(t, tr, vd, "scatter", v[k].name, vd);
                }
            float *bufs[] = {table, y0, y, yr, dy, t0, t, tr};
            for (int i = 0; i < 8; i++) free(bufs[i]);
            free(ids);
        }
}

/* The table picks the variant of the best ISA allowed, the reference when capped. */
static void test_pointwise_dispatch(void **state)
{
    (void)state;
    rs_cpu_features f;
    rs_cpu_detect(&f);
    rs_kernels k;
    rs_kernels_init(&k, &f, RS_ISA_SCALAR);
    assert_ptr_equal(k.dropout_fwd, rs_dropout_fwd_ref);
    assert_ptr_equal(k.embed_scatter, rs_embed_scatter_ref);
    assert_ptr_equal(k.softmax, rs_softmax_ref);
#ifdef RS_HAVE_X86_KERNELS
    rs_kernels_init(&k, &f, RS_ISA_AVX512);
    if (f.avx512) assert_ptr_equal(k.dropout_fwd, rs_dropout_fwd_avx512);
    else if (f.avx2_fma) assert_ptr_equal(k.dropout_fwd, rs_dropout_fwd_avx2);
    if (f.avx512) assert_ptr_equal(k.softmax, rs_softmax_avx512);
    rs_kernels_init(&k, &f, RS_ISA_AVX2);
    if (f.avx2_fma) assert_ptr_equal(k.relu_bwd, rs_relu_bwd_avx2);
    if (f.avx2_fma) assert_ptr_equal(k.softmax, rs_softmax_avx2);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dropout_fwd),
        cmocka_unit_test(test_dropout_many_counters),
        cmocka_unit_test(test_dropout_apply),
        cmocka_unit_test(test_add_relu),
        cmocka_unit_test(test_silu),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_pointwise_dispatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
