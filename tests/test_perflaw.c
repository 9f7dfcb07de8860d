/* Performance Law fitter: recovery of known parameters, prediction, best
 * size, and clear errors for data that cannot determine the law. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/internal.h"
#include "analysis/levenberg_marquardt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define assert_near(a, b, eps)                                                          \
    do {                                                                                \
        double a_ = (a), b_ = (b);                                                      \
        if (!(fabs(a_ - b_) <= (eps))) fail_msg("%.17g != %.17g (tol %g)", a_, b_, (double)(eps)); \
    } while (0)

#define NP RECSYS_PERFLAW_N_PARAMS

static double g(double x, double w) { return -1.0 / (2.0 * pow(x, w)) - w * log(x); }

/* P(N,h,D) of docs/MODELS.md §5, written independently of the library. */
static double law(const double *t, double N, double h, double D)
{
    return t[0] * g(N, t[2]) + t[1] * g(h, t[3]) + g(D, t[4]) + t[5];
}

static const double TRUE_PARAMS[NP] = {-0.05, -0.08, 0.5, 0.8, 0.02, 0.9};
static const double LAYERS[] = {4, 8, 12, 16, 24, 32};
static const double HIDDEN[] = {25, 50, 75, 100};
static const double DATA[] = {1e5, 3e5, 1e6};

typedef struct fx {
    recsys_ctx *ctx;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (recsys_ctx_new(&f->ctx)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    recsys_ctx_free(f->ctx);
    free(f);
    return 0;
}

/* The full grid with uniform noise in [-noise, noise]. */
static recsys_perflaw *grid_fit(fx *f, double noise, uint64_t seed)
{
    recsys_perflaw *p = NULL;
    assert_int_equal(recsys_perflaw_new(f->ctx, &p), RECSYS_OK);
    rs_rng rng;
    rs_rng_seed(&rng, seed);
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 3; k++) {
                double e = noise * (2.0 * rs_rng_uniform(&rng) - 1.0);
                double y = law(TRUE_PARAMS, LAYERS[i], HIDDEN[j], DATA[k]) + e;
                assert_int_equal(recsys_perflaw_add(p, LAYERS[i], HIDDEN[j], DATA[k], y),
                                 RECSYS_OK);
            }
    recsys_status st = recsys_perflaw_fit(p);
    if (st) fprintf(stderr, "fit: %s\n", recsys_ctx_errmsg(f->ctx));
    assert_int_equal(st, RECSYS_OK);
    return p;
}

static void test_exact_recovery(void **state)
{
    fx *f = *state;
    recsys_perflaw *p = grid_fit(f, 0.0, 1);
    double t[NP], se[NP], r2 = 0;
    assert_int_equal(recsys_perflaw_params(p, t, se, &r2), RECSYS_OK);
    for (int j = 0; j < NP; j++) assert_near(t[j], TRUE_PARAMS[j], 1e-6);
    assert_true(r2 > 1 - 1e-12);
    recsys_perflaw_free(p);
}

static void test_noisy_recovery(void **state)
{
    fx *f = *state;
    recsys_perflaw *p = grid_fit(f, 1e-4, 2);
    double t[NP], se[NP], r2 = 0;
    assert_int_equal(recsys_perflaw_params(p, t, se, &r2), RECSYS_OK);
    assert_true(r2 > 0.999);
    for (int j = 0; j < NP; j++) {
        assert_true(isfinite(se[j]) && se[j] > 0);
        /* within 5 standard errors and 20% of the truth */
        assert_true(fabs(t[j] - TRUE_PARAMS[j]) <= 5 * se[j]);
        assert_true(fabs(t[j] - TRUE_PARAMS[j]) <= 0.2 * fabs(TRUE_PARAMS[j]));
    }
    /* standard errors grow with the noise: about 10x for the well-determined
     * w5; the N and h exponents may move to another, nearly as good basin */
    recsys_perflaw *q = grid_fit(f, 1e-3, 2);
    double se10[NP];
    assert_int_equal(recsys_perflaw_params(q, NULL, se10, NULL), RECSYS_OK);
    for (int j = 0; j < NP; j++) assert_true(se10[j] > 3 * se[j]);
    assert_true(se10[4] > 5 * se[4] && se10[4] < 20 * se[4]);
    recsys_perflaw_free(q);
    recsys_perflaw_free(p);
}

static void test_predict_and_best_size(void **state)
{
    fx *f = *state;
    recsys_perflaw *p = grid_fit(f, 1e-4, 3);
    double t[NP];
    assert_int_equal(recsys_perflaw_params(p, t, NULL, NULL), RECSYS_OK);
    double v = 0;
    assert_int_equal(recsys_perflaw_predict(p, 6, 40, 2e5, &v), RECSYS_OK);
    assert_near(v, law(t, 6, 40, 2e5), 1e-12);
    assert_near(v, law(TRUE_PARAMS, 6, 40, 2e5), 1e-3);

    const double cl[] = {2, 4, 8, 16, 64}, ch[] = {16, 32, 64, 128, 256};
    double bl = 0, bh = 0, bm = 0;
    assert_int_equal(recsys_perflaw_best_size(p, 5e5, cl, 5, ch, 5, &bl, &bh, &bm), RECSYS_OK);
    double best = -INFINITY, el = 0, eh = 0;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++)
            if (law(t, cl[i], ch[j], 5e5) > best) {
                best = law(t, cl[i], ch[j], 5e5);
                el = cl[i];
                eh = ch[j];
            }
    assert_true(bl == el && bh == eh);
    assert_near(bm, best, 1e-12);
    assert_int_equal(recsys_perflaw_best_size(p, 5e5, cl, 0, ch, 5, &bl, &bh, &bm),
                     RECSYS_E_INVALID);
    assert_int_equal(recsys_perflaw_predict(p, 0, 40, 2e5, &v), RECSYS_E_INVALID);
    assert_int_equal(recsys_perflaw_predict(p, NAN, 40, 2e5, &v), RECSYS_E_NUMERIC);
    recsys_perflaw_free(p);
}

