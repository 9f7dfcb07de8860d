/* Dot product, AVX-512. */
#include "kernels_isa.h"
#include "simd_avx512.h"

#include <immintrin.h>
#include <math.h>

#define W 16

float rs_dot_avx512(size_t n, const float *a, const float *b)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + W), _mm512_loadu_ps(b + i + W), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 2 * W), _mm512_loadu_ps(b + i + 2 * W), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 3 * W), _mm512_loadu_ps(b + i + 3 * W), s3);
    }
    for (; i < n; i += W) {
        __mmask16 k = n - i >= W ? (__mmask16)0xFFFF : rs_mask16((int)(n - i));
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

/* Four panels at a time: four independent chains hide the FMA latency; each
 * lane's chain is the GEMM micro-kernel's (zero, then k in order). */
void rs_dot_panels_avx512(size_t n, int d, const float *panels, const float *x, float *y)
{
    const size_t ps = (size_t)d * RS_PANEL, np = (n + RS_PANEL - 1) / RS_PANEL;
    size_t p = 0;
    for (; p + 4 <= np; p += 4) {
        const float *b = panels + p * ps;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int k = 0; k < d; k++) {
            __m512 xv = _mm512_set1_ps(x[k]);
            const float *bk = b + (size_t)k * RS_PANEL;
            a0 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(bk), a0);
            a1 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(bk + ps), a1);
            a2 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(bk + 2 * ps), a2);
            a3 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(bk + 3 * ps), a3);
        }
        __m512 acc[4] = {a0, a1, a2, a3};
        for (int q = 0; q < 4; q++) {
            size_t i0 = (p + (size_t)q) * RS_PANEL;
            _mm512_mask_storeu_ps(y + i0, rs_tail16(n - i0), acc[q]);
        }
    }
    for (; p < np; p++) {
        const float *b = panels + p * ps;
        __m512 a0 = _mm512_setzero_ps();
        for (int k = 0; k < d; k++)
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(x[k]), _mm512_loadu_ps(b + (size_t)k * RS_PANEL), a0);
        size_t i0 = p * RS_PANEL;
        _mm512_mask_storeu_ps(y + i0, rs_tail16(n - i0), a0);
    }
}
