/* Bounded Levenberg–Marquardt for small parameter counts.
 *
 * Each iteration solves (JᵀJ + λ·diag(JᵀJ)) δ = -Jᵀr over the free
 * parameters, where a parameter is held fixed when it sits on a bound and
 * the gradient pushes it outwards (a projected step would only be clipped
 * back), then clamps theta+δ into the bounds. A step is kept when it lowers
 * the sum of squares (λ shrinks) and refused otherwise (λ grows). */
#include "analysis/levenberg_marquardt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int rs_chol_solve(int p, double *a, double *b, double *x)
{
    for (int j = 0; j < p; j++) {
        double d = a[j * p + j];
        for (int k = 0; k < j; k++) d -= a[j * p + k] * a[j * p + k];
        if (!(d > 0.0) || !isfinite(d)) return -1;
        d = sqrt(d);
        a[j * p + j] = d;
        for (int i = j + 1; i < p; i++) {
            double s = a[i * p + j];
            for (int k = 0; k < j; k++) s -= a[i * p + k] * a[j * p + k];
            a[i * p + j] = s / d;
        }
    }
    /* L y = b, then Lᵀ x = y */
    for (int i = 0; i < p; i++) {
        double s = b[i];
        for (int k = 0; k < i; k++) s -= a[i * p + k] * x[k];
        x[i] = s / a[i * p + i];
    }
    for (int i = p - 1; i >= 0; i--) {
        double s = x[i];
        for (int k = i + 1; k < p; k++) s -= a[k * p + i] * x[k];
        x[i] = s / a[i * p + i];
    }
    return 0;
}

void rs_sym_eigen(int p, double *a, double *evals, double *evecs)
{
    for (int i = 0; i < p; i++)
        for (int j = 0; j < p; j++) evecs[i * p + j] = i == j ? 1.0 : 0.0;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0, diag = 0.0;
        for (int i = 0; i < p; i++) {
            diag += a[i * p + i] * a[i * p + i];
            for (int j = i + 1; j < p; j++) off += a[i * p + j] * a[i * p + j];
        }
        if (off <= 1e-30 * diag || off == 0.0) break;
        for (int i = 0; i < p; i++) {
            for (int j = i + 1; j < p; j++) {
                double aij = a[i * p + j];
                if (aij == 0.0) continue;
                /* rotation angle that zeroes a[i][j] */
                double theta = (a[j * p + j] - a[i * p + i]) / (2.0 * aij);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < p; k++) { /* columns i, j */
                    double aki = a[k * p + i], akj = a[k * p + j];
                    a[k * p + i] = c * aki - s * akj;
                    a[k * p + j] = s * aki + c * akj;
                }
                for (int k = 0; k < p; k++) { /* rows i, j */
                    double aik = a[i * p + k], ajk = a[j * p + k];
                    a[i * p + k] = c * aik - s * ajk;
                    a[j * p + k] = s * aik + c * ajk;
                }
                for (int k = 0; k < p; k++) {
                    double vki = evecs[k * p + i], vkj = evecs[k * p + j];
                    evecs[k * p + i] = c * vki - s * vkj;
                    evecs[k * p + j] = s * vki + c * vkj;
                }
            }
        }
    }
    for (int i = 0; i < p; i++) evals[i] = a[i * p + i];
}

static double sum_sq(int n, const double *r)
{
    double s = 0.0;
    for (int i = 0; i < n; i++) s += r[i] * r[i];
    return s;
}

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

