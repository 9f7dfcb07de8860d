/*
 * SIMD kernels (attention fwd/bwd, layer norm fwd/bwd, Adam, dot) against the
 * scalar references, for every ISA variant this CPU supports, on random data
 * with awkward sizes: lengths and head sizes that are not multiples of the
 * vector width, padding offsets, dropout, row strides larger than dh.
 *
 * Error measure: normalised max error, max_i |x_i - ref_i| / max(max_i |ref_i|,
 * NERR_FLOOR) over one output array. Inputs are O(1), so outputs that cancel
 * to ~0 as a whole (e.g. dQ for L = 1, where dP - D is exactly 0 in exact
 * arithmetic) are compared absolutely at the NERR_FLOOR scale. Bounds (float
 * kernels vs references that sum in double):
 *   ATTN_TOL  O and lse: float dot products over dh <= 64 and softmax sums
 *             over <= 257 keys, a ~1 ulp vector exp; observed ~1e-6.
 *   ATTN_BWD_TOL  dQ, dK, dV: dS = A (dP - D) loses a few bits to
 *             cancellation; observed ~6e-6.
 *   LN_TOL    layer norm outputs: float row sums over d <= 257.
 *   ADAM_TOL  the SIMD update uses the reference's operation order without
 *             FMA, so it is bitwise equal in practice; the bound is slack.
 *   DOT_TOL   |dot - ref| / sum_i |a_i b_i| (float accumulation, n <= 1000).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ATTN_TOL 1e-5
#define ATTN_BWD_TOL 2e-5
#define LN_TOL 1e-5
#define ADAM_TOL 1e-6
#define DOT_TOL 1e-6
#define NERR_FLOOR 1e-1

typedef struct variant {
    const char *name;
    int supported;
    rs_attn_fwd_fn attn_fwd;
    rs_attn_bwd_fn attn_bwd;
    rs_layernorm_fwd_fn ln_fwd;
    rs_layernorm_bwd_fn ln_bwd;
    rs_adam_fn adam;
    rs_dot_fn dot;
} variant;

static int get_variants(variant *v)
{
    int n = 0;
#ifdef RS_HAVE_X86_KERNELS
    rs_cpu_features f;
    rs_cpu_detect(&f);
    v[n++] = (variant){"avx2",          f.avx2_fma,         rs_attn_fwd_avx2,
                       rs_attn_bwd_avx2, rs_layernorm_fwd_avx2, rs_layernorm_bwd_avx2,
                       rs_adam_avx2,    rs_dot_avx2};
    v[n++] = (variant){"avx512",          f.avx512,             rs_attn_fwd_avx512,
                       rs_attn_bwd_avx512, rs_layernorm_fwd_avx512, rs_layernorm_bwd_avx512,
                       rs_adam_avx512,    rs_dot_avx512};
#else
    (void)v;
#endif
    return n;
}

static double nerr(const float *x, const float *ref, size_t n)
{
    return nerr_strided(x, ref, 1, (int)n, (int)n, NERR_FLOOR);
}

static void check(double err, double tol, const char *what, const char *vname, int L, int dh,
                  int start, float drop)
{
    if (!(err <= tol)) {
        print_error("%s %s: L=%d dh=%d start=%d drop=%.2f err=%.3g > %.3g\n", vname, what, L,
                    dh, start, drop, err, tol);
        fail();
    }
}

/* One attention configuration: forward and backward of every variant vs ref. */
static void attn_case(const variant *vs, int nv, rs_rng *rng, int L, int dh, int ld, int start,
                      float drop, float scale, double *worst_f, double *worst_b)
{
    size_t n = (size_t)L * ld;
    float *Q = alloc_f(n), *K = alloc_f(n), *V = alloc_f(n), *dO = alloc_f(n);
    float *O_ref = alloc_f(n), *lse_ref = alloc_f((size_t)L), *O = alloc_f(n),
          *lse = alloc_f((size_t)L);
    float *g_ref[3], *g[3];
    for (int t = 0; t < 3; t++) {
        g_ref[t] = alloc_f(n);
        g[t] = alloc_f(n);
    }
    fill(rng, Q, n, -1.0f, 1.0f);
    fill(rng, K, n, -1.0f, 1.0f);
    fill(rng, V, n, -1.0f, 1.0f);
    fill(rng, dO, n, -1.0f, 1.0f);
    uint64_t seed = rs_rng_next(rng);
    rs_attn_fwd_ref(L, start, dh, scale, Q, K, V, ld, drop, seed, O_ref, lse_ref);
    rs_attn_bwd_ref(L, start, dh, scale, Q, K, V, O_ref, dO, lse_ref, ld, drop, seed, g_ref[0],
                    g_ref[1], g_ref[2]);
    for (int v = 0; v < nv; v++) {
        if (!vs[v].supported) continue;
        for (size_t i = 0; i < n; i++) O[i] = SENTINEL;
        for (int i = 0; i < L; i++) lse[i] = SENTINEL;
        vs[v].attn_fwd(L, start, dh, scale, Q, K, V, ld, drop, seed, O, lse);
        double e = nerr_strided(O, O_ref, L, dh, ld, NERR_FLOOR);
        double el = nerr(lse, lse_ref, (size_t)L);
        check(e, ATTN_TOL, "attn_fwd O", vs[v].name, L, dh, start, drop);
        check(el, ATTN_TOL, "attn_fwd lse", vs[v].name, L, dh, start, drop);
        assert_true(padding_intact(O, L, dh, ld));
        if (e > *worst_f) *worst_f = e;
        for (int t = 0; t < 3; t++)
            for (size_t i = 0; i < n; i++) g[t][i] = SENTINEL;
        /* the backward takes the reference forward's O and lse: errors do not compound */
        vs[v].attn_bwd(L, start, dh, scale, Q, K, V, O_ref, dO, lse_ref, ld, drop, seed, g[0],
                       g[1], g[2]);
        static const char *names[3] = {"attn_bwd dQ", "attn_bwd dK", "attn_bwd dV"};
        for (int t = 0; t < 3; t++) {
            double eb = nerr_strided(g[t], g_ref[t], L, dh, ld, NERR_FLOOR);
            check(eb, ATTN_BWD_TOL, names[t], vs[v].name, L, dh, start, drop);
            assert_true(padding_intact(g[t], L, dh, ld));
            if (eb > *worst_b) *worst_b = eb;
        }
    }
    free(Q);
    free(K);
    free(V);
    free(dO);
    free(O_ref);
    free(lse_ref);
    free(O);
    free(lse);
    for (int t = 0; t < 3; t++) {
        free(g_ref[t]);
        free(g[t]);
    }
}

