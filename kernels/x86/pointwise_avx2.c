/* AVX2 point-wise row kernels (kernels.h). Same operation order as
 * pointwise_ref.c and no FMA, so results are bitwise equal (SiLU aside).
 * Dropout: AVX2 has no 64-bit multiply, so the hash's multiplies by
 * constants are built from three 32x32->64 products; keep(c) is decided on
 * the hash's top 24 bits compared with an integer threshold, which is the
 * exact equivalent of the reference's float comparison. */
#include <immintrin.h>
#include <math.h>

#include "kernels_isa.h"
#include "simd_avx2.h"

/* Keep mask of counters ctr..ctr+7 as 8 x 32-bit all-ones/zero lanes. */
static inline __m256i keep8(__m256i seed, __m256i ctr, __m256i thr_m1)
{
    const __m256i four = _mm256_set1_epi64x(4);
    const __m256i lows = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    __m256i k0 = _mm256_cmpgt_epi64(rs_dropout_bits4(seed, ctr), thr_m1);
    __m256i k1 = _mm256_cmpgt_epi64(rs_dropout_bits4(seed, _mm256_add_epi64(ctr, four)), thr_m1);
    __m128i a = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(k0, lows));
    __m128i b = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(k1, lows));
    return _mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1);
}

void rs_dropout_fwd_avx2(size_t m, uint64_t seed, uint64_t base, float p, float scale,
                         const float *x, float *y, uint8_t *mask)
{
    const __m256i vseed = _mm256_set1_epi64x((long long)seed);
    const __m256i thr_m1 = _mm256_set1_epi64x(rs_dropout_threshold(p) - 1);
    const __m256i eight = _mm256_set1_epi64x(8);
    const __m256 vs = _mm256_set1_ps(scale);
    __m256i ctr = _mm256_add_epi64(_mm256_set1_epi64x((long long)base),
                                   _mm256_setr_epi64x(0, 1, 2, 3));
    size_t c = 0;
    for (; c + 8 <= m; c += 8, ctr = _mm256_add_epi64(ctr, eight)) {
        __m256i k = keep8(vseed, ctr, thr_m1);
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + c), vs);
        _mm256_storeu_ps(y + c, _mm256_and_ps(v, _mm256_castsi256_ps(k)));
        if (mask) {
            unsigned bits = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(k));
            for (int l = 0; l < 8; l++) mask[c + l] = (uint8_t)((bits >> l) & 1u);
        }
    }
    if (c < m) rs_dropout_fwd_ref(m - c, seed, base + c, p, scale, x + c, y + c, mask ? mask + c : NULL);
}

void rs_dropout_apply_avx2(size_t m, const uint8_t *mask, float scale, const float *x, float *y)
{
    const __m256 vs = _mm256_set1_ps(scale);
    const __m256i zero = _mm256_setzero_si256();
    size_t c = 0;
    for (; c + 8 <= m; c += 8) {
        __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(mask + c)));
        __m256 k = _mm256_castsi256_ps(_mm256_cmpgt_epi32(b, zero));
        _mm256_storeu_ps(y + c, _mm256_and_ps(_mm256_mul_ps(_mm256_loadu_ps(x + c), vs), k));
    }
    if (c < m) rs_dropout_apply_ref(m - c, mask + c, scale, x + c, y + c);
}

void rs_vadd_avx2(size_t m, const float *x, float *y)
{
    size_t c = 0;
    for (; c + 8 <= m; c += 8)
        _mm256_storeu_ps(y + c, _mm256_add_ps(_mm256_loadu_ps(y + c), _mm256_loadu_ps(x + c)));
    if (c < m) rs_vadd_ref(m - c, x + c, y + c);
}

void rs_relu_avx2(size_t m, float *y)
{
    const __m256 z = _mm256_setzero_ps();
    size_t c = 0;
    /* max(y, 0) returns its second operand for NaN and -0, as y > 0 ? y : 0 */
    for (; c + 8 <= m; c += 8) _mm256_storeu_ps(y + c, _mm256_max_ps(_mm256_loadu_ps(y + c), z));
    if (c < m) rs_relu_ref(m - c, y + c);
}

