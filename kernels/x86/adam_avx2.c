/* The Adam/AdamW update, AVX2 + FMA. */
#include "kernels_isa.h"
#include "simd_avx2.h"

#include <immintrin.h>
#include <math.h>

#define W 8

/* Plain mul/add in the reference's order (no FMA): the update then matches
 * rs_adam_ref bit for bit, and it is memory bound anyway. */
void rs_adam_avx2(size_t n, float *p, const float *g, float *m, float *v, float lr, float b1,
                  float b2, float eps, float wd, float bc1, float bc2)
{
    const __m256 vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2);
    const __m256 ob1 = _mm256_set1_ps(1.0f - b1), ob2 = _mm256_set1_ps(1.0f - b2);
    const __m256 vlr = _mm256_set1_ps(lr), veps = _mm256_set1_ps(eps), vwd = _mm256_set1_ps(wd);
    const __m256 vbc1 = _mm256_set1_ps(bc1), vbc2 = _mm256_set1_ps(bc2);
    for (size_t i = 0; i < n; i += W) {
        __m256i k = rs_tail8(n - i >= W ? W : (int)(n - i));
        __m256 gi = _mm256_maskload_ps(g + i, k);
        __m256 mi = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_maskload_ps(m + i, k)),
                                  _mm256_mul_ps(ob1, gi));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_maskload_ps(v + i, k)),
                                  _mm256_mul_ps(_mm256_mul_ps(ob2, gi), gi));
        __m256 pi = _mm256_maskload_ps(p + i, k);
        __m256 mh = _mm256_div_ps(mi, vbc1), vh = _mm256_div_ps(vi, vbc2);
        __m256 step = _mm256_add_ps(_mm256_div_ps(mh, _mm256_add_ps(_mm256_sqrt_ps(vh), veps)),
                                    _mm256_mul_ps(vwd, pi));
        _mm256_maskstore_ps(m + i, k, mi);
        _mm256_maskstore_ps(v + i, k, vi);
        _mm256_maskstore_ps(p + i, k, _mm256_sub_ps(pi, _mm256_mul_ps(vlr, step)));
    }
}
