/*
 * The SIMD toolkits (kernels/x86/simd_avx2.h, simd_avx512.h): accuracy of
 * the one vector exp that every kernel uses (softmax attention, HSTU's
 * SiLU, the point-wise SiLU), on every variant this CPU runs.
 *
 * Against libm's expf, relative error max |y - expf(x)| / expf(x) over a
 * sweep of the float bit patterns of [RS_EXP_LO, RS_EXP_HI] (every
 * EXP_STRIDE-th float, plus both ends) must stay within RS_EXP_MAX_REL_ERR
 * (simd_exp.h). That is the whole range the kernels feed it: softmax
 * arguments are <= 0 (scores minus their running max) and reach -inf for
 * masked keys; SiLU's e^-x sees any score. Also: x < RS_EXP_LO and -inf give
 * exactly 0, x > RS_EXP_HI gives e^RS_EXP_HI, e^0 = 1 exactly, and rows of
 * awkward lengths leave the floats after their end alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/internal.h"
#include "kernels_isa.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef RS_HAVE_X86_KERNELS
#include "x86/simd_exp.h"

#define EXP_STRIDE 61 /* bit-pattern step of the sweep: ~35M floats */
#define CHUNK 4096

typedef void (*exp_row_fn)(size_t m, const float *x, float *y);

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Max relative error of fn against expf over the floats with bit patterns
 * lo, lo + stride, ... <= hi, plus hi (same sign, walking away from 0 when
 * negative: both orders just enumerate the interval). */
static double sweep(exp_row_fn fn, uint32_t lo, uint32_t hi, uint32_t stride, float *worst)
{
    float x[CHUNK], y[CHUNK];
    double max_rel = 0.0;
    uint64_t u = lo;
    int done = 0;
    while (!done) {
        size_t n = 0;
        while (n < CHUNK) {
            if (u >= hi) {
                x[n++] = from_bits(hi);
                done = 1;
                break;
            }
            x[n++] = from_bits((uint32_t)u);
            u += stride;
        }
        fn(n, x, y);
        for (size_t i = 0; i < n; i++) {
            double ref = expf(x[i]);
            double rel = fabs((double)y[i] - ref) / ref;
            if (rel > max_rel) {
                max_rel = rel;
                *worst = x[i];
            }
        }
    }
    return max_rel;
}

static void check_exp(const char *name, exp_row_fn fn)
{
    float worst_n = 0.0f, worst_p = 0.0f;
    /* negative half: bit patterns of -0 .. RS_EXP_LO; positive: +0 .. RS_EXP_HI */
    double en = sweep(fn, to_bits(-0.0f), to_bits(RS_EXP_LO), EXP_STRIDE, &worst_n);
    double ep = sweep(fn, 0u, to_bits(RS_EXP_HI), EXP_STRIDE, &worst_p);
    printf("# exp %s: max rel err vs expf %.3g (x = %.9g) on [%g, 0], %.3g (x = %.9g) on "
           "[0, %g]; bound %.3g\n",
           name, en, (double)worst_n, (double)RS_EXP_LO, ep, (double)worst_p, (double)RS_EXP_HI,
           RS_EXP_MAX_REL_ERR);
    assert_true(en <= RS_EXP_MAX_REL_ERR);
    assert_true(ep <= RS_EXP_MAX_REL_ERR);

    /* special values */
    const float sx[] = {0.0f, -0.0f, -INFINITY, -87.5f, -100.0f, -1e30f, 88.0f, 89.0f, 1e30f};
    float sy[9];
    fn(9, sx, sy);
    assert_true(sy[0] == 1.0f && sy[1] == 1.0f);
    for (int i = 2; i < 6; i++) assert_true(sy[i] == 0.0f);
    assert_true(sy[7] == sy[6] && sy[8] == sy[6] && isfinite(sy[6]));

    /* awkward lengths: results per element, the floats after the row untouched */
    static const size_t sizes[] = {1, 7, 8, 9, 15, 16, 17, 63, 65};
    float xs[80], ys[80];
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t m = sizes[s];
        for (size_t i = 0; i < 80; i++) {
            xs[i] = -20.0f + 0.37f * (float)i;
            ys[i] = 777.0f;
        }
        fn(m, xs, ys);
        for (size_t i = 0; i < 80; i++) {
            if (i < m) assert_true(fabs((double)ys[i] - expf(xs[i])) <=
                                   RS_EXP_MAX_REL_ERR * expf(xs[i]));
            else assert_true(ys[i] == 777.0f);
        }
    }
}

static void test_exp_accuracy(void **state)
{
    (void)state;
    rs_cpu_features f;
    rs_cpu_detect(&f);
    int ran = 0;
    if (f.avx2_fma) {
        check_exp("avx2", rs_exp_row_avx2);
        ran++;
    }
    if (f.avx512) {
        check_exp("avx512", rs_exp_row_avx512);
        ran++;
    }
    if (!ran) skip();
}
#else
static void test_exp_accuracy(void **state)
{
    (void)state;
    skip(); /* no SIMD kernels on this CPU family */
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp_accuracy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
