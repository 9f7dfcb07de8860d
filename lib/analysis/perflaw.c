/* The Performance Law of docs/MODELS.md §5:
 *   P(N,h,D) = w1·g(N,w3) + w2·g(h,w4) + g(D,w5) + b,  g(x,w) = -1/(2·x^w) - w·ln x
 * fitted by bounded Levenberg–Marquardt. Parameters are (w1 w2 w3 w4 w5 b);
 * the exponents w3, w4 live in [1e-6, 10] and w5 in [-1, 10], the rest are
 * free. The data term has no free weight, so with w5 > 0 it can only fall
 * as D grows; a negative w5 lets more (quality-weighted) data raise the
 * metric, which is what sweeps on real data show.
 *
 * Starts: all ones (as the reference script), plus the best few points of a
 * coarse grid over the exponents, where the remaining parameters are linear
 * and are solved exactly; the fit with the lowest sum of squares wins. */
#include "core/internal.h"
#include "analysis/levenberg_marquardt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NP RECSYS_PERFLAW_N_PARAMS
#define EXP_LO 1e-6
#define EXP_HI 10.0
#define DATA_EXP_LO -1.0
#define MAX_ITER 2000
#define SINGULAR_EIG 1e-12 /* relative eigenvalue of the correlation matrix */

typedef struct obs {
    double layers, hidden, data, metric;
} obs;

struct recsys_perflaw {
    recsys_ctx *ctx;
    obs *obs;
    size_t n, cap;
    int fitted;
    double params[NP], stderrs[NP], r2, ssr;
};

static double g_term(double x, double w)
{
    double lx = log(x);
    return -0.5 * exp(-w * lx) - w * lx;
}

/* d g(x, w) / d w = ln x · (x^-w / 2 - 1) */
static double g_dw(double x, double w)
{
    double lx = log(x);
    return lx * (0.5 * exp(-w * lx) - 1.0);
}

static double law(const double *t, double N, double h, double D)
{
    return t[0] * g_term(N, t[2]) + t[1] * g_term(h, t[3]) + g_term(D, t[4]) + t[5];
}

static void residuals(void *arg, const double *t, double *r, double *jac)
{
    const recsys_perflaw *p = arg;
    for (size_t i = 0; i < p->n; i++) {
        const obs *o = &p->obs[i];
        r[i] = law(t, o->layers, o->hidden, o->data) - o->metric;
        if (jac) {
            double *J = jac + i * NP;
            J[0] = g_term(o->layers, t[2]);
            J[1] = g_term(o->hidden, t[3]);
            J[2] = t[0] * g_dw(o->layers, t[2]);
            J[3] = t[1] * g_dw(o->hidden, t[3]);
            J[4] = g_dw(o->data, t[4]);
            J[5] = 1.0;
        }
    }
}

recsys_status recsys_perflaw_new(recsys_ctx *ctx, recsys_perflaw **out)
{
    rs_enter(ctx);
    if (!out) return rs_error(ctx, RECSYS_E_INVALID, "recsys_perflaw_new: out is NULL");
    *out = NULL;
    recsys_perflaw *p = calloc(1, sizeof *p);
    if (!p) return rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
    p->ctx = ctx;
    *out = p;
    return RECSYS_OK;
}

void recsys_perflaw_free(recsys_perflaw *p)
{
    if (!p) return;
    free(p->obs);
    free(p);
}

static recsys_status check_point(recsys_ctx *ctx, const char *what, double layers,
                                 double hidden, double data)
{
    if (!isfinite(layers) || !isfinite(hidden) || !isfinite(data))
        return rs_error(ctx, RECSYS_E_NUMERIC,
                        "perflaw %s: layers, hidden and data must be finite (got %g, %g, %g)",
                        what, layers, hidden, data);
    if (!(layers > 0) || !(hidden > 0) || !(data > 0))
        return rs_error(ctx, RECSYS_E_INVALID,
                        "perflaw %s: layers, hidden and data must be > 0 (got %g, %g, %g)", what,
                        layers, hidden, data);
    return RECSYS_OK;
}

recsys_status recsys_perflaw_add(recsys_perflaw *p, double layers, double hidden, double data,
                                 double metric)
{
    rs_enter(p ? p->ctx : NULL);
    if (!p) return RS_BAD_ARGS();
    recsys_status st = check_point(p->ctx, "observation", layers, hidden, data);
    if (st) return st;
    if (!isfinite(metric))
        return rs_error(p->ctx, RECSYS_E_NUMERIC, "perflaw observation: metric is not finite");
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        obs *o = realloc(p->obs, cap * sizeof *o);
        if (!o) return rs_error(p->ctx, RECSYS_E_NOMEM, "out of memory");
        p->obs = o;
        p->cap = cap;
    }
    p->obs[p->n++] = (obs){layers, hidden, data, metric};
    p->fitted = 0;
    return RECSYS_OK;
}

