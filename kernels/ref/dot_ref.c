/* Scalar reference of the dot product (accumulated in double). */
#include "kernels.h"

float rs_dot_ref(size_t n, const float *a, const float *b)
{
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) acc += (double)a[i] * b[i];
    return (float)acc;
}
