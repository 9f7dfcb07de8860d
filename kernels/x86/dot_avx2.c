/* Dot product, AVX2 + FMA. */
#include "kernels_isa.h"
#include "simd_avx2.h"

#include <immintrin.h>
#include <math.h>

#define W 8

float rs_dot_avx2(size_t n, const float *a, const float *b)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + W), _mm256_loadu_ps(b + i + W), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 2 * W), _mm256_loadu_ps(b + i + 2 * W), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 3 * W), _mm256_loadu_ps(b + i + 3 * W), s3);
    }
    for (; i < n; i += W) {
        __m256i k = rs_tail8(n - i >= W ? W : (int)(n - i));
        s0 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, k), _mm256_maskload_ps(b + i, k), s0);
    }
    return rs_hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

/* Row i's result from lanes of a panel's two halves into y (n - i0 rows left). */
static inline void store_panel(float *y, size_t left, __m256 lo, __m256 hi)
{
    if (left >= RS_PANEL) {
        _mm256_storeu_ps(y, lo);
        _mm256_storeu_ps(y + W, hi);
        return;
    }
    _Alignas(32) float t[RS_PANEL];
    _mm256_store_ps(t, lo);
    _mm256_store_ps(t + W, hi);
    for (size_t l = 0; l < left; l++) y[l] = t[l];
}

/* Two panels (four 8-lane chains) at a time; each lane's chain is the GEMM
 * micro-kernel's (zero, then k in order). */
void rs_dot_panels_avx2(size_t n, int d, const float *panels, const float *x, float *y)
{
    const size_t ps = (size_t)d * RS_PANEL, np = (n + RS_PANEL - 1) / RS_PANEL;
    size_t p = 0;
    for (; p + 2 <= np; p += 2) {
        const float *b = panels + p * ps;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int k = 0; k < d; k++) {
            __m256 xv = _mm256_set1_ps(x[k]);
            const float *bk = b + (size_t)k * RS_PANEL;
            a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(bk), a0);
            a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(bk + W), a1);
            a2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(bk + ps), a2);
            a3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(bk + ps + W), a3);
        }
        store_panel(y + p * RS_PANEL, n - p * RS_PANEL, a0, a1);
        store_panel(y + (p + 1) * RS_PANEL, n - (p + 1) * RS_PANEL, a2, a3);
    }
    for (; p < np; p++) {
        const float *b = panels + p * ps;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        for (int k = 0; k < d; k++) {
            __m256 xv = _mm256_set1_ps(x[k]);
            a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(b + (size_t)k * RS_PANEL), a0);
            a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(b + (size_t)k * RS_PANEL + W), a1);
        }
        store_panel(y + p * RS_PANEL, n - p * RS_PANEL, a0, a1);
    }
}
