/* Folding, merging and SVD re-factorisation of adapters (merge.h). */
#include "adapters/merge.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void rs_lora_fold(recsys_ctx *ctx, int in, int out, int r, float scale, const float *A,
                  const float *B, float *W, int ldw)
{
    rs_gemm(ctx, 0, 0, out, in, r, scale, B, r, A, in, 1.0f, W, ldw);
}

/* One-sided Jacobi on the columns of G (m x n, column-major copy). */
static int jacobi(int m, int n, double *G, double *V)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) V[(size_t)i * n + j] = i == j;
    for (int sweep = 1; sweep <= 60; sweep++) {
        double off = 0.0;
        for (int p = 0; p < n - 1; p++)
            for (int q = p + 1; q < n; q++) {
                double *gp = G + (size_t)p * m, *gq = G + (size_t)q * m;
                double a = 0, b = 0, c = 0;
                for (int i = 0; i < m; i++) {
                    a += gp[i] * gp[i];
                    b += gq[i] * gq[i];
                    c += gp[i] * gq[i];
                }
                if (c == 0.0 || fabs(c) <= 1e-15 * sqrt(a * b)) continue;
                double rel = fabs(c) / sqrt(a * b);
                if (rel > off) off = rel;
                double zeta = (b - a) / (2 * c);
                double t = (zeta >= 0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(1 + zeta * zeta));
                double cs = 1 / sqrt(1 + t * t), sn = cs * t;
                for (int i = 0; i < m; i++) {
                    double x = gp[i], y = gq[i];
                    gp[i] = cs * x - sn * y;
                    gq[i] = sn * x + cs * y;
                }
                double *vp = V + (size_t)p * n, *vq = V + (size_t)q * n; /* columns of V, stored as rows */
                for (int i = 0; i < n; i++) {
                    double x = vp[i], y = vq[i];
                    vp[i] = cs * x - sn * y;
                    vq[i] = sn * x + cs * y;
                }
            }
        if (off < 1e-13) return sweep;
    }
    return -1;
}

int rs_svd(int m, int n, const double *a, double *U, double *s, double *V)
{
    /* work on the side with fewer columns: a or aᵀ */
    int tr = n > m;
    int mm = tr ? n : m, nn = tr ? m : n;
    if (nn > RS_SVD_MAX || nn <= 0) return -1;
    double *G = malloc(sizeof(double) * (size_t)mm * nn), *W = malloc(sizeof(double) * (size_t)nn * nn);
    int *ord = malloc(sizeof(int) * nn);
    double *sv = malloc(sizeof(double) * nn);
    if (!G || !W || !ord || !sv) {
        free(G); free(W); free(ord); free(sv);
        return -1;
    }
    /* G column j = column j of (tr ? aᵀ : a) */
    for (int j = 0; j < nn; j++)
        for (int i = 0; i < mm; i++)
            G[(size_t)j * mm + i] = tr ? a[(size_t)j * n + i] : a[(size_t)i * n + j];
    int sweeps = jacobi(mm, nn, G, W);
    for (int j = 0; j < nn; j++) {
        double x = 0;
        for (int i = 0; i < mm; i++) x += G[(size_t)j * mm + i] * G[(size_t)j * mm + i];
        sv[j] = sqrt(x);
        ord[j] = j;
    }
    for (int i = 1; i < nn; i++) { /* insertion sort, decreasing */
        int o = ord[i], k = i;
        while (k > 0 && sv[ord[k - 1]] < sv[o]) { ord[k] = ord[k - 1]; k--; }
        ord[k] = o;
    }
    /* left vectors of the worked matrix: G_j / s_j; right: W's rows */
    int k = nn;
    for (int c = 0; c < k; c++) {
        int j = ord[c];
        s[c] = sv[j];
        double inv = sv[j] > 0 ? 1.0 / sv[j] : 0.0;
        for (int i = 0; i < mm; i++) {
            double left = G[(size_t)j * mm + i] * inv;
            if (tr) V[(size_t)i * k + c] = left; else U[(size_t)i * k + c] = left;
        }
        for (int i = 0; i < nn; i++) {
            double right = W[(size_t)j * nn + i];
            if (tr) U[(size_t)i * k + c] = right; else V[(size_t)i * k + c] = right;
        }
    }
    free(G); free(W); free(ord); free(sv);
    return sweeps;
}

