/* Scalar references of the point-wise row kernels (kernels.h). These are the
 * loops lib/nn ran before the kernels existed; the SIMD variants repeat their
 * operations exactly (no FMA contraction) so training stays bit-identical. */
#include "kernels.h"

#include <math.h>

void rs_dropout_fwd_ref(size_t m, uint64_t seed, uint64_t base, float p, float scale,
                        const float *x, float *y, uint8_t *mask)
{
    for (size_t c = 0; c < m; c++) {
        int k = rs_dropout_keep(seed, base + c, p);
        if (mask) mask[c] = (uint8_t)k;
        y[c] = k ? x[c] * scale : 0.0f;
    }
}

void rs_dropout_apply_ref(size_t m, const uint8_t *mask, float scale, const float *x, float *y)
{
    for (size_t c = 0; c < m; c++) y[c] = mask[c] ? x[c] * scale : 0.0f;
}

void rs_vadd_ref(size_t m, const float *x, float *y)
{
    for (size_t c = 0; c < m; c++) y[c] += x[c];
}

void rs_relu_ref(size_t m, float *y)
{
    for (size_t c = 0; c < m; c++) y[c] = y[c] > 0.0f ? y[c] : 0.0f;
}

void rs_relu_bwd_ref(size_t m, const float *y, float scale, float *d)
{
    for (size_t c = 0; c < m; c++) d[c] = y[c] > 0.0f ? d[c] * scale : 0.0f;
}

void rs_silu_fwd_ref(size_t m, float *a, float *s)
{
    for (size_t c = 0; c < m; c++) {
        float h = a[c], sg = 1.0f / (1.0f + expf(-h));
        s[c] = sg;
        a[c] = h * sg;
    }
}

void rs_silu_bwd_ref(size_t m, const float *s, const float *g, float *d)
{
    for (size_t c = 0; c < m; c++) d[c] *= s[c] + g[c] * (1.0f - s[c]);
}

void rs_softmax_ref(size_t m, float *x)
{
    float mx = -INFINITY, sum = 0.0f;
    for (size_t c = 0; c < m; c++) mx = x[c] > mx ? x[c] : mx;
    for (size_t c = 0; c < m; c++) sum += (x[c] = expf(x[c] - mx));
    float inv = 1.0f / sum;
    for (size_t c = 0; c < m; c++) x[c] *= inv;
}

void rs_embed_gather_ref(int n, int d, const float *table, const int32_t *ids, float scale,
                         int accumulate, float *y)
{
    for (int i = 0; i < n; i++) {
        const float *t = table + (size_t)ids[i] * d;
        float *yi = y + (size_t)i * d;
        if (accumulate)
            for (int c = 0; c < d; c++) yi[c] += scale * t[c];
        else
            for (int c = 0; c < d; c++) yi[c] = scale * t[c];
    }
}

void rs_embed_scatter_ref(int n, int d, int c0, int c1, const int32_t *ids, float scale,
                          const float *dy, float *table)
{
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0) continue;
        float *t = table + (size_t)ids[i] * d;
        const float *g = dy + (size_t)i * d;
        for (int c = c0; c < c1; c++) t[c] += scale * g[c];
    }
}
