/* Scalar reference layer norm, fused with an optional residual add. */
#include "kernels.h"

#include <math.h>
#include <stddef.h>

void rs_layernorm_fwd_ref(int n, int d, const float *x, const float *r, const float *gamma,
                          const float *beta, float eps, float *y, float *mean, float *rstd)
{
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d, *ri = r ? r + (size_t)i * d : NULL;
        double mu = 0.0, var = 0.0;
        for (int c = 0; c < d; c++) mu += xi[c] + (ri ? ri[c] : 0.0f);
        mu /= d;
        for (int c = 0; c < d; c++) {
            double t = xi[c] + (ri ? ri[c] : 0.0f) - mu;
            var += t * t;
        }
        var /= d;
        float rs = (float)(1.0 / sqrt(var + eps));
        mean[i] = (float)mu;
        rstd[i] = rs;
        float *yi = y + (size_t)i * d;
        for (int c = 0; c < d; c++) {
            float h = ((xi[c] + (ri ? ri[c] : 0.0f)) - (float)mu) * rs;
            yi[c] = h * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f);
        }
    }
}

void rs_layernorm_bwd_ref(int n, int d, const float *x, const float *r, const float *gamma,
                          const float *mean, const float *rstd, const float *dy, float *dx,
                          float *dgamma, float *dbeta)
{
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d, *ri = r ? r + (size_t)i * d : NULL;
        const float *dyi = dy + (size_t)i * d;
        double sum_g = 0.0, sum_gh = 0.0;
        for (int c = 0; c < d; c++) {
            float h = ((xi[c] + (ri ? ri[c] : 0.0f)) - mean[i]) * rstd[i];
            float g = dyi[c] * (gamma ? gamma[c] : 1.0f);
            sum_g += g;
            sum_gh += (double)g * h;
            if (dgamma) dgamma[c] += dyi[c] * h;
            if (dbeta) dbeta[c] += dyi[c];
        }
        float mg = (float)(sum_g / d), mgh = (float)(sum_gh / d);
        float *dxi = dx + (size_t)i * d;
        for (int c = 0; c < d; c++) {
            float h = ((xi[c] + (ri ? ri[c] : 0.0f)) - mean[i]) * rstd[i];
            float g = dyi[c] * (gamma ? gamma[c] : 1.0f);
            dxi[c] = rstd[i] * (g - mg - h * mgh);
        }
    }
}