static void test_attention(void **state)
{
    (void)state;
    variant vs[4];
    int nv = get_variants(vs);
    rs_rng rng;
    rs_rng_seed(&rng, 12345);
    static const int Ls[] = {1, 3, 15, 16, 17, 63, 65, 127, 200, 257};
    static const int dhs[] = {1, 7, 16, 25, 50, 64};
    double worst_f = 0.0, worst_b = 0.0;
    int cases = 0;
    for (size_t li = 0; li < sizeof Ls / sizeof *Ls; li++)
        for (size_t di = 0; di < sizeof dhs / sizeof *dhs; di++) {
            int L = Ls[li], dh = dhs[di];
            int starts[3] = {0, L / 3, L - 1};
            for (int si = 0; si < 3; si++)
                for (int drop = 0; drop < 2; drop++) {
                    if (si > 0 && starts[si] == starts[si - 1]) continue;
                    int ld = (cases % 2) ? dh + 5 : dh; /* half the cases with padded rows */
                    /* alternate soft and sharp softmaxes (large scores exercise the
                     * running-max rescaling and exp underflow) */
                    float scale = (cases % 3 == 2 ? 6.0f : 1.0f) / sqrtf((float)dh);
                    attn_case(vs, nv, &rng, L, dh, ld, starts[si], drop ? 0.25f : 0.0f, scale,
                              &worst_f, &worst_b);
                    cases++;
                }
        }
    print_message("attention: %d cases, worst normalised error fwd %.2g bwd %.2g\n", cases,
                  worst_f, worst_b);
}

/* Head sizes above RS_ATTN_DH_MAX take the scalar path and must still work. */
static void test_attention_large_head(void **state)
{
    (void)state;
    variant vs[4];
    int nv = get_variants(vs);
    rs_rng rng;
    rs_rng_seed(&rng, 7);
    double wf = 0.0, wb = 0.0;
    attn_case(vs, nv, &rng, 9, RS_ATTN_DH_MAX + 3, RS_ATTN_DH_MAX + 3, 2, 0.1f, 0.05f, &wf, &wb);
}

/* Dropout really drops: with p = 0.5 the output differs from p = 0, and the
 * fraction of kept weights (read back through V = one-hot rows) is near 1/2. */
