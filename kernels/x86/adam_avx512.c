/* The Adam/AdamW update, AVX-512. */
#include "kernels_isa.h"
#include "simd_avx512.h"

#include <immintrin.h>
#include <math.h>

#define W 16

/* Plain mul/add in the reference's order (no FMA): the update then matches
 * rs_adam_ref bit for bit, and it is memory bound anyway. */
void rs_adam_avx512(size_t n, float *p, const float *g, float *m, float *v, float lr, float b1,
                    float b2, float eps, float wd, float bc1, float bc2)
{
    const __m512 vb1 = _mm512_set1_ps(b1), vb2 = _mm512_set1_ps(b2);
    const __m512 ob1 = _mm512_set1_ps(1.0f - b1), ob2 = _mm512_set1_ps(1.0f - b2);
    const __m512 vlr = _mm512_set1_ps(lr), veps = _mm512_set1_ps(eps), vwd = _mm512_set1_ps(wd);
    const __m512 vbc1 = _mm512_set1_ps(bc1), vbc2 = _mm512_set1_ps(bc2);
    for (size_t i = 0; i < n; i += W) {
        __mmask16 k = n - i >= W ? (__mmask16)0xFFFF : rs_mask16((int)(n - i));
        __m512 gi = _mm512_maskz_loadu_ps(k, g + i);
        __m512 mi = _mm512_add_ps(_mm512_mul_ps(vb1, _mm512_maskz_loadu_ps(k, m + i)),
                                  _mm512_mul_ps(ob1, gi));
        __m512 vi = _mm512_add_ps(_mm512_mul_ps(vb2, _mm512_maskz_loadu_ps(k, v + i)),
                                  _mm512_mul_ps(_mm512_mul_ps(ob2, gi), gi));
        __m512 pi = _mm512_maskz_loadu_ps(k, p + i);
        __m512 mh = _mm512_div_ps(mi, vbc1), vh = _mm512_div_ps(vi, vbc2);
        __m512 step = _mm512_add_ps(_mm512_div_ps(mh, _mm512_add_ps(_mm512_sqrt_ps(vh), veps)),
                                    _mm512_mul_ps(vwd, pi));
        _mm512_mask_storeu_ps(m + i, k, mi);
        _mm512_mask_storeu_ps(v + i, k, vi);
        _mm512_mask_storeu_ps(p + i, k, _mm512_sub_ps(pi, _mm512_mul_ps(vlr, step)));
    }
}
