/* HSTU attention kernels: the time bucket, the scalar reference against an
 * independent double-precision implementation (forward) and central finite
 * differences (backward), and every SIMD variant the CPU supports against
 * the reference at awkward sizes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/internal.h"
#include "kernels.h"
#include "kernels_isa.h"
#include "hstu_bucket.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*fwd_fn)(const rs_hstu_attn *, float *, int, float *);
typedef void (*bwd_fn)(const rs_hstu_attn *, const float *, int, float *, float *, float *,
                       float *, float *, float *);

/* --------------------------------------------------------------- buckets */

static void test_bucket_fast_matches_definition(void **state)
{
    (void)state;
    assert_int_equal(rs_hstu_time_bucket(0), 0);
    assert_int_equal(rs_hstu_time_bucket(1), 0);
    assert_int_equal(rs_hstu_time_bucket(-1), 0);
    assert_int_equal(rs_hstu_time_bucket(2), 2);       /* ln 2 / 0.301 = 2.30 */
    assert_int_equal(rs_hstu_time_bucket(86400), 37);  /* a day in seconds */
    assert_int_equal(rs_hstu_time_bucket(INT64_MAX), 128);
    assert_int_equal(rs_hstu_time_bucket(INT64_MIN), 128);
    for (int64_t x = -200000; x <= 200000; x++)
        if (rs_hstu_bucket_fast(x) != rs_hstu_time_bucket(x)) fail_msg("bucket(%lld)", (long long)x);
    /* every boundary, from both sides */
    for (int k = 1; k <= 128; k++) {
        double t = exp(0.301 * k);
        if (t > 9e18) break;
        int64_t c = (int64_t)t;
        for (int64_t x = c - 3; x <= c + 3; x++)
            if (x > 0 && rs_hstu_bucket_fast(x) != rs_hstu_time_bucket(x))
                fail_msg("bucket(%lld) near threshold %d", (long long)x, k);
    }
    rs_rng r;
    rs_rng_seed(&r, 7);
    for (int n = 0; n < 200000; n++) {
        int64_t x = (int64_t)(rs_rng_next(&r) >> (rs_rng_next(&r) % 64));
        if (n & 1) x = -x;
        assert_int_equal(rs_hstu_bucket_fast(x), rs_hstu_time_bucket(x));
    }
    assert_int_equal(rs_hstu_bucket_fast(INT64_MIN), 128);
}

/* ------------------------------------------------------- test problem */

typedef struct problem {
    int L, start, N, dqk, dv, ld, ld_o, time;
    float *q, *k, *v, *rab_pos, *rab_time, *d_o;
    int64_t *times, *next_times;
} problem;

static void problem_init(problem *p, int L, int start, int dqk, int dv, int time, uint64_t seed)
{
    rs_rng r;
    rs_rng_seed(&r, seed);
    p->L = L; p->start = start; p->N = L + 3; p->dqk = dqk; p->dv = dv; p->time = time;
    p->ld = 2 * dqk + dv + 3;  /* q, k, v side by side in one strided buffer */
    p->ld_o = dv + 5;
    size_t n = (size_t)(L > 0 ? L : 1) * p->ld;
    float *qkv = rs_malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) qkv[i] = (float)(urand(&r) * 0.8);
    p->q = qkv; p->k = qkv + dqk; p->v = qkv + 2 * dqk;
    p->rab_pos = rs_malloc(sizeof(float) * (size_t)(2 * p->N - 1));
    for (int i = 0; i < 2 * p->N - 1; i++) p->rab_pos[i] = (float)(urand(&r) * 0.5);
    p->rab_time = rs_malloc(sizeof(float) * RS_HSTU_TIME_BUCKETS);
    for (int i = 0; i < RS_HSTU_TIME_BUCKETS; i++) p->rab_time[i] = (float)(urand(&r) * 0.5);
    p->times = rs_malloc(sizeof(int64_t) * (size_t)(L + 1));
    p->next_times = rs_malloc(sizeof(int64_t) * (size_t)(L + 1));
    int64_t t = 1000000000;
    for (int i = 0; i < L; i++) {
        t += (int64_t)(rs_rng_uniform(&r) * rs_rng_uniform(&r) * 3e6);  /* spread of buckets */
        p->times[i] = t;
    }
    if (time == 3) /* dense sorted times with ties and rare jumps: narrow bucket ranges per tile */
        for (int i = 0; i < L; i++) {
            t += rs_rng_below(&r, 8) ? (int64_t)rs_rng_below(&r, 30) : (int64_t)rs_rng_below(&r, 200000);
            p->times[i] = t;
        }
    for (int i = 0; i < L; i++) p->next_times[i] = i + 1 < L ? p->times[i + 1] : p->times[i];
    if (time == 2) /* unsorted times of every magnitude: all buckets, both signs */
        for (int i = 0; i < L; i++) {
            p->times[i] = (int64_t)(rs_rng_next(&r) >> (2 + rs_rng_below(&r, 62)));
            p->next_times[i] = (int64_t)(rs_rng_next(&r) >> (2 + rs_rng_below(&r, 62)));
            if (rs_rng_next(&r) & 1) p->times[i] = -p->times[i];
        }
    p->d_o = rs_malloc(sizeof(float) * (size_t)(L > 0 ? L : 1) * p->ld_o);
    for (int i = 0; i < (L > 0 ? L : 1) * p->ld_o; i++) p->d_o[i] = (float)urand(&r);
}

