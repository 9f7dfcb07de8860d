/* Scalar reference of the Adam/AdamW update. */
#include "kernels.h"

#include <math.h>

void rs_adam_ref(size_t n, float *p, const float *g, float *m, float *v, float lr, float b1,
                 float b2, float eps, float wd, float bc1, float bc2)
{
    for (size_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        float mh = m[i] / bc1, vh = v[i] / bc2;
        p[i] -= lr * (mh / (sqrtf(vh) + eps) + wd * p[i]);
    }
}
