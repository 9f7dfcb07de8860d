/* The AVX2 + FMA toolkit shared by the AVX2 kernels: tail masks, horizontal
 * sum, the vector exp (one polynomial, x86/simd_exp.h) and sigmoid, and the
 * dropout hash (dropout_hash.h) on 4 x 64-bit lanes. Include only from
 * translation units built with -mavx2 -mfma. */
#ifndef RS_SIMD_AVX2_H
#define RS_SIMD_AVX2_H

#include "dropout_hash.h"
#include "simd_exp.h"

#include <immintrin.h>
#include <stdint.h>

/* All-ones in the 32-bit lanes < n (none for n <= 0, all for n >= 8). */
static inline __m256i rs_tail8(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline float rs_hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float rs_hmax8(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* e^x lane-wise; accuracy and range in simd_exp.h. */
static inline __m256 rs_exp8(__m256 x)
{
    __m256 live = _mm256_cmp_ps(x, _mm256_set1_ps(RS_EXP_LO), _CMP_GE_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(RS_EXP_LO)), _mm256_set1_ps(RS_EXP_HI));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(RS_EXP_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(RS_EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(RS_EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(RS_EXP_C7);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(RS_EXP_C6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(RS_EXP_C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(RS_EXP_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(RS_EXP_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(RS_EXP_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* n in [-126, 127]: 2^n is a normal float built from its exponent bits */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
                                  23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), live);
}

/* σ(x) = 1 / (1 + e^-x). */
static inline __m256 rs_sigmoid8(__m256 x)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, rs_exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

/* x * k mod 2^64 per 64-bit lane (AVX2 has no 64-bit multiply): three
 * 32x32->64 products. */
static inline __m256i rs_mul64c(__m256i x, uint64_t k)
{
    const __m256i klo = _mm256_set1_epi64x((long long)(k & 0xffffffffu));
    const __m256i khi = _mm256_set1_epi64x((long long)(k >> 32));
    __m256i lo = _mm256_mul_epu32(x, klo);
    __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(x, 32), klo),
                                     _mm256_mul_epu32(x, khi));
    return _mm256_add_epi64(lo, _mm256_slli_epi64(cross, 32));
}

/* rs_dropout_hash(seed, ctr) >> RS_DROP_SHIFT for 4 counters (64-bit lanes):
 * the 24 bits compared with rs_dropout_threshold. */
static inline __m256i rs_dropout_bits4(__m256i seed, __m256i ctr)
{
    __m256i x = _mm256_xor_si256(seed, rs_mul64c(ctr, RS_DROP_K1));
    x = _mm256_add_epi64(x, _mm256_set1_epi64x((long long)RS_DROP_K2));
    x = rs_mul64c(_mm256_xor_si256(x, _mm256_srli_epi64(x, 30)), RS_DROP_K3);
    x = rs_mul64c(_mm256_xor_si256(x, _mm256_srli_epi64(x, 27)), RS_DROP_K4);
    return _mm256_srli_epi64(x, RS_DROP_SHIFT); /* the final x ^= x >> 31 leaves these alone */
}

#endif