/* Eigen-analysis of JᵀJ at theta, scaled to a correlation matrix.
 * Returns 1 when it is (numerically) singular. When cov is not NULL it
 * receives the diagonal of (JᵀJ)⁻¹, INFINITY for parameters that lie in a
 * null direction. */
static int analyse_normal_matrix(recsys_perflaw *p, const double *theta, const double *J,
                                 double *inv_diag)
{
    double A[NP * NP] = {0}, s[NP], ev[NP], V[NP * NP];
    for (size_t i = 0; i < p->n; i++)
        for (int a = 0; a < NP; a++)
            for (int b = 0; b < NP; b++) A[a * NP + b] += J[i * NP + a] * J[i * NP + b];
    (void)theta;
    int zero_col = 0;
    for (int a = 0; a < NP; a++) {
        s[a] = sqrt(A[a * NP + a]);
        if (!(s[a] > 0) || !isfinite(s[a])) zero_col = 1;
    }
    if (zero_col) {
        if (inv_diag)
            for (int a = 0; a < NP; a++) inv_diag[a] = INFINITY;
        return 1;
    }
    for (int a = 0; a < NP; a++)
        for (int b = 0; b < NP; b++) A[a * NP + b] /= s[a] * s[b];
    rs_sym_eigen(NP, A, ev, V);
    double emax = 0.0;
    for (int k = 0; k < NP; k++) emax = fmax(emax, ev[k]);
    int singular = 0;
    if (inv_diag)
        for (int a = 0; a < NP; a++) inv_diag[a] = 0.0;
    for (int k = 0; k < NP; k++) {
        int null_dir = !(ev[k] > SINGULAR_EIG * emax);
        singular |= null_dir;
        if (!inv_diag) continue;
        for (int a = 0; a < NP; a++) {
            double v = V[a * NP + k];
            if (null_dir) {
                if (fabs(v) > 1e-6) inv_diag[a] = INFINITY;
            } else {
                inv_diag[a] += v * v / ev[k];
            }
        }
    }
    if (inv_diag)
        for (int a = 0; a < NP; a++)
            if (isfinite(inv_diag[a])) inv_diag[a] /= s[a] * s[a];
    return singular;
}

static double field_of(const obs *o, int field)
{
    return field == 0 ? o->layers : (field == 1 ? o->hidden : o->data);
}

static size_t count_distinct(const obs *o, size_t n, int field)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < i && field_of(&o[j], field) != field_of(&o[i], field)) j++;
        if (j == i) k++;
    }
    return k;
}

/* Exponent grid for the starting points: the profile of the sum of squares
 * over an exponent has several local minima on a handful of distinct N or
 * h values, so a start from all ones alone often ends in the wrong one. */
static const double GRID[] = {0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3,
                              0.4,   0.5,  0.7,  1.0,  1.5, 2.0,  3.0, 5.0};
#define NG ((int)(sizeof GRID / sizeof GRID[0]))

/* Best linear (w1, w2, b) for the exponents GRID[a], GRID[b], GRID[c], from
 * the precomputed terms gt[(field*NG + grid)*n + i]; returns the SSR. */
static double linear_fit(const recsys_perflaw *p, const double *gt, int a, int b, int c,
                         double *t)
{
    size_t n = p->n;
    const double *gn = gt + ((size_t)0 * NG + a) * n, *gh = gt + ((size_t)1 * NG + b) * n,
                 *gd = gt + ((size_t)2 * NG + c) * n;
    double A[9] = {0}, rhs[3] = {0}, x[3];
    for (size_t i = 0; i < n; i++) {
        double f[3] = {gn[i], gh[i], 1.0};
        double y = p->obs[i].metric - gd[i];
        for (int u = 0; u < 3; u++) {
            rhs[u] += f[u] * y;
            for (int v = 0; v < 3; v++) A[u * 3 + v] += f[u] * f[v];
        }
    }
    for (int u = 0; u < 3; u++) A[u * 3 + u] *= 1.0 + 1e-12;
    if (rs_chol_solve(3, A, rhs, x) != 0) return INFINITY;
    double ssr = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = x[0] * gn[i] + x[1] * gh[i] + gd[i] + x[2] - p->obs[i].metric;
        ssr += e * e;
    }
    t[0] = x[0];
    t[1] = x[1];
    t[2] = GRID[a];
    t[3] = GRID[b];
    t[4] = GRID[c];
    t[5] = x[2];
    return isfinite(ssr) ? ssr : INFINITY;
}