static void problem_free(problem *p)
{
    rs_free((void *)p->q);
    rs_free(p->rab_pos); rs_free(p->rab_time); rs_free(p->times); rs_free(p->next_times);
    rs_free(p->d_o);
}

static rs_hstu_attn problem_args(const problem *p)
{
    rs_hstu_attn a = {p->L, p->start, p->N, p->dqk, p->dv, p->q, p->k, p->v, p->ld,
                      p->rab_pos, p->time ? p->rab_time : NULL, p->times, p->next_times};
    return a;
}

/* Independent double-precision forward on double copies of the inputs:
 * materialises the score matrix, as a plain transcription of docs/MODELS.md §3. */
typedef struct dprob {
    int L, start, N, dqk, dv, time;
    double *q, *k, *v, *rp, *rt;  /* q,k: L x dqk, v: L x dv (dense) */
    const int64_t *times, *next_times;
} dprob;

static void dprob_from(dprob *d, const problem *p)
{
    d->L = p->L; d->start = p->start; d->N = p->N; d->dqk = p->dqk; d->dv = p->dv; d->time = p->time;
    d->q = calloc((size_t)p->L * p->dqk, sizeof(double));
    d->k = calloc((size_t)p->L * p->dqk, sizeof(double));
    d->v = calloc((size_t)p->L * p->dv, sizeof(double));
    d->rp = calloc((size_t)(2 * p->N - 1), sizeof(double));
    d->rt = calloc(RS_HSTU_TIME_BUCKETS, sizeof(double));
    for (int i = 0; i < p->L; i++) {
        for (int c = 0; c < p->dqk; c++) {
            d->q[i * p->dqk + c] = p->q[(size_t)i * p->ld + c];
            d->k[i * p->dqk + c] = p->k[(size_t)i * p->ld + c];
        }
        for (int c = 0; c < p->dv; c++) d->v[i * p->dv + c] = p->v[(size_t)i * p->ld + c];
    }
    for (int i = 0; i < 2 * p->N - 1; i++) d->rp[i] = p->rab_pos[i];
    for (int i = 0; i < RS_HSTU_TIME_BUCKETS; i++) d->rt[i] = p->rab_time[i];
    d->times = p->times; d->next_times = p->next_times;
}

static void dprob_free(dprob *d) { free(d->q); free(d->k); free(d->v); free(d->rp); free(d->rt); }