int rs_lm_solve(int n, int p, rs_lm_fn fn, void *arg, double *theta, const double *lo,
                const double *hi, int max_iter, rs_lm_result *res)
{
    if (n < 1 || p < 1 || p > RS_LM_MAX_PARAMS) return -1;
    double lob[RS_LM_MAX_PARAMS], hib[RS_LM_MAX_PARAMS];
    for (int j = 0; j < p; j++) {
        lob[j] = lo ? lo[j] : -INFINITY;
        hib[j] = hi ? hi[j] : INFINITY;
        theta[j] = clampd(theta[j], lob[j], hib[j]);
    }
    double *r = malloc((size_t)n * sizeof *r);
    double *rt = malloc((size_t)n * sizeof *rt);
    double *J = malloc((size_t)n * (size_t)p * sizeof *J);
    if (!r || !rt || !J) {
        free(r); free(rt); free(J);
        return -1;
    }
    fn(arg, theta, r, J);
    double ssr = sum_sq(n, r);
    if (!isfinite(ssr)) {
        free(r); free(rt); free(J);
        return -2;
    }
    double lambda = 1e-3;
    int iters = 0, converged = 0;
    double A[RS_LM_MAX_PARAMS * RS_LM_MAX_PARAMS], g[RS_LM_MAX_PARAMS];
    for (int it = 0; it < max_iter && !converged; it++) {
        /* normal equations at theta */
        memset(A, 0, sizeof A);
        memset(g, 0, sizeof g);
        for (int i = 0; i < n; i++) {
            const double *Ji = J + (size_t)i * p;
            for (int a = 0; a < p; a++) {
                g[a] += Ji[a] * r[i];
                for (int b = 0; b <= a; b++) A[a * p + b] += Ji[a] * Ji[b];
            }
        }
        for (int a = 0; a < p; a++)
            for (int b = 0; b < a; b++) A[b * p + a] = A[a * p + b];
        int freej[RS_LM_MAX_PARAMS], nf = 0;
        double cosine = 0.0; /* largest |cos| between r and a free column of J */
        for (int j = 0; j < p; j++) {
            int pinned = (theta[j] <= lob[j] && g[j] > 0) || (theta[j] >= hib[j] && g[j] < 0);
            if (pinned) continue;
            freej[nf++] = j;
            double norm = sqrt(A[j * p + j] * ssr);
            if (norm > 0) cosine = fmax(cosine, fabs(g[j]) / norm);
        }
        if (nf == 0 || ssr == 0.0 || cosine <= 1e-15) { converged = 1; break; }
        double maxdiag = 0.0;
        for (int j = 0; j < p; j++) maxdiag = fmax(maxdiag, A[j * p + j]);
        if (maxdiag == 0.0) maxdiag = 1.0;
        /* inner loop: raise λ until a step lowers the sum of squares */
        int accepted = 0;
        while (!accepted) {
            double M[RS_LM_MAX_PARAMS * RS_LM_MAX_PARAMS], rhs[RS_LM_MAX_PARAMS],
                d[RS_LM_MAX_PARAMS], tn[RS_LM_MAX_PARAMS];
            for (int a = 0; a < nf; a++) {
                for (int b = 0; b < nf; b++) M[a * nf + b] = A[freej[a] * p + freej[b]];
                double dj = fmax(A[freej[a] * p + freej[a]], 1e-12 * maxdiag);
                M[a * nf + a] += lambda * dj;
                rhs[a] = -g[freej[a]];
            }
            if (rs_chol_solve(nf, M, rhs, d) != 0) {
                lambda *= 10.0;
                if (lambda > 1e20) break;
                continue;
            }
            memcpy(tn, theta, (size_t)p * sizeof *tn);
            double step = 0.0, scale = 0.0;
            for (int a = 0; a < nf; a++) {
                int j = freej[a];
                tn[j] = clampd(theta[j] + d[a], lob[j], hib[j]);
                step += (tn[j] - theta[j]) * (tn[j] - theta[j]);
                scale += theta[j] * theta[j];
            }
            fn(arg, tn, rt, NULL);
            /* the decrease Σ r² - Σ rt², summed term by term so that it stays
             * accurate when it is far below the rounding of Σ r² itself */
            double drop = 0.0;
            for (int i = 0; i < n; i++) drop += (r[i] - rt[i]) * (r[i] + rt[i]);
            if (isfinite(drop) && drop > 0.0) {
                memcpy(theta, tn, (size_t)p * sizeof *tn);
                fn(arg, theta, r, J);
                ssr = sum_sq(n, r);
                lambda = fmax(lambda * 0.3, 1e-15);
                accepted = 1;
                iters++;
                if (sqrt(step) <= 1e-12 * (sqrt(scale) + 1e-12)) converged = 1;
            } else {
                /* no decrease even for tiny steps: theta is a minimum */
                if (sqrt(step) <= 1e-15 * (sqrt(scale) + 1e-15)) { converged = 1; break; }
                lambda *= 10.0;
                if (lambda > 1e20) { converged = 1; break; }
            }
        }
        if (!accepted && !converged) converged = 1;
    }
    res->ssr = ssr;
    res->iterations = iters;
    res->converged = converged;
    free(r); free(rt); free(J);
    return 0;
}
