/* L2 normalisation of rows (HSTU's output normalisation), row-level: the
 * caller runs it inside its own pool task (the padded edge of a model). */
#include "nn/nn.h"

#include <math.h>

void rs_l2norm_rows_fwd(const rs_kernels *k, int n, int d, const float *x, float eps, float *y,
                        float *inv)
{
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        float *yi = y + (size_t)i * d;
        float nrm = sqrtf(k->dot((size_t)d, xi, xi));
        float s = 1.0f / (nrm > eps ? nrm : eps);
        inv[i] = s;
        for (int c = 0; c < d; c++) yi[c] = xi[c] * s;
    }
}

void rs_l2norm_rows_bwd(const rs_kernels *k, int n, int d, const float *x, const float *inv,
                        float eps, const float *dy, float *dx)
{
    for (int i = 0; i < n; i++) {
        const float *g = dy + (size_t)i * d, *xi = x + (size_t)i * d;
        float *dxi = dx + (size_t)i * d, s = inv[i];
        if (s < 1.0f / eps) { /* (g - <g,y> y) / ‖x‖, y = x s */
            float gy = k->dot((size_t)d, g, xi) * s;
            for (int c = 0; c < d; c++) dxi[c] = (g[c] - gy * xi[c] * s) * s;
        } else {
            for (int c = 0; c < d; c++) dxi[c] = g[c] * s;
        }
    }
}
