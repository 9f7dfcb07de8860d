/* Approximate Entropy: hand-worked values, limits, and bitwise agreement of
 * the fast evaluators with the plain O(N²) definition of docs/MODELS.md §5. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define assert_near(a, b, eps)                                                          \
    do {                                                                                \
        double a_ = (a), b_ = (b);                                                      \
        if (!(fabs(a_ - b_) <= (eps))) fail_msg("%.17g != %.17g (tol %g)", a_, b_, (double)(eps)); \
    } while (0)

/* ----------------------------------------------------------- reference */

/* Φ^L straight from the definition; ids compare as numbers. */
static double ref_phi(const double *u, size_t n, size_t L, double r)
{
    size_t M = n - L + 1;
    double sum = 0.0;
    for (size_t i = 0; i < M; i++) {
        int32_t c = 0;
        for (size_t j = 0; j < M; j++) {
            int match = 1;
            for (size_t k = 0; k < L && match; k++)
                if (!(fabs(u[j + k] - u[i + k]) <= r)) match = 0;
            c += match;
        }
        double p = (double)c / (double)M;
        sum += log(p > 0.0 ? p : 1e-10);
    }
    return sum / (double)M;
}

static double ref_apen(const double *u, size_t n, int m, double r)
{
    return fabs(ref_phi(u, n, (size_t)m + 1, r) - ref_phi(u, n, (size_t)m, r));
}

static double ref_apen_ids(const int32_t *ids, size_t n, int m, double r)
{
    double *u = malloc(n * sizeof *u);
    for (size_t i = 0; i < n; i++) u[i] = ids[i];
    /* docs/MODELS.md §5: on ids any r < 1 means exact matches */
    double v = ref_apen(u, n, m, r < 1 ? 0.0 : r);
    free(u);
    return v;
}

/* ----------------------------------------------------------- fixtures */

typedef struct fx {
    recsys_ctx *ctx;
    recsys_opts *opts;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (recsys_ctx_new(&f->ctx) || recsys_opts_new(f->ctx, &f->opts)) return -1;
    recsys_ctx_set_threads(f->ctx, 2);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    recsys_opts_free(f->opts);
    recsys_ctx_free(f->ctx);
    free(f);
    return 0;
}

static recsys_apen *make(fx *f, int m, double r, int64_t window)
{
    recsys_apen *a = NULL;
    assert_int_equal(recsys_opts_set_int(f->opts, "apen.m", m), RECSYS_OK);
    assert_int_equal(recsys_opts_set_float(f->opts, "apen.r", r), RECSYS_OK);
    assert_int_equal(recsys_opts_set_int(f->opts, "apen.window", window), RECSYS_OK);
    assert_int_equal(recsys_apen_new(f->ctx, f->opts, &a), RECSYS_OK);
    assert_non_null(a);
    return a;
}

static double seq_apen(recsys_apen *a, const int32_t *u, size_t n)
{
    double v = -1;
    assert_int_equal(recsys_apen_sequence(a, u, n, &v), RECSYS_OK);
    return v;
}

/* ----------------------------------------------------------- hand values */

/* u = 1 2 1 2 1 3 (N = 6), r = 0.
 * m = 1: windows 1,2,1,2,1,3 (M = 6); counts 3,2,3,2,3,1
 *   Φ¹ = (3 ln(3/6) + 2 ln(2/6) + ln(1/6)) / 6 ≈ -1.011404
 * length 2: 12,21,12,21,13 (M = 5); counts 2,2,2,2,1
 *   Φ² = (4 ln(2/5) + ln(1/5)) / 5 ≈ -1.054920
 *   ApEn(m=1) = |Φ² - Φ¹| ≈ 0.043516
 * length 3: 121,212,121,213 (M = 4); counts 2,1,2,1
 *   Φ³ = (2 ln(2/4) + 2 ln(1/4)) / 4 ≈ -1.039721
 *   ApEn(m=2) = |Φ³ - Φ²| ≈ 0.015199 */
static void test_hand_exact(void **state)
{
    fx *f = *state;
    const int32_t u[] = {1, 2, 1, 2, 1, 3};
    double phi1 = (3 * log(3.0 / 6) + 2 * log(2.0 / 6) + log(1.0 / 6)) / 6;
    double phi2 = (4 * log(2.0 / 5) + log(1.0 / 5)) / 5;
    double phi3 = (2 * log(2.0 / 4) + 2 * log(1.0 / 4)) / 4;
    recsys_apen *a = make(f, 1, 0, 0);
    double v = seq_apen(a, u, 6);
    assert_near(v, fabs(phi2 - phi1), 1e-12);
    assert_near(v, 0.043516, 1e-6);
    recsys_apen_free(a);
    a = make(f, 2, 0, 0);
    v = seq_apen(a, u, 6);
    assert_near(v, fabs(phi3 - phi2), 1e-12);
    assert_near(v, 0.015199, 1e-6);
    recsys_apen_free(a);
}