static void test_attention_dropout_rate(void **state)
{
    (void)state;
    variant vs[4];
    int nv = get_variants(vs);
    const int L = 64, dh = 64;
    float *Q = alloc_f(L * dh), *K = alloc_f(L * dh), *V = alloc_f(L * dh), *O = alloc_f(L * dh);
    float lse[64];
    memset(Q, 0, sizeof(float) * L * dh); /* uniform attention */
    memset(K, 0, sizeof(float) * L * dh);
    memset(V, 0, sizeof(float) * L * dh);
    for (int j = 0; j < L; j++) V[j * dh + j] = 1.0f;
    for (int v = 0; v < nv; v++) {
        if (!vs[v].supported) continue;
        vs[v].attn_fwd(L, 0, dh, 1.0f, Q, K, V, dh, 0.5f, 99, O, lse);
        long kept = 0, total = 0;
        for (int i = 0; i < L; i++)
            for (int j = 0; j <= i; j++) {
                /* weight = 1/(i+1), kept ones scaled by 2 */
                int k = O[i * dh + j] > 0.5f / (i + 1);
                assert_int_equal(k, rs_dropout_keep(99, (uint64_t)i * L + j, 0.5f));
                kept += k;
                total++;
            }
        assert_true(kept > total * 0.4 && kept < total * 0.6);
    }
    free(Q);
    free(K);
    free(V);
    free(O);
}

static void test_layernorm(void **state)
{
    (void)state;
    variant vs[4];
    int nv = get_variants(vs);
    rs_rng rng;
    rs_rng_seed(&rng, 2024);
    static const int ds[] = {1, 7, 16, 50, 63, 65, 257};
    const int n = 5;
    for (size_t di = 0; di < sizeof ds / sizeof *ds; di++)
        for (int mode = 0; mode < 4; mode++) { /* bit 0: residual, bit 1: affine */
            int d = ds[di];
            size_t nd = (size_t)n * d;
            float *x = alloc_f(nd), *r = alloc_f(nd), *dy = alloc_f(nd), *gamma = alloc_f(d),
                  *beta = alloc_f(d);
            float *y_ref = alloc_f(nd), *y = alloc_f(nd), *dx_ref = alloc_f(nd), *dx = alloc_f(nd);
            float *dg0 = alloc_f(d), *db0 = alloc_f(d), *dg_ref = alloc_f(d), *db_ref = alloc_f(d),
                  *dg = alloc_f(d), *db = alloc_f(d);
            float mean_ref[5], rstd_ref[5], mean[5], rstd[5];
            fill(&rng, x, nd, 2.0f, 4.0f); /* offset mean: a one-pass variance would suffer */
            fill(&rng, r, nd, -1.0f, 1.0f);
            fill(&rng, dy, nd, -1.0f, 1.0f);
            fill(&rng, gamma, d, 0.5f, 1.5f);
            fill(&rng, beta, d, -0.5f, 0.5f);
            fill(&rng, dg0, d, -1.0f, 1.0f); /* gradients accumulate: start non-zero */
            fill(&rng, db0, d, -1.0f, 1.0f);
            const float *rr = (mode & 1) ? r : NULL;
            const float *gg = (mode & 2) ? gamma : NULL, *bb = (mode & 2) ? beta : NULL;
            rs_layernorm_fwd_ref(n, d, x, rr, gg, bb, 1e-5f, y_ref, mean_ref, rstd_ref);
            memcpy(dg_ref, dg0, sizeof(float) * d);
            memcpy(db_ref, db0, sizeof(float) * d);
            rs_layernorm_bwd_ref(n, d, x, rr, gg, mean_ref, rstd_ref, dy, dx_ref, dg_ref, db_ref);
            for (int v = 0; v < nv; v++) {
                if (!vs[v].supported) continue;
                vs[v].ln_fwd(n, d, x, rr, gg, bb, 1e-5f, y, mean, rstd);
                check(nerr(y, y_ref, nd), LN_TOL, "layernorm y", vs[v].name, n, d, mode, 0);
                check(nerr(mean, mean_ref, n), LN_TOL, "layernorm mean", vs[v].name, n, d, mode, 0);
                check(nerr(rstd, rstd_ref, n), LN_TOL, "layernorm rstd", vs[v].name, n, d, mode, 0);
                memcpy(dg, dg0, sizeof(float) * d);
                memcpy(db, db0, sizeof(float) * d);
                /* with affine: accumulate into dgamma/dbeta; without: NULL */
                vs[v].ln_bwd(n, d, x, rr, gg, mean_ref, rstd_ref, dy, dx, (mode & 2) ? dg : NULL,
                             (mode & 2) ? db : NULL);
                check(nerr(dx, dx_ref, nd), LN_TOL, "layernorm dx", vs[v].name, n, d, mode, 0);
                if (mode & 2) {
                    check(nerr(dg, dg_ref, d), LN_TOL, "layernorm dgamma", vs[v].name, n, d, mode, 0);
                    check(nerr(db, db_ref, d), LN_TOL, "layernorm dbeta", vs[v].name, n, d, mode, 0);
                }
            }
            free(x);
            free(r);
            free(dy);
            free(gamma);
            free(beta);
            free(y_ref);
            free(y);
            free(dx_ref);
            free(dx);
            free(dg0);
            free(db0);
            free(dg_ref);
            free(db_ref);
            free(dg);
            free(db);
        }
}