/* Starting points from the exponent grid: for every grid value of each
 * exponent, the best grid point having it (its profile minimum), so that
 * every basin along each exponent gets a start. Duplicates are dropped.
 * Returns the number written to starts (at most 3*NG), or -1 on no memory. */
#define MAX_STARTS (1 + 3 * NG)
static int grid_starts(const recsys_perflaw *p, double (*starts)[NP])
{
    double *gt = malloc(3 * NG * p->n * sizeof *gt);
    if (!gt) return -1;
    for (int q = 0; q < NG; q++)
        for (size_t i = 0; i < p->n; i++) {
            gt[((size_t)0 * NG + q) * p->n + i] = g_term(p->obs[i].layers, GRID[q]);
            gt[((size_t)1 * NG + q) * p->n + i] = g_term(p->obs[i].hidden, GRID[q]);
            gt[((size_t)2 * NG + q) * p->n + i] = g_term(p->obs[i].data, GRID[q]);
        }
    double best_ssr[3][NG], best_t[3][NG][NP];
    for (int f = 0; f < 3; f++)
        for (int q = 0; q < NG; q++) best_ssr[f][q] = INFINITY;
    for (int a = 0; a < NG; a++)
        for (int b = 0; b < NG; b++)
            for (int c = 0; c < NG; c++) {
                double t[NP];
                double s = linear_fit(p, gt, a, b, c, t);
                const int idx[3] = {a, b, c};
                for (int f = 0; f < 3; f++)
                    if (s < best_ssr[f][idx[f]]) {
                        best_ssr[f][idx[f]] = s;
                        memcpy(best_t[f][idx[f]], t, sizeof t);
                    }
            }
    free(gt);
    int n = 0;
    for (int f = 0; f < 3; f++)
        for (int q = 0; q < NG; q++) {
            if (!isfinite(best_ssr[f][q])) continue;
            int dup = 0;
            for (int k = 0; k < n && !dup; k++)
                dup = !memcmp(starts[k], best_t[f][q], sizeof starts[k]);
            if (!dup) memcpy(starts[n++], best_t[f][q], sizeof starts[0]);
        }
    return n;
}

recsys_status recsys_perflaw_fit(recsys_perflaw *p)
{
    rs_enter(p ? p->ctx : NULL);
    if (!p) return RS_BAD_ARGS();
    recsys_ctx *ctx = p->ctx;
    p->fitted = 0;
    size_t dn = count_distinct(p->obs, p->n, 0), dh = count_distinct(p->obs, p->n, 1),
           dd = count_distinct(p->obs, p->n, 2);
    if (p->n < NP)
        return rs_error(ctx, RECSYS_E_NUMERIC,
                        "perflaw: %zu observations cannot determine the %d parameters", p->n,
                        NP);
    double *J = malloc(p->n * NP * sizeof *J), *r = malloc(p->n * sizeof *r);
    if (!J || !r) {
        free(J); free(r);
        return rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
    }
    /* Structural check: a rank deficiency that holds at two generic points
     * holds everywhere (e.g. a single layer count, or N tied to h). */
    static const double probe[2][NP] = {{1, 1, 1, 1, 1, 0}, {0.7, -1.3, 0.4, 1.7, 0.6, 0.2}};
    int singular = 1;
    for (int k = 0; k < 2 && singular; k++) {
        residuals(p, probe[k], r, J);
        singular = analyse_normal_matrix(p, probe[k], J, NULL);
    }
    if (singular) {
        free(J); free(r);
        return rs_error(ctx, RECSYS_E_NUMERIC,
                        "perflaw: the observations cannot determine the parameters (%zu distinct "
                        "layer counts, %zu hidden sizes, %zu data values; the law needs at least "
                        "3, 3 and 2, varied independently)",
                        dn, dh, dd);
    }

    /* Starting points: the reference's all-ones, then the grid's. */
    double starts[MAX_STARTS][NP];
    for (int j = 0; j < NP; j++) starts[0][j] = 1.0;
    int n_grid = grid_starts(p, starts + 1);
    if (n_grid < 0) {
        free(J); free(r);
        return rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
    }
    int n_starts = 1 + n_grid;

    double lo[NP] = {-INFINITY, -INFINITY, EXP_LO, EXP_LO, DATA_EXP_LO, -INFINITY};
    double hi[NP] = {INFINITY, INFINITY, EXP_HI, EXP_HI, EXP_HI, INFINITY};
    double best[NP], best_ssr = INFINITY;
    for (int k = 0; k < n_starts; k++) {
        double t[NP];
        memcpy(t, starts[k], sizeof t);
        rs_lm_result res;
        int rc = rs_lm_solve((int)p->n, NP, residuals, p, t, lo, hi, MAX_ITER, &res);
        if (rc == -1) {
            free(J); free(r);
            return rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
        }
        if (rc == 0 && res.ssr < best_ssr) {
            best_ssr = res.ssr;
            memcpy(best, t, sizeof t);
        }
    }
    if (!isfinite(best_ssr)) {
        free(J); free(r);
        return rs_error(ctx, RECSYS_E_NUMERIC,
                        "perflaw: the fit diverged (non-finite residuals from every start)");
    }

    /* Standard errors from σ²·(JᵀJ)⁻¹ at the solution, σ² = SSR/(n-p). */
    double inv_diag[NP];
    residuals(p, best, r, J);
    analyse_normal_matrix(p, best, J, inv_diag);
    double sigma2 = p->n > NP ? best_ssr / (double)(p->n - NP) : NAN;
    for (int j = 0; j < NP; j++)
        p->stderrs[j] = isinf(inv_diag[j]) ? INFINITY : sqrt(sigma2 * inv_diag[j]);
    double mean = 0.0, sst = 0.0;
    for (size_t i = 0; i < p->n; i++) mean += p->obs[i].metric;
    mean /= (double)p->n;
    for (size_t i = 0; i < p->n; i++) sst += (p->obs[i].metric - mean) * (p->obs[i].metric - mean);
    p->r2 = sst > 0 ? 1.0 - best_ssr / sst : (best_ssr == 0 ? 1.0 : 0.0);
    p->ssr = best_ssr;
    memcpy(p->params, best, sizeof best);
    p->fitted = 1;
    free(J); free(r);
    return RECSYS_OK;
}

