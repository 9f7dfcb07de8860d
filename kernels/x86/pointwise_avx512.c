/* AVX-512 point-wise row kernels (kernels.h): 16 floats per step, tails
 * done with masked loads/stores. Same operation order as pointwise_ref.c and
 * no FMA, so results are bitwise equal (SiLU aside). The dropout hash runs
 * on 8 x 64-bit lanes with vpmullq (AVX512DQ). */
#include <immintrin.h>
#include <math.h>

#include "kernels_isa.h"
#include "simd_avx512.h"

void rs_dropout_fwd_avx512(size_t m, uint64_t seed, uint64_t base, float p, float scale,
                           const float *x, float *y, uint8_t *mask)
{
    const __m512i vseed = _mm512_set1_epi64((long long)seed);
    const __m512i thr = _mm512_set1_epi64(rs_dropout_threshold(p));
    const __m512i eight = _mm512_set1_epi64(8);
    const __m512 vs = _mm512_set1_ps(scale);
    const __m128i ones = _mm_set1_epi8(1);
    __m512i ctr = _mm512_add_epi64(_mm512_set1_epi64((long long)base),
                                   _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
    for (size_t c = 0; c < m; c += 16) {
        __mmask16 t = rs_tail16(m - c);
        __mmask16 k0 = rs_dropout_keep8(vseed, ctr, thr);
        ctr = _mm512_add_epi64(ctr, eight);
        __mmask16 k1 = rs_dropout_keep8(vseed, ctr, thr);
        ctr = _mm512_add_epi64(ctr, eight);
        __mmask16 k = (__mmask16)(k0 | (k1 << 8));
        __m512 v = _mm512_maskz_loadu_ps(t, x + c);
        _mm512_mask_storeu_ps(y + c, t, _mm512_maskz_mul_ps(k, v, vs));
        if (mask) _mm_mask_storeu_epi8(mask + c, t, _mm_maskz_mov_epi8(k, ones));
    }
}

void rs_dropout_apply_avx512(size_t m, const uint8_t *mask, float scale, const float *x, float *y)
{
    const __m512 vs = _mm512_set1_ps(scale);
    for (size_t c = 0; c < m; c += 16) {
        __mmask16 t = rs_tail16(m - c);
        __m128i b = _mm_maskz_loadu_epi8(t, mask + c);
        __mmask16 k = _mm_test_epi8_mask(b, b);
        _mm512_mask_storeu_ps(y + c, t, _mm512_maskz_mul_ps(k, _mm512_maskz_loadu_ps(t, x + c), vs));
    }
}

void rs_vadd_avx512(size_t m, const float *x, float *y)
{
    for (size_t c = 0; c < m; c += 16) {
        __mmask16 t = rs_tail16(m - c);
        _mm512_mask_storeu_ps(y + c, t, _mm512_add_ps(_mm512_maskz_loadu_ps(t, y + c),
                                                      _mm512_maskz_loadu_ps(t, x + c)));
    }
}

void rs_relu_avx512(size_t m, float *y)
{
    const __m512 z = _mm512_setzero_ps();
    /* max(y, 0) returns its second operand for NaN and -0, as y > 0 ? y : 0 */
    for (size_t c = 0; c < m; c += 16) {
        __mmask16 t = rs_tail16(m - c);
        _mm512_mask_storeu_ps(y + c, t, _mm512_max_ps(_mm512_maskz_loadu_ps(t, y + c), z));
    }
}

void rs_relu_bwd_avx512(size_t m, const float *y, float scale, float *d)
{
    const __m512 z = _mm512_setzero_ps(), vs = _mm512_set1_ps(scale);
    for (size_t c = 0; c < m; c += 16) {
        __mmask16 t = rs_tail16(m - c);
        __mmask16 k = _mm512_mask_cmp_ps_mask(t, _mm512_maskz_loadu_ps(t, y + c), z, _CMP_GT_OQ);
        _mm512_mask_storeu_ps(d + c, t, _mm512_maskz_mul_ps(k, _mm512_maskz_loadu_ps(t, d + c), vs));
    }
}

void rs_silu_fwd_avx512(size_t m, float *a, float *s)
{
    for (size_t c = 0; c < m; c += 16) {
        __mmask16 t = rs_tail16(m - c);
        __m512 h = _mm512_maskz_loadu_ps(t, a + c);
        __m512 sg = rs_sigmoid16(h);
        _mm512_mask_storeu_ps(s + c, t, sg);
        _mm512_mask_storeu_ps(a + c, t, _mm512_mul_ps(h, sg));
    }
}

void rs_softmax_avx512(size_t m, float *x)
{
    __m512 mv = _mm512_set1_ps(-INFINITY), sv = _mm512_setzero_ps();
    for (size_t c = 0; c < m; c += 16)
        mv = _mm512_max_ps(mv, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), rs_tail16(m - c), x + c));
    const __m512 vm = _mm512_set1_ps(_mm512_reduce_max_ps(mv));
    for (size_t c = 0; c < m; c += 16) {
        __mmask16 t = rs_tail16(m - c);
        __m512 e = rs_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(t, x + c), vm));
        e = _mm512_maskz_mov_ps(t, e);
        _mm512_mask_storeu_ps(x + c, t, e);
        sv = _mm512_add_ps(sv, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sv));
    for (size_t c = 0; c < m; c += 16) {
        __mmask16 t = rs_tail16(m - c);
        _mm512_mask_storeu_ps(x + c, t, _mm512_mul_ps(_mm512_maskz_loadu_ps(t, x + c), inv));
    }
}

void rs_silu_bwd_avx512(size_t m, const float *s, const float *g, float *d)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    for (size_t c = 0; c < m; c += 16) {
        __mmask16 t = rs_tail16(m - c);
        __m512 sv = _mm512_maskz_loadu_ps(t, s + c);
        __m512 f = _mm512_add_ps(sv, _mm512_mul_ps(_mm512_maskz_loadu_ps(t, g + c), _mm512_sub_ps(one, sv)));
        _mm512_mask_storeu_ps(d + c, t, _mm512_mul_ps(_mm512_maskz_loadu_ps(t, d + c), f));
    }
}

/* y[c] (+)= scale * t[c], c < d */
static inline void scaled_row(int d, const float *t, float scale, int accumulate, float *y)
{
    const __m512 vs = _mm512_set1_ps(scale);
    for (int c = 0; c < d; c += 16) {
        __mmask16 k = rs_tail16((size_t)(d - c));
        __m512 v = _mm512_mul_ps(vs, _mm512_maskz_loadu_ps(k, t + c));
        if (accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(k, y + c), v);
        _mm512_mask_storeu_ps(y + c, k, v);
    }
}

void rs_embed_gather_avx512(int n, int d, const float *table, const int32_t *ids, float scale,
                            int accumulate, float *y)
{
    for (int i = 0; i < n; i++)
        scaled_row(d, table + (size_t)ids[i] * d, scale, accumulate, y + (size_t)i * d);
}

void rs_embed_scatter_avx512(int n, int d, int c0, int c1, const int32_t *ids, float scale,
                             const float *dy, float *table)
{
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0) continue;
        scaled_row(c1 - c0, dy + (size_t)i * d + c0, scale, 1, table + (size_t)ids[i] * d + c0);
    }
}

void rs_exp_row_avx512(size_t m, const float *x, float *y)
{
    for (size_t c = 0; c < m; c += 16) {
        __mmask16 t = rs_tail16(m - c);
        _mm512_mask_storeu_ps(y + c, t, rs_exp16(_mm512_maskz_loadu_ps(t, x + c)));
    }
}