static void test_underdetermined(void **state)
{
    fx *f = *state;
    recsys_perflaw *p = NULL;
    assert_int_equal(recsys_perflaw_new(f->ctx, &p), RECSYS_OK);
    double v;
    assert_int_equal(recsys_perflaw_predict(p, 4, 50, 1e5, &v), RECSYS_E_STATE);
    assert_int_equal(recsys_perflaw_params(p, NULL, NULL, NULL), RECSYS_E_STATE);
    /* fewer observations than parameters */
    for (int i = 0; i < 5; i++)
        assert_int_equal(recsys_perflaw_add(p, LAYERS[i], HIDDEN[i % 4], DATA[i % 3], 0.3),
                         RECSYS_OK);
    assert_int_equal(recsys_perflaw_fit(p), RECSYS_E_NUMERIC);
    recsys_perflaw_free(p);

    /* one layer count: w1, w3 and b cannot be told apart */
    assert_int_equal(recsys_perflaw_new(f->ctx, &p), RECSYS_OK);
    for (int j = 0; j < 4; j++)
        for (int k = 0; k < 3; k++)
            assert_int_equal(recsys_perflaw_add(p, 8, HIDDEN[j], DATA[k],
                                                law(TRUE_PARAMS, 8, HIDDEN[j], DATA[k])),
                             RECSYS_OK);
    assert_int_equal(recsys_perflaw_fit(p), RECSYS_E_NUMERIC);
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "cannot determine"));
    assert_int_equal(recsys_perflaw_predict(p, 4, 50, 1e5, &v), RECSYS_E_STATE);
    recsys_perflaw_free(p);

    /* one data value: w5 is collinear with b */
    assert_int_equal(recsys_perflaw_new(f->ctx, &p), RECSYS_OK);
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 4; j++)
            assert_int_equal(recsys_perflaw_add(p, LAYERS[i], HIDDEN[j], 1e5,
                                                law(TRUE_PARAMS, LAYERS[i], HIDDEN[j], 1e5)),
                             RECSYS_OK);
    assert_int_equal(recsys_perflaw_fit(p), RECSYS_E_NUMERIC);
    recsys_perflaw_free(p);
}

static void test_bad_input(void **state)
{
    fx *f = *state;
    recsys_perflaw *p = NULL;
    assert_int_equal(recsys_perflaw_new(f->ctx, NULL), RECSYS_E_INVALID);
    assert_int_equal(recsys_perflaw_new(f->ctx, &p), RECSYS_OK);
    assert_int_equal(recsys_perflaw_add(p, 4, 50, 1e5, NAN), RECSYS_E_NUMERIC);
    assert_int_equal(recsys_perflaw_add(p, NAN, 50, 1e5, 0.2), RECSYS_E_NUMERIC);
    assert_int_equal(recsys_perflaw_add(p, 4, INFINITY, 1e5, 0.2), RECSYS_E_NUMERIC);
    assert_int_equal(recsys_perflaw_add(p, 4, 50, -1, 0.2), RECSYS_E_INVALID);
    assert_int_equal(recsys_perflaw_add(p, 0, 50, 1e5, 0.2), RECSYS_E_INVALID);
    assert_int_equal(recsys_perflaw_add(NULL, 4, 50, 1e5, 0.2), RECSYS_E_INVALID);
    assert_int_equal(recsys_perflaw_fit(NULL), RECSYS_E_INVALID);
    assert_int_equal(recsys_perflaw_fit(p), RECSYS_E_NUMERIC); /* nothing added */
    recsys_perflaw_free(p);
    recsys_perflaw_free(NULL);
}

/* The solver itself: a bounded problem whose minimum sits on a bound. */
static void quad_resid(void *arg, const double *t, double *r, double *jac)
{
    (void)arg;
    r[0] = t[0] - 3.0; /* wants t0 = 3, bound is 2 */
    r[1] = t[1] + 1.0;
    r[2] = 0.5 * (t[0] + t[1]);
    if (jac) {
        jac[0] = 1; jac[1] = 0;
        jac[2] = 0; jac[3] = 1;
        jac[4] = 0.5; jac[5] = 0.5;
    }
}

static void test_lm_bounds(void **state)
{
    (void)state;
    double t[2] = {0, 0}, lo[2] = {-10, -10}, hi[2] = {2, 10};
    rs_lm_result res;
    assert_int_equal(rs_lm_solve(3, 2, quad_resid, NULL, t, lo, hi, 200, &res), 0);
    /* unconstrained minimum (8/3, -4/3); with t0 = 2 on its bound, minimising
     * (t1+1)² + (2+t1)²/4 gives t1 = -1.2 */
    assert_near(t[0], 2.0, 1e-12);
    assert_near(t[1], -1.2, 1e-9);
    assert_true(res.converged);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exact_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_noisy_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_predict_and_best_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_underdetermined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test(test_lm_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
