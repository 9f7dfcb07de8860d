/*
 * Helpers shared by the CMocka suites (white-box: they see lib/ internals).
 * Header-only, static inline, so a test links nothing extra and a helper it
 * does not use costs nothing. Include it after the test's own includes.
 *
 *   new_ctx(threads)            a ctx with that many threads (asserts success)
 *   alloc_f(n)                  n floats plus GUARD more, every one SENTINEL
 *   guard_ok(x, n)              the GUARD floats after x[0..n) are intact
 *   padding_intact(x, L, dh, ld) columns dh..ld-1 of L rows still SENTINEL
 *   nerr_strided(x, ref, L, dh, ld, floor)
 *                               max |x - ref| / max(max |ref|, floor) over
 *                               the first dh columns of L rows of stride ld
 *   fill(r, x, n, lo, hi)       uniform floats in [lo, hi), float arithmetic
 *   fill_sym(r, x, n, scale)    uniform floats in [-scale, scale), double
 *   urand(r)                    a uniform double in [-1, 1)
 *   bf16_round(x)               x rounded to the nearest bfloat16 (ties to even)
 */
#ifndef RS_TEST_UTIL_H
#define RS_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/internal.h"
#include "core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SENTINEL 777.0f /* written to stride padding and guards; kernels must leave it */
#define GUARD 19        /* sentinel floats after the end of every alloc_f buffer */

static inline recsys_ctx *new_ctx(int threads)
{
    recsys_ctx *ctx = NULL;
    assert_int_equal(recsys_ctx_new(&ctx), RECSYS_OK);
    assert_int_equal(recsys_ctx_set_threads(ctx, threads), RECSYS_OK);
    return ctx;
}

static inline float *alloc_f(size_t n)
{
    float *p = malloc(sizeof(float) * (n + GUARD));
    assert_non_null(p);
    for (size_t i = 0; i < n + GUARD; i++) p[i] = SENTINEL;
    return p;
}

static inline int guard_ok(const float *x, size_t n)
{
    for (size_t i = n; i < n + GUARD; i++)
        if (x[i] != SENTINEL) return 0;
    return 1;
}

static inline int padding_intact(const float *x, int L, int dh, int ld)
{
    for (int i = 0; i < L; i++)
        for (int c = dh; c < ld; c++)
            if (x[(size_t)i * ld + c] != SENTINEL) return 0;
    return 1;
}

static inline double nerr_strided(const float *x, const float *ref, int L, int dh, int ld,
                                  double floor_)
{
    double diff = 0.0, mag = 0.0;
    for (int i = 0; i < L; i++)
        for (int c = 0; c < dh; c++) {
            double d = fabs((double)x[(size_t)i * ld + c] - ref[(size_t)i * ld + c]);
            if (!(d <= diff)) diff = d; /* NaN propagates */
            if (fabs(ref[(size_t)i * ld + c]) > mag) mag = fabs(ref[(size_t)i * ld + c]);
        }
    return diff / (mag > floor_ ? mag : floor_);
}

static inline void fill(rs_rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)rs_rng_uniform(r);
}

static inline void fill_sym(rs_rng *r, float *x, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * (2.0 * rs_rng_uniform(r) - 1.0));
}

static inline double urand(rs_rng *r) { return 2.0 * rs_rng_uniform(r) - 1.0; }

static inline float bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* ---- finite-difference gradient checks (double precision) ---- */

#define FD_H 1e-5

static inline double *to_double(const float *x, size_t n)
{
    double *y = malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}

/* max |a - num| relative to max |num| must stay below rtol (NaN fails). */
static inline void expect_close(const char *what, const float *a, const double *num, size_t n,
                                double rtol)
{
    double maxn = 0.0, maxd = 0.0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(num[i]) > maxn) maxn = fabs(num[i]);
        double e = fabs((double)a[i] - num[i]);
        if (!(e <= maxd)) { maxd = e; worst = i; }
    }
    double rel = maxd / (maxn > 1e-12 ? maxn : 1e-12);
    if (!(rel <= rtol))
        fail_msg("%s: relative error %.3g > %.3g (worst at %zu: analytic %.9g, numeric %.9g)", what,
                 rel, rtol, worst, (double)a[worst], num[worst]);
}

/* Central differences of f with respect to every entry of p[0..n). */
typedef double (*loss_fn)(void *state);
static inline void numeric_grad(loss_fn f, void *state, double *p, size_t n, double *g)
{
    for (size_t i = 0; i < n; i++) {
        double s = p[i];
        p[i] = s + FD_H;
        double lp = f(state);
        p[i] = s - FD_H;
        double lm = f(state);
        p[i] = s;
        g[i] = (lp - lm) / (2 * FD_H);
    }
}

/* ---- a ctx (2 threads), opts with the given keys and their synthetic data ---- */

typedef struct syn_fixture {
    recsys_ctx *ctx;
    recsys_opts *opts;
    recsys_dataset *ds;
} syn_fixture;

static inline syn_fixture *syn_fixture_new(const char *const kv[][2], size_t n)
{
    syn_fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(recsys_ctx_new(&f->ctx), RECSYS_OK);
    assert_int_equal(recsys_ctx_set_threads(f->ctx, 2), RECSYS_OK);
    assert_int_equal(recsys_opts_new(f->ctx, &f->opts), RECSYS_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(recsys_opts_set(f->opts, kv[i][0], kv[i][1]), RECSYS_OK);
    assert_int_equal(recsys_dataset_synthetic(f->ctx, f->opts, &f->ds), RECSYS_OK);
    return f;
}

static inline void syn_fixture_free(syn_fixture *f)
{
    recsys_dataset_free(f->ds);
    recsys_opts_free(f->opts);
    recsys_ctx_free(f->ctx);
    free(f);
}

#endif
