/* Scalar reference of the dot product (accumulated in double). */
#include "kernels.h"

float rs_dot_ref(size_t n, const float *a, const float *b)
{
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) acc += (double)a[i] * b[i];
    return (float)acc;
}

size_t rs_panels_floats(size_t n, int d)
{
    return (n + RS_PANEL - 1) / RS_PANEL * RS_PANEL * (size_t)d;
}

void rs_pack_panels(size_t n, int d, const float *rows, size_t ld, float *panels)
{
    size_t np = (n + RS_PANEL - 1) / RS_PANEL;
    for (size_t p = 0; p < np; p++) {
        float *dst = panels + p * RS_PANEL * (size_t)d;
        for (int k = 0; k < d; k++)
            for (size_t l = 0; l < RS_PANEL; l++) {
                size_t i = p * RS_PANEL + l;
                dst[(size_t)k * RS_PANEL + l] = i < n ? rows[i * ld + (size_t)k] : 0.0f;
            }
    }
}

void rs_dot_panels_ref(size_t n, int d, const float *panels, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++) {
        const float *col = panels + i / RS_PANEL * RS_PANEL * (size_t)d + i % RS_PANEL;
        double acc = 0.0;
        for (int k = 0; k < d; k++) acc += (double)x[k] * col[(size_t)k * RS_PANEL];
        y[i] = (float)acc;
    }
}