void rs_relu_bwd_avx2(size_t m, const float *y, float scale, float *d)
{
    const __m256 z = _mm256_setzero_ps(), vs = _mm256_set1_ps(scale);
    size_t c = 0;
    for (; c + 8 <= m; c += 8) {
        __m256 k = _mm256_cmp_ps(_mm256_loadu_ps(y + c), z, _CMP_GT_OQ);
        _mm256_storeu_ps(d + c, _mm256_and_ps(_mm256_mul_ps(_mm256_loadu_ps(d + c), vs), k));
    }
    if (c < m) rs_relu_bwd_ref(m - c, y + c, scale, d + c);
}

void rs_silu_fwd_avx2(size_t m, float *a, float *s)
{
    size_t c = 0;
    for (; c + 8 <= m; c += 8) {
        __m256 h = _mm256_loadu_ps(a + c);
        __m256 sg = rs_sigmoid8(h);
        _mm256_storeu_ps(s + c, sg);
        _mm256_storeu_ps(a + c, _mm256_mul_ps(h, sg));
    }
    if (c < m) rs_silu_fwd_ref(m - c, a + c, s + c);
}

void rs_softmax_avx2(size_t m, float *x)
{
    __m256 mv = _mm256_set1_ps(-INFINITY), sv = _mm256_setzero_ps();
    size_t c = 0;
    for (; c + 8 <= m; c += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + c));
    float mx = rs_hmax8(mv);
    for (size_t t = c; t < m; t++) mx = x[t] > mx ? x[t] : mx;
    const __m256 vm = _mm256_set1_ps(mx);
    for (c = 0; c + 8 <= m; c += 8) {
        __m256 e = rs_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + c), vm));
        _mm256_storeu_ps(x + c, e);
        sv = _mm256_add_ps(sv, e);
    }
    float sum = rs_hsum8(sv);
    for (size_t t = c; t < m; t++) sum += (x[t] = expf(x[t] - mx));
    const __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (c = 0; c + 8 <= m; c += 8) _mm256_storeu_ps(x + c, _mm256_mul_ps(_mm256_loadu_ps(x + c), inv));
    for (size_t t = c; t < m; t++) x[t] *= 1.0f / sum;
}

void rs_silu_bwd_avx2(size_t m, const float *s, const float *g, float *d)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    size_t c = 0;
    for (; c + 8 <= m; c += 8) {
        __m256 sv = _mm256_loadu_ps(s + c);
        __m256 t = _mm256_add_ps(sv, _mm256_mul_ps(_mm256_loadu_ps(g + c), _mm256_sub_ps(one, sv)));
        _mm256_storeu_ps(d + c, _mm256_mul_ps(_mm256_loadu_ps(d + c), t));
    }
    if (c < m) rs_silu_bwd_ref(m - c, s + c, g + c, d + c);
}

/* y[c] (+)= scale * t[c], c < d */
static inline void scaled_row(int d, const float *t, float scale, int accumulate, float *y)
{
    const __m256 vs = _mm256_set1_ps(scale);
    int c = 0;
    if (accumulate) {
        for (; c + 8 <= d; c += 8)
            _mm256_storeu_ps(y + c, _mm256_add_ps(_mm256_loadu_ps(y + c),
                                                  _mm256_mul_ps(vs, _mm256_loadu_ps(t + c))));
        for (; c < d; c++) y[c] += scale * t[c];
    } else {
        for (; c + 8 <= d; c += 8) _mm256_storeu_ps(y + c, _mm256_mul_ps(vs, _mm256_loadu_ps(t + c)));
        for (; c < d; c++) y[c] = scale * t[c];
    }
}

void rs_embed_gather_avx2(int n, int d, const float *table, const int32_t *ids, float scale,
                          int accumulate, float *y)
{
    for (int i = 0; i < n; i++)
        scaled_row(d, table + (size_t)ids[i] * d, scale, accumulate, y + (size_t)i * d);
}

void rs_embed_scatter_avx2(int n, int d, int c0, int c1, const int32_t *ids, float scale,
                           const float *dy, float *table)
{
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0) continue;
        scaled_row(c1 - c0, dy + (size_t)i * d + c0, scale, 1, table + (size_t)ids[i] * d + c0);
    }
}

void rs_exp_row_avx2(size_t m, const float *x, float *y)
{
    size_t c = 0;
    for (; c + 8 <= m; c += 8) _mm256_storeu_ps(y + c, rs_exp8(_mm256_loadu_ps(x + c)));
    if (c < m) {
        __m256i t = rs_tail8((int)(m - c));
        _mm256_maskstore_ps(y + c, t, rs_exp8(_mm256_maskload_ps(x + c, t)));
    }
}