static void dforward(const dprob *d, double *o /* L x dv */)
{
    int L = d->L;
    double *A = calloc((size_t)L * L, sizeof(double));
    for (int i = 0; i < L; i++)
        for (int j = 0; j < L; j++) {
            if (i < d->start || j < d->start || j > i) continue;
            double s = 0;
            for (int c = 0; c < d->dqk; c++) s += d->q[i * d->dqk + c] * d->k[j * d->dqk + c];
            s += d->rp[j - i + d->N - 1];
            if (d->time) {
                int64_t dt = d->next_times[i] - d->times[j];
                double lg = log((double)(llabs(dt) > 1 ? llabs(dt) : 1)) / 0.301;
                int b = (int)floor(lg);
                s += d->rt[b < 0 ? 0 : b > 128 ? 128 : b];
            }
            A[i * L + j] = s / (1.0 + exp(-s)) / d->N;
        }
    for (int i = 0; i < L; i++)
        for (int c = 0; c < d->dv; c++) {
            double acc = 0;
            for (int j = 0; j < L; j++) acc += A[i * L + j] * d->v[j * d->dv + c];
            o[i * d->dv + c] = acc;
        }
    free(A);
}

/* Objective Σ dO ⊙ O in double. */
static double dobjective(const dprob *d, const problem *p)
{
    double *o = calloc((size_t)d->L * d->dv, sizeof(double));
    dforward(d, o);
    double f = 0;
    for (int i = 0; i < d->L; i++)
        for (int c = 0; c < d->dv; c++) f += o[i * d->dv + c] * p->d_o[(size_t)i * p->ld_o + c];
    free(o);
    return f;
}

static double fd(dprob *d, const problem *p, double *x)
{
    const double h = 1e-6;
    double x0 = *x;
    *x = x0 + h;
    double fp = dobjective(d, p);
    *x = x0 - h;
    double fm = dobjective(d, p);
    *x = x0;
    return (fp - fm) / (2 * h);
}

static void check_close(double got, double want, double tol, const char *what, int idx)
{
    if (!(fabs(got - want) <= tol)) fail_msg("%s[%d]: got %.9g want %.9g (tol %.3g)", what, idx, got, want, tol);
}

static void ref_vs_double(int L, int start, int dqk, int dv, int time)
{
    problem p;
    problem_init(&p, L, start, dqk, dv, time, 1000 + L * 7 + dqk + time);
    rs_hstu_attn a = problem_args(&p);
    dprob d;
    dprob_from(&d, &p);

    /* forward */
    float *o = rs_malloc(sizeof(float) * (size_t)L * p.ld_o);
    rs_hstu_fwd_ref(&a, o, p.ld_o, NULL);
    double *od = calloc((size_t)L * dv, sizeof(double));
    dforward(&d, od);
    for (int i = 0; i < L; i++)
        for (int c = 0; c < dv; c++) check_close(o[(size_t)i * p.ld_o + c], od[i * dv + c], 1e-5, "o", i * dv + c);

    /* backward vs finite differences */
    float *g = rs_malloc(sizeof(float) * (size_t)L * p.ld);
    float *dq = g, *dk = g + dqk, *dvv = g + 2 * dqk;
    float *drp = rs_calloc((size_t)(2 * p.N - 1), sizeof(float));
    float *drt = rs_calloc(RS_HSTU_TIME_BUCKETS, sizeof(float));
    rs_hstu_bwd_ref(&a, p.d_o, p.ld_o, dq, dk, dvv, drp, drt, NULL);
    const double tol = 2e-5;
    for (int i = 0; i < L; i++) {
        for (int c = 0; c < dqk; c++) {
            check_close(dq[(size_t)i * p.ld + c], fd(&d, &p, &d.q[i * dqk + c]), tol, "dq", i * dqk + c);
            check_close(dk[(size_t)i * p.ld + c], fd(&d, &p, &d.k[i * dqk + c]), tol, "dk", i * dqk + c);
        }
        for (int c = 0; c < dv; c++)
            check_close(dvv[(size_t)i * p.ld + c], fd(&d, &p, &d.v[i * dv + c]), tol, "dv", i * dv + c);
    }
    for (int i = 0; i < 2 * p.N - 1; i++) check_close(drp[i], fd(&d, &p, &d.rp[i]), tol, "drab_pos", i);
    double used = 0;
    for (int i = 0; i < RS_HSTU_TIME_BUCKETS; i++) {
        double want = time ? fd(&d, &p, &d.rt[i]) : 0.0;
        check_close(drt[i], want, tol, "drab_time", i);
        used += fabs(want) > 1e-9;
    }
    if (time && L - start > 3) assert_true(used >= 3); /* the test exercises several buckets */
    rs_free(o); rs_free(g); rs_free(drp); rs_free(drt);
    free(od);
    dprob_free(&d);
    problem_free(&p);
}