recsys_status rs_lora_refactor(recsys_ctx *ctx, int in, int out, int r, float scale,
                               const double *delta, float *A, float *B)
{
    int k = in < out ? in : out;
    if (k > RS_SVD_MAX || r <= 0 || scale == 0.0f)
        return rs_error(ctx, RECSYS_E_INVALID, "adapter merge: %d x %d too large or rank %d", out,
                        in, r);
    double *U = malloc(sizeof(double) * (size_t)out * k), *V = malloc(sizeof(double) * (size_t)in * k);
    double *s = malloc(sizeof(double) * k);
    if (!U || !V || !s) {
        free(U); free(V); free(s);
        return rs_error(ctx, RECSYS_E_NOMEM, "adapter merge: out of memory");
    }
    int sw = rs_svd(out, in, delta, U, s, V);
    recsys_status rc = RECSYS_OK;
    if (sw < 0) rc = rs_error(ctx, RECSYS_E_NUMERIC, "adapter merge: SVD did not converge");
    for (int c = 0; c < r && !rc; c++) {
        double rt = c < k ? sqrt(s[c]) : 0.0;
        for (int i = 0; i < out; i++) B[(size_t)i * r + c] = c < k ? (float)(U[(size_t)i * k + c] * rt) : 0.0f;
        for (int j = 0; j < in; j++)
            A[(size_t)c * in + j] = c < k ? (float)(V[(size_t)j * k + c] * rt / scale) : 0.0f;
    }
    free(U); free(V); free(s);
    return rc;
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

recsys_status rs_lora_merge(recsys_ctx *ctx, int n, const float *const *A, const float *const *B,
                            const float *w, int in, int out, int r, float scale, int mode,
                            float density, int r_out, float *A_out, float *B_out)
{
    size_t D = (size_t)in * out;
    if (n <= 0 || (mode == RS_MERGE_TIES && !(density > 0.0f && density <= 1.0f)))
        return rs_error(ctx, RECSYS_E_INVALID, "adapter merge: %d adapters, density %g", n,
                        (double)density);
    double *delta = calloc(D, sizeof(double)), *di = malloc(sizeof(double) * D);
    double *mag = malloc(sizeof(double) * D), *wsum = calloc(D, sizeof(double));
    double *elect = calloc(D, sizeof(double));
    if (!delta || !di || !mag || !wsum || !elect) {
        free(delta); free(di); free(mag); free(wsum); free(elect);
        return rs_error(ctx, RECSYS_E_NOMEM, "adapter merge: out of memory");
    }
    /* pass 1 (TIES: the elected signs), pass 2: the merge */
    for (int pass = mode == RS_MERGE_TIES ? 0 : 1; pass < 2; pass++)
        for (int a = 0; a < n; a++) {
            for (int o = 0; o < out; o++)
                for (int j = 0; j < in; j++) {
                    double x = 0;
                    for (int c = 0; c < r; c++)
                        x += (double)B[a][(size_t)o * r + c] * A[a][(size_t)c * in + j];
                    di[(size_t)o * in + j] = scale * x;
                }
            double thr = 0.0;
            if (mode == RS_MERGE_TIES) {
                for (size_t e = 0; e < D; e++) mag[e] = fabs(di[e]);
                size_t keep = (size_t)ceil((double)density * (double)D);
                if (keep < D) {
                    qsort(mag, D, sizeof(double), cmp_desc);
                    thr = keep ? mag[keep - 1] : INFINITY;
                }
            }
            for (size_t e = 0; e < D; e++) {
                if (mode == RS_MERGE_TIES && fabs(di[e]) < thr) continue; /* trimmed */
                double v = w[a] * di[e];
                if (pass == 0) elect[e] += v;
                else if (mode == RS_MERGE_LINEAR) delta[e] += v;
                else if ((elect[e] > 0 && di[e] > 0) || (elect[e] < 0 && di[e] < 0)) {
                    delta[e] += v;
                    wsum[e] += w[a];
                }
            }
        }
    if (mode == RS_MERGE_TIES)
        for (size_t e = 0; e < D; e++) delta[e] = wsum[e] != 0.0 ? delta[e] / wsum[e] : 0.0;
    recsys_status rc = rs_lora_refactor(ctx, in, out, r_out, scale, delta, A_out, B_out);
    free(delta); free(di); free(mag); free(wsum); free(elect);
    return rc;
}