/* u = 1 2 4 1, m = 1, r = 1 (numeric comparison of ids).
 * length 1 (M = 4): 1 matches {1,2,1} -> 3; 2 matches {1,2,1} -> 3;
 *   4 matches {4} -> 1; 1 -> 3.  Φ¹ = (3 ln(3/4) + ln(1/4)) / 4 ≈ -0.562335
 * length 2 (M = 3): (1,2),(2,4),(4,1) match only themselves: Φ² = ln(1/3)
 *   ApEn = |ln(1/3) - Φ¹| ≈ 0.536277 */
static void test_hand_tolerance(void **state)
{
    fx *f = *state;
    const int32_t u[] = {1, 2, 4, 1};
    recsys_apen *a = make(f, 1, 1.0, 0);
    double v = seq_apen(a, u, 4);
    double phi1 = (3 * log(0.75) + log(0.25)) / 4;
    assert_near(v, fabs(log(1.0 / 3) - phi1), 1e-12);
    assert_near(v, 0.536277, 1e-6);
    /* the same values as doubles through the numeric entry point */
    const double d[] = {1, 2, 4, 1};
    double w = -1;
    assert_int_equal(recsys_apen_numeric(a, d, 4, &w), RECSYS_OK);
    assert_true(w == v);
    recsys_apen_free(a);
}

/* ----------------------------------------------------------- limits */

static void test_constant_and_periodic(void **state)
{
    fx *f = *state;
    enum { N = 3000 };
    int32_t *u = malloc(N * sizeof *u);
    for (int m = 1; m <= 4; m++) {
        recsys_apen *a = make(f, m, 0, 0);
        for (int i = 0; i < N; i++) u[i] = 7;
        assert_true(seq_apen(a, u, N) == 0.0); /* every C = 1 */
        for (int i = 0; i < N; i++) u[i] = 1 + i % 5;
        double v = seq_apen(a, u, N);
        assert_true(v >= 0 && v < 1e-3);
        recsys_apen_free(a);
    }
    free(u);
}

/* i.i.d. uniform over k symbols: Φ^m -> -m ln k, so ApEn -> ln k. */
static void test_iid_uniform(void **state)
{
    fx *f = *state;
    enum { N = 200000 };
    int32_t *u = malloc(N * sizeof *u);
    rs_rng rng;
    rs_rng_seed(&rng, 123);
    const int ks[] = {2, 4, 8};
    for (int t = 0; t < 3; t++) {
        int k = ks[t];
        for (int i = 0; i < N; i++) u[i] = 100 + (int32_t)(rs_rng_next(&rng) % (uint64_t)k);
        for (int m = 1; m <= 2; m++) {
            recsys_apen *a = make(f, m, 0, 0);
            double v = seq_apen(a, u, N);
            assert_near(v, log((double)k), 0.01);
            recsys_apen_free(a);
        }
    }
    /* a short i.i.d. sequence is biased low, as the estimator is known to be */
    for (int i = 0; i < 50; i++) u[i] = (int32_t)(rs_rng_next(&rng) % 8u);
    recsys_apen *a = make(f, 2, 0, 0);
    assert_true(seq_apen(a, u, 50) < log(8.0) - 0.3);
    recsys_apen_free(a);
    free(u);
}

/* ----------------------------------------------------------- vs reference */

static void test_exact_matches_reference(void **state)
{
    fx *f = *state;
    rs_rng rng;
    rs_rng_seed(&rng, 7);
    int32_t u[400];
    const double rs[] = {0.0, 0.5, -1.0};
    for (int trial = 0; trial < 60; trial++) {
        int m = 1 + trial % 4;
        size_t n = (size_t)m + 2 + (size_t)(rs_rng_next(&rng) % 300);
        int alphabet = 2 + (int)(rs_rng_next(&rng) % 6);
        /* negative and large ids too: hashing must not care */
        for (size_t i = 0; i < n; i++)
            u[i] = (int32_t)(rs_rng_next(&rng) % (uint64_t)alphabet) * 1000003 - 2000000;
        double r = rs[trial % 3];
        recsys_apen *a = make(f, m, r, 0);
        double v = seq_apen(a, u, n);
        double ref = ref_apen_ids(u, n, m, r);
        assert_true(v == ref); /* bitwise: same counts, same summation order */
        recsys_apen_free(a);
    }
}