static void test_ref_forward_backward(void **state)
{
    (void)state;
    ref_vs_double(9, 0, 3, 4, 0);
    ref_vs_double(9, 2, 3, 4, 1);
    ref_vs_double(12, 3, 5, 2, 1);
    ref_vs_double(1, 0, 2, 3, 1);
    ref_vs_double(5, 5, 2, 2, 1); /* all padding */
}

/* ----------------------------------------------------- SIMD vs reference */

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

/* Strided block compare: rows x width, max error relative to the largest value. */
static void compare_rows(const float *got, const float *want, int rows, int width, int ld,
                         const char *what, const char *isa, int L, int dqk, int dv)
{
    double m = 0;
    for (int i = 0; i < rows; i++) m = fmax(m, max_abs(want + (size_t)i * ld, (size_t)width));
    double tol = 2e-5 * m + 1e-7;
    for (int i = 0; i < rows; i++)
        for (int c = 0; c < width; c++) {
            double g = got[(size_t)i * ld + c], w = want[(size_t)i * ld + c];
            if (!(fabs(g - w) <= tol))
                fail_msg("%s %s L=%d dqk=%d dv=%d: [%d,%d] got %.8g want %.8g", isa, what, L, dqk, dv,
                         i, c, g, w);
        }
}

static void simd_case(const char *isa, fwd_fn fwd, bwd_fn bwd, int L, int start, int dqk, int dv,
                      int time, int use_scratch)
{
    problem p;
    problem_init(&p, L, start, dqk, dv, time, (uint64_t)(L * 131 + dqk * 17 + dv * 3 + time));
    rs_hstu_attn a = problem_args(&p);
    size_t no = (size_t)(L > 0 ? L : 1) * p.ld_o, ng = (size_t)(L > 0 ? L : 1) * p.ld;
    int nrp = 2 * p.N - 1;
    float *o1 = rs_malloc(sizeof(float) * no), *o2 = rs_malloc(sizeof(float) * no);
    float *g1 = rs_malloc(sizeof(float) * ng), *g2 = rs_malloc(sizeof(float) * ng);
    float *rp1 = rs_malloc(sizeof(float) * nrp), *rp2 = rs_malloc(sizeof(float) * nrp);
    float *rt1 = rs_malloc(sizeof(float) * RS_HSTU_TIME_BUCKETS);
    float *rt2 = rs_malloc(sizeof(float) * RS_HSTU_TIME_BUCKETS);
    float *scratch = use_scratch ? rs_malloc(sizeof(float) * rs_hstu_scratch_floats(dqk, dv)) : NULL;
    /* outputs start as garbage (written, not accumulated); rab grads start
     * equal and non-zero (accumulated) */
    for (size_t i = 0; i < no; i++) o1[i] = o2[i] = 1e30f;
    for (size_t i = 0; i < ng; i++) g1[i] = g2[i] = -1e30f;
    for (int i = 0; i < nrp; i++) rp1[i] = rp2[i] = 0.25f;
    for (int i = 0; i < RS_HSTU_TIME_BUCKETS; i++) rt1[i] = rt2[i] = -0.5f;

    rs_hstu_fwd_ref(&a, o1, p.ld_o, NULL);
    fwd(&a, o2, p.ld_o, scratch);
    compare_rows(o2, o1, L, dv, p.ld_o, "o", isa, L, dqk, dv);
    for (int i = 0; i < start && i < L; i++)
        for (int c = 0; c < dv; c++) assert_true(o2[(size_t)i * p.ld_o + c] == 0.0f);

    rs_hstu_bwd_ref(&a, p.d_o, p.ld_o, g1, g1 + dqk, g1 + 2 * dqk, rp1, rt1, NULL);
    bwd(&a, p.d_o, p.ld_o, g2, g2 + dqk, g2 + 2 * dqk, rp2, rt2, scratch);
    compare_rows(g2, g1, L, dqk, p.ld, "dq", isa, L, dqk, dv);
    compare_rows(g2 + dqk, g1 + dqk, L, dqk, p.ld, "dk", isa, L, dqk, dv);
    compare_rows(g2 + 2 * dqk, g1 + 2 * dqk, L, dv, p.ld, "dv", isa, L, dqk, dv);
    compare_rows(rp2, rp1, 1, nrp, nrp, "d_rab_pos", isa, L, dqk, dv);
    compare_rows(rt2, rt1, 1, RS_HSTU_TIME_BUCKETS, RS_HSTU_TIME_BUCKETS, "d_rab_time", isa, L, dqk, dv);
    /* the padding in each row's stride stays untouched */
    for (int i = 0; i < L; i++)
        for (int c = 2 * dqk + dv; c < p.ld; c++) assert_true(g2[(size_t)i * p.ld + c] == -1e30f);

    rs_free(o1); rs_free(o2); rs_free(g1); rs_free(g2); rs_free(rp1); rs_free(rp2);
    rs_free(rt1); rs_free(rt2); rs_free(scratch);
    problem_free(&p);
}