static void test_adam(void **state)
{
    (void)state;
    variant vs[4];
    int nv = get_variants(vs);
    rs_rng rng;
    rs_rng_seed(&rng, 5);
    static const size_t ns[] = {0, 1, 7, 15, 16, 17, 1000};
    for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
        size_t n = ns[ni], na = n + 1; /* one sentinel slot past the end */
        float *p0 = alloc_f(na), *g = alloc_f(na), *m0 = alloc_f(na), *v0 = alloc_f(na);
        float *p_ref = alloc_f(na), *m_ref = alloc_f(na), *v_ref = alloc_f(na);
        float *p = alloc_f(na), *m = alloc_f(na), *v = alloc_f(na);
        fill(&rng, p0, na, -1.0f, 1.0f);
        fill(&rng, g, na, -1.0f, 1.0f);
        fill(&rng, m0, na, -0.1f, 0.1f);
        fill(&rng, v0, na, 0.0f, 0.01f);
        p0[n] = m0[n] = v0[n] = SENTINEL;
        for (int wd = 0; wd < 2; wd++) {
            float lr = 1e-3f, b1 = 0.9f, b2 = 0.98f, eps = 1e-8f, w = wd ? 0.01f : 0.0f;
            float bc1 = 1.0f - powf(b1, 3.0f), bc2 = 1.0f - powf(b2, 3.0f);
            memcpy(p_ref, p0, sizeof(float) * na);
            memcpy(m_ref, m0, sizeof(float) * na);
            memcpy(v_ref, v0, sizeof(float) * na);
            rs_adam_ref(n, p_ref, g, m_ref, v_ref, lr, b1, b2, eps, w, bc1, bc2);
            for (int k = 0; k < nv; k++) {
                if (!vs[k].supported) continue;
                memcpy(p, p0, sizeof(float) * na);
                memcpy(m, m0, sizeof(float) * na);
                memcpy(v, v0, sizeof(float) * na);
                vs[k].adam(n, p, g, m, v, lr, b1, b2, eps, w, bc1, bc2);
                check(nerr(p, p_ref, n), ADAM_TOL, "adam p", vs[k].name, (int)n, 0, wd, 0);
                check(nerr(m, m_ref, n), ADAM_TOL, "adam m", vs[k].name, (int)n, 0, wd, 0);
                check(nerr(v, v_ref, n), ADAM_TOL, "adam v", vs[k].name, (int)n, 0, wd, 0);
                assert_true(p[n] == SENTINEL && m[n] == SENTINEL && v[n] == SENTINEL);
            }
        }
        free(p0);
        free(g);
        free(m0);
        free(v0);
        free(p_ref);
        free(m_ref);
        free(v_ref);
        free(p);
        free(m);
        free(v);
    }
}

static void test_dot(void **state)
{
    (void)state;
    variant vs[4];
    int nv = get_variants(vs);
    rs_rng rng;
    rs_rng_seed(&rng, 77);
    static const size_t ns[] = {0, 1, 7, 15, 16, 17, 1000};
    float *a = alloc_f(1002), *b = alloc_f(1002);
    fill(&rng, a, 1002, -1.0f, 1.0f);
    fill(&rng, b, 1002, -1.0f, 1.0f);
    for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
        for (int off = 0; off < 2; off++) { /* aligned and misaligned starts */
            size_t n = ns[ni];
            const float *x = a + off, *y = b + 2 * off;
            double ref = rs_dot_ref(n, x, y), mag = 1e-30;
            for (size_t i = 0; i < n; i++) mag += fabs((double)x[i] * y[i]);
            for (int k = 0; k < nv; k++) {
                if (!vs[k].supported) continue;
                float d = vs[k].dot(n, x, y);
                if (n == 0) assert_true(d == 0.0f);
                check(fabs(d - ref) / mag, DOT_TOL, "dot", vs[k].name, (int)n, 0, off, 0);
            }
        }
    free(a);
    free(b);
}