static void test_tolerance_matches_reference(void **state)
{
    fx *f = *state;
    rs_rng rng;
    rs_rng_seed(&rng, 11);
    int32_t u[300];
    double d[300];
    for (int trial = 0; trial < 40; trial++) {
        int m = 1 + trial % 3;
        size_t n = (size_t)m + 2 + (size_t)(rs_rng_next(&rng) % 250);
        for (size_t i = 0; i < n; i++) u[i] = 1 + (int32_t)(rs_rng_next(&rng) % 12);
        double r = 1.0 + (double)(trial % 3); /* 1, 2, 3 */
        recsys_apen *a = make(f, m, r, 0);
        assert_true(seq_apen(a, u, n) == ref_apen_ids(u, n, m, r));
        recsys_apen_free(a);

        /* numeric sequences with ties and a tolerance */
        for (size_t i = 0; i < n; i++)
            d[i] = (double)(rs_rng_next(&rng) % 1000) / 997.0 - 0.3;
        double rn = 0.05 * (double)(1 + trial % 5);
        a = make(f, m, rn, 0);
        double v = -1;
        assert_int_equal(recsys_apen_numeric(a, d, n, &v), RECSYS_OK);
        assert_true(v == ref_apen(d, n, m, rn));
        recsys_apen_free(a);
    }
}

/* ----------------------------------------------------------- dataset */

static void fill_dataset(recsys_dataset *ds, int64_t *offsets, int32_t *items,
                         const int *lens, int n_users, rs_rng *rng)
{
    memset(ds, 0, sizeof *ds);
    offsets[0] = 0;
    for (int u = 0; u < n_users; u++) {
        offsets[u + 1] = offsets[u] + lens[u];
        for (int64_t i = offsets[u]; i < offsets[u + 1]; i++)
            items[i] = 1 + (int32_t)(rs_rng_next(rng) % (uint64_t)(2 + u % 7));
    }
    ds->n_users = n_users;
    ds->n_items = 10;
    ds->n_events = offsets[n_users];
    ds->offsets = offsets;
    ds->items = items;
    ds->holdout = 2;
}

static void test_dataset_mean(void **state)
{
    fx *f = *state;
    enum { U = 101 };
    int lens[U];
    int total = 0;
    rs_rng rng;
    rs_rng_seed(&rng, 5);
    for (int u = 0; u < U; u++) {
        lens[u] = u % 10 == 3 ? 3 : 4 + (int)(rs_rng_next(&rng) % 120); /* some too short */
        total += lens[u];
    }
    int64_t offsets[U + 1];
    int32_t *items = malloc((size_t)total * sizeof *items);
    recsys_dataset ds;
    fill_dataset(&ds, offsets, items, lens, U, &rng);

    const int64_t windows[] = {0, 50};
    for (int w = 0; w < 2; w++) {
        recsys_apen *a = make(f, 2, 0, windows[w]);
        double per_user[U], mean = -1, sum = 0;
        int64_t used = -1, expect_used = 0;
        assert_int_equal(recsys_apen_dataset(a, &ds, &mean, per_user, U, &used), RECSYS_OK);
        for (int u = 0; u < U; u++) {
            const int32_t *s = items + offsets[u];
            size_t n = (size_t)lens[u];
            if (windows[w] && n > (size_t)windows[w]) {
                s += n - (size_t)windows[w];
                n = (size_t)windows[w];
            }
            if (n < 4) {
                assert_true(isnan(per_user[u]));
                continue;
            }
            assert_true(per_user[u] == seq_apen(a, s, n));
            sum += per_user[u];
            expect_used++;
        }
        assert_int_equal(used, expect_used);
        assert_true(used < U);
        assert_true(mean == sum / (double)expect_used);

        /* one thread gives the same bits; per_user may be NULL */
        double mean1 = -1;
        recsys_ctx_set_threads(f->ctx, 1);
        assert_int_equal(recsys_apen_dataset(a, &ds, &mean1, NULL, 0, NULL), RECSYS_OK);
        recsys_ctx_set_threads(f->ctx, 2);
        assert_true(mean1 == mean);
        recsys_apen_free(a);
    }
    free(items);
}