static void simd_sweep(const char *isa, fwd_fn fwd, bwd_fn bwd)
{
    static const int Ls[] = {1, 3, 17, 63, 65, 200};
    static const int ds[] = {1, 7, 25, 50};
    int n = 0;
    for (int li = 0; li < 6; li++)
        for (int qi = 0; qi < 4; qi++)
            for (int vi = 0; vi < 4; vi++)
                for (int t = 0; t < 2; t++) {
                    int L = Ls[li];
                    if (L == 200 && qi != vi) continue; /* keep the test fast */
                    int start = (n & 1) ? L / 3 + 1 : 0;
                    if (start > L) start = L;
                    simd_case(isa, fwd, bwd, L, start, ds[qi], ds[vi], t, n % 3 != 0);
                    n++;
                }
    /* dense sorted timestamps: the kernels' sorted-tile path, buckets by
     * threshold counts instead of gathers */
    for (int L = 17; L <= 200; L += 61) simd_case(isa, fwd, bwd, L, L / 5, 25, 50, 3, 1);
    /* timestamps over the whole int64 range */
    for (int L = 17; L <= 200; L += 183) simd_case(isa, fwd, bwd, L, 2, 9, 5, 2, 1);
    /* head sizes past the stack buffer without scratch: reference fallback */
    simd_case(isa, fwd, bwd, 20, 3, 100, 90, 1, 0);
    simd_case(isa, fwd, bwd, 20, 3, 100, 90, 1, 1);
}

static void test_simd_vs_ref(void **state)
{
    (void)state;
    rs_cpu_features f;
    rs_cpu_detect(&f);
    int ran = 0;
#ifdef RS_HAVE_X86_KERNELS
    if (f.avx2_fma) { simd_sweep("avx2", rs_hstu_fwd_avx2, rs_hstu_bwd_avx2); ran++; }
    if (f.avx512) { simd_sweep("avx512", rs_hstu_fwd_avx512, rs_hstu_bwd_avx512); ran++; }
#else
    (void)simd_sweep; /* no SIMD variants on this CPU family */
#endif
    if (!ran) skip();
}

/* The dispatched table entries exist at every ISA cap. */
static void test_dispatch(void **state)
{
    (void)state;
    rs_cpu_features f;
    rs_cpu_detect(&f);
    for (int isa = RS_ISA_SCALAR; isa <= RS_ISA_AVX512; isa++) {
        rs_kernels k;
        rs_kernels_init(&k, &f, (enum rs_isa)isa);
        assert_non_null(k.hstu_fwd);
        assert_non_null(k.hstu_bwd);
        if (isa == RS_ISA_SCALAR) assert_ptr_equal(k.hstu_fwd, rs_hstu_fwd_ref);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_fast_matches_definition),
        cmocka_unit_test(test_ref_forward_backward),
        cmocka_unit_test(test_simd_vs_ref),
        cmocka_unit_test(test_dispatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