/* One vector against rows in panels: close to the double reference, and
 * bit for bit what the same ISA's GEMM gives for the same product (the
 * property that lets a session score one user this way and still rank as a
 * batch does). */
static void test_dot_panels(void **state)
{
    (void)state;
    typedef struct { const char *name; int ok; rs_dot_panels_fn dp; rs_gemm_fn gemm; } pv;
    pv vs[3] = {{"ref", 1, rs_dot_panels_ref, rs_gemm_ref}};
    int nv = 1;
#ifdef RS_HAVE_X86_KERNELS
    rs_cpu_features f;
    rs_cpu_detect(&f);
    vs[nv++] = (pv){"avx2", f.avx2_fma, rs_dot_panels_avx2, rs_gemm_avx2};
    vs[nv++] = (pv){"avx512", f.avx512, rs_dot_panels_avx512, rs_gemm_avx512};
#endif
    rs_rng rng;
    rs_rng_seed(&rng, 78);
    static const size_t ns[] = {1, 7, 15, 16, 17, 63, 65, 100, 1000};
    static const int ds[] = {1, 7, 50, 64, 65};
    float *scratch = alloc_f(RS_GEMM_SCRATCH_FLOATS);
    for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
        for (size_t di = 0; di < sizeof ds / sizeof *ds; di++) {
            size_t n = ns[ni], ld = (size_t)ds[di] + 3;
            int d = ds[di];
            float *rows = alloc_f(n * ld), *x = alloc_f((size_t)d);
            float *panels = alloc_f(rs_panels_floats(n, d));
            float *y = alloc_f(n + 1), *g = alloc_f(n);
            fill(&rng, rows, n * ld, -1.0f, 1.0f);
            fill(&rng, x, (size_t)d, -1.0f, 1.0f);
            rs_pack_panels(n, d, rows, ld, panels);
            for (size_t p = n; p < rs_panels_floats(n, d) / (size_t)d; p++) /* padding rows are zero */
                for (int k = 0; k < d; k++)
                    assert_true(panels[p / RS_PANEL * RS_PANEL * (size_t)d + (size_t)k * RS_PANEL +
                                       p % RS_PANEL] == 0.0f);
            for (int v = 0; v < nv; v++) {
                if (!vs[v].ok) continue;
                y[n] = 12345.0f; /* never written */
                vs[v].dp(n, d, panels, x, y);
                vs[v].gemm(0, 1, 1, (int)n, d, 1.0f, x, d, rows, (int)ld, 0.0f, g, (int)n, scratch);
                assert_true(y[n] == 12345.0f);
                for (size_t i = 0; i < n; i++) {
                    double want = 0, mag = 1e-30;
                    for (int k = 0; k < d; k++) {
                        want += (double)x[k] * rows[i * ld + (size_t)k];
                        mag += fabs((double)x[k] * rows[i * ld + (size_t)k]);
                    }
                    check(fabs(y[i] - want) / mag, DOT_TOL, "dot_panels", vs[v].name, (int)n, d, 0, 0);
                    if (memcmp(&y[i], &g[i], sizeof(float)))
                        fail_msg("%s dot_panels n=%zu d=%d row %zu: %.9g, GEMM %.9g", vs[v].name, n,
                                 d, i, y[i], g[i]);
                }
            }
            free(rows); free(x); free(panels); free(y); free(g);
        }
    free(scratch);
}

/* The kernel table picks these variants on CPUs that have them. */
static void test_dispatch_names(void **state)
{
    (void)state;
    rs_cpu_features f;
    rs_cpu_detect(&f);
    rs_kernels k;
    rs_kernels_init(&k, &f, RS_ISA_AVX512);
    const char *want = f.avx512 ? "attention_avx512" : f.avx2_fma ? "attention_avx2" : "attention_ref";
    assert_string_equal(k.names[RECSYS_KERNEL_ATTENTION], want);
    rs_kernels_init(&k, &f, RS_ISA_SCALAR);
    assert_string_equal(k.names[RECSYS_KERNEL_ATTENTION], "attention_ref");
    assert_ptr_equal(k.dot, rs_dot_ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_attention_large_head),
        cmocka_unit_test(test_attention_dropout_rate),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_dot),
        cmocka_unit_test(test_dot_panels),
        cmocka_unit_test(test_dispatch_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