recsys_status recsys_perflaw_params(const recsys_perflaw *p, double *params, double *stderrs,
                                    double *r2)
{
    rs_enter(p ? p->ctx : NULL);
    if (!p) return RS_BAD_ARGS();
    if (!p->fitted) return rs_error(p->ctx, RECSYS_E_STATE, "perflaw: call recsys_perflaw_fit first");
    if (params) memcpy(params, p->params, sizeof p->params);
    if (stderrs) memcpy(stderrs, p->stderrs, sizeof p->stderrs);
    if (r2) *r2 = p->r2;
    return RECSYS_OK;
}

recsys_status recsys_perflaw_predict(const recsys_perflaw *p, double layers, double hidden,
                                     double data, double *metric)
{
    rs_enter(p ? p->ctx : NULL);
    if (!p) return RS_BAD_ARGS();
    if (!metric) return rs_error(p->ctx, RECSYS_E_INVALID, "recsys_perflaw_predict: metric is NULL");
    if (!p->fitted) return rs_error(p->ctx, RECSYS_E_STATE, "perflaw: call recsys_perflaw_fit first");
    recsys_status st = check_point(p->ctx, "prediction", layers, hidden, data);
    if (st) return st;
    *metric = law(p->params, layers, hidden, data);
    return RECSYS_OK;
}

recsys_status recsys_perflaw_best_size(const recsys_perflaw *p, double data,
                                       const double *layers, size_t n_layers,
                                       const double *hidden, size_t n_hidden,
                                       double *best_layers, double *best_hidden,
                                       double *best_metric)
{
    rs_enter(p ? p->ctx : NULL);
    if (!p) return RS_BAD_ARGS();
    if (!layers || !hidden || !n_layers || !n_hidden)
        return rs_error(p->ctx, RECSYS_E_INVALID, "recsys_perflaw_best_size: no candidates");
    if (!p->fitted) return rs_error(p->ctx, RECSYS_E_STATE, "perflaw: call recsys_perflaw_fit first");
    double bm = -INFINITY, bl = NAN, bh = NAN;
    for (size_t i = 0; i < n_layers; i++)
        for (size_t j = 0; j < n_hidden; j++) {
            double v;
            recsys_status st = recsys_perflaw_predict(p, layers[i], hidden[j], data, &v);
            if (st) return st;
            if (v > bm) { bm = v; bl = layers[i]; bh = hidden[j]; }
        }
    if (best_layers) *best_layers = bl;
    if (best_hidden) *best_hidden = bh;
    if (best_metric) *best_metric = bm;
    return RECSYS_OK;
}