static void test_dataset_from_arrays(void **state)
{
    fx *f = *state;
    /* two users: a constant one (ApEn 0) and 1 2 1 2 1 3 (0.015199 for m = 2) */
    const int64_t users[] = {10, 10, 10, 10, 10, 20, 20, 20, 20, 20, 20};
    const int64_t itms[] = {5, 5, 5, 5, 5, 1, 2, 1, 2, 1, 3};
    recsys_dataset *ds = NULL;
    recsys_status st = recsys_dataset_from_arrays(f->ctx, 11, users, itms, NULL, NULL, &ds);
    if (st == RECSYS_E_UNSUPPORTED) skip();
    assert_int_equal(st, RECSYS_OK);
    recsys_apen *a = make(f, 2, 0, 0);
    double mean = -1;
    int64_t used = 0;
    assert_int_equal(recsys_apen_dataset(a, ds, &mean, NULL, 0, &used), RECSYS_OK);
    assert_int_equal(used, 2);
    double phi2 = (4 * log(2.0 / 5) + log(1.0 / 5)) / 5;
    double phi3 = (2 * log(2.0 / 4) + 2 * log(1.0 / 4)) / 4;
    assert_near(mean, fabs(phi3 - phi2) / 2, 1e-12);
    recsys_apen_free(a);
    recsys_dataset_free(ds);

    /* r >= 1 compares the external ids: 300 and 100 get the dense ids 1 and
     * 2, which would match at r = 1, while 300 and 100 do not. */
    const int64_t u2[] = {1, 1, 1, 1, 1, 1, 1, 1};
    const int64_t ext[] = {300, 100, 101, 300, 100, 101, 100, 300};
    int32_t ext32[8], dense[8];
    assert_int_equal(recsys_dataset_from_arrays(f->ctx, 8, u2, ext, NULL, NULL, &ds), RECSYS_OK);
    const int32_t *seq = NULL;
    size_t n = 0;
    assert_int_equal(recsys_dataset_user_items(ds, 0, &seq, NULL, &n), RECSYS_OK);
    assert_int_equal(n, 8);
    for (int i = 0; i < 8; i++) {
        ext32[i] = (int32_t)ext[i];
        dense[i] = seq[i];
    }
    a = make(f, 1, 1.0, 0);
    assert_int_equal(recsys_apen_dataset(a, ds, &mean, NULL, 0, &used), RECSYS_OK);
    assert_true(mean == seq_apen(a, ext32, 8));
    assert_true(mean != seq_apen(a, dense, 8));
    recsys_apen_free(a);
    recsys_dataset_free(ds);
}

/* ----------------------------------------------------------- errors */

static void test_invalid(void **state)
{
    fx *f = *state;
    recsys_apen *a = NULL;
    assert_int_equal(recsys_apen_new(f->ctx, f->opts, NULL), RECSYS_E_INVALID);
    assert_int_not_equal(recsys_opts_set_int(f->opts, "apen.m", 0), RECSYS_OK);
    /* NULL opts means defaults: m = 2, r = 0, whole history */
    assert_int_equal(recsys_apen_new(f->ctx, NULL, &a), RECSYS_OK);
    const int32_t u[] = {1, 2, 3, 4};
    double v = -1;
    assert_int_equal(recsys_apen_sequence(a, NULL, 4, &v), RECSYS_E_INVALID);
    assert_int_equal(recsys_apen_sequence(a, u, 4, NULL), RECSYS_E_INVALID);
    assert_int_equal(recsys_apen_sequence(a, u, 3, &v), RECSYS_E_INVALID); /* N < m+2 */
    assert_non_null(strstr(recsys_ctx_errmsg(f->ctx), "too short"));
    assert_int_equal(recsys_apen_sequence(a, u, 4, &v), RECSYS_OK);
    assert_int_equal(recsys_apen_sequence(NULL, u, 4, &v), RECSYS_E_INVALID);
    const double d[] = {0.1, NAN, 0.3, 0.4};
    assert_int_equal(recsys_apen_numeric(a, d, 4, &v), RECSYS_E_NUMERIC);
    assert_int_equal(recsys_apen_dataset(a, NULL, &v, NULL, 0, NULL), RECSYS_E_INVALID);
    recsys_apen_free(a);
    recsys_apen_free(NULL);

    a = make(f, 1, -0.5, 0);
    const double e[] = {0.1, 0.2, 0.3, 0.4};
    assert_int_equal(recsys_apen_numeric(a, e, 4, &v), RECSYS_E_INVALID); /* r < 0 */
    recsys_apen_free(a);

    /* per_user too small, and a dataset where nobody is long enough */
    int lens[3] = {2, 3, 3};
    int64_t offsets[4];
    int32_t items[8];
    rs_rng rng;
    rs_rng_seed(&rng, 1);
    recsys_dataset ds;
    fill_dataset(&ds, offsets, items, lens, 3, &rng);
    a = make(f, 2, 0, 0);
    double pu[3];
    assert_int_equal(recsys_apen_dataset(a, &ds, &v, pu, 2, NULL), RECSYS_E_INVALID);
    int64_t used = -1;
    assert_int_equal(recsys_apen_dataset(a, &ds, &v, pu, 3, &used), RECSYS_E_INVALID);
    assert_int_equal(used, 0);
    assert_true(isnan(v) && isnan(pu[0]) && isnan(pu[2]));
    recsys_apen_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hand_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hand_tolerance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_constant_and_periodic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iid_uniform, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exact_matches_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tolerance_matches_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dataset_mean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dataset_from_arrays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
