/* The AVX-512 (F/BW/VL/DQ) toolkit shared by the AVX-512 kernels: tail
 * masks, the vector exp (one polynomial, x86/simd_exp.h) and sigmoid, and
 * the dropout hash (dropout_hash.h) on 8 x 64-bit lanes with vpmullq.
 * Include only from translation units built with the AVX-512 flags. */
#ifndef RS_SIMD_AVX512_H
#define RS_SIMD_AVX512_H

#include "dropout_hash.h"
#include "simd_exp.h"

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

/* Lanes < n set, n clamped to [0, 16]. */
static inline __mmask16 rs_mask16(int n)
{
    return (__mmask16)(n >= 16 ? 0xFFFFu : n <= 0 ? 0u : (1u << n) - 1u);
}

/* The same for an unsigned remainder (any size_t). */
static inline __mmask16 rs_tail16(size_t r)
{
    return r >= 16 ? (__mmask16)0xFFFFu : (__mmask16)((1u << r) - 1u);
}

/* e^x lane-wise; accuracy and range in simd_exp.h. */
static inline __m512 rs_exp16(__m512 x)
{
    __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(RS_EXP_LO), _CMP_GE_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(RS_EXP_LO)), _mm512_set1_ps(RS_EXP_HI));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(RS_EXP_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(RS_EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(RS_EXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(RS_EXP_C7);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(RS_EXP_C6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(RS_EXP_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(RS_EXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(RS_EXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(RS_EXP_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(live, p, n);
}

/* σ(x) = 1 / (1 + e^-x). */
static inline __m512 rs_sigmoid16(__m512 x)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, rs_exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

/* rs_dropout_hash(seed, ctr) >> RS_DROP_SHIFT for 8 counters (64-bit lanes):
 * the 24 bits compared with rs_dropout_threshold. */
static inline __m512i rs_dropout_bits8(__m512i seed, __m512i ctr)
{
    __m512i x = _mm512_xor_si512(seed, _mm512_mullo_epi64(ctr, _mm512_set1_epi64((long long)RS_DROP_K1)));
    x = _mm512_add_epi64(x, _mm512_set1_epi64((long long)RS_DROP_K2));
    x = _mm512_mullo_epi64(_mm512_xor_si512(x, _mm512_srli_epi64(x, 30)),
                           _mm512_set1_epi64((long long)RS_DROP_K3));
    x = _mm512_mullo_epi64(_mm512_xor_si512(x, _mm512_srli_epi64(x, 27)),
                           _mm512_set1_epi64((long long)RS_DROP_K4));
    return _mm512_srli_epi64(x, RS_DROP_SHIFT); /* the final x ^= x >> 31 leaves these alone */
}

/* Keep mask of 8 counters: threshold thr = rs_dropout_threshold(p) per lane. */
static inline __mmask8 rs_dropout_keep8(__m512i seed, __m512i ctr, __m512i thr)
{
    return _mm512_cmpge_epu64_mask(rs_dropout_bits8(seed, ctr), thr);
}

#endif
