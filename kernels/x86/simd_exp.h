/* The constants of the vector exp of x86/simd_avx2.h and x86/simd_avx512.h:
 * one polynomial for every kernel.
 *
 * e^x = 2^n * e^r with n = round(x * log2(e)), r = x - n ln2 computed in two
 * steps (Cody-Waite: ln2 = RS_EXP_LN2_HI + RS_EXP_LN2_LO, the high part has
 * 9 significant bits so n * RS_EXP_LN2_HI is exact for |n| <= 127), |r| <=
 * ln2/2; e^r by its degree-7 Taylor polynomial (Horner, FMA). Truncation
 * error r^8/8! <= 5.3e-9 relative, below half an ulp (5.96e-8). With the
 * roundings of the steps, the maximum relative error against libm's expf,
 * measured over every float of [RS_EXP_LO, RS_EXP_HI], is 1.19e-7 (one ulp,
 * 2^-23; at x = -65.1558075 and x = 5.96e-8); tests/test_simd.c checks
 * RS_EXP_MAX_REL_ERR on a sweep of that range, the whole range the kernels
 * feed it. x is clamped to
 * [RS_EXP_LO, RS_EXP_HI]; below RS_EXP_LO (and -inf, as in the softmax's
 * masked scores) the result is exactly 0; NaN is not supported.
 *
 * The softmax attention kernels always used this polynomial; the HSTU and
 * SiLU kernels used a degree-6 one (up to ~2 ulp) before the two were
 * merged (docs/BENCHMARKS.md, "Kernel layout"). */
#ifndef RS_SIMD_EXP_H
#define RS_SIMD_EXP_H

#define RS_EXP_LO (-87.0f) /* e^-87 ~ 1.6e-38: the smallest normal result */
#define RS_EXP_HI 88.0f    /* e^88 ~ 1.65e38 < FLT_MAX */
#define RS_EXP_LOG2E 1.44269504088896341f
#define RS_EXP_LN2_HI 0.693359375f
#define RS_EXP_LN2_LO (-2.12194440e-4f)
#define RS_EXP_C7 (1.0f / 5040.0f)
#define RS_EXP_C6 (1.0f / 720.0f)
#define RS_EXP_C5 (1.0f / 120.0f)
#define RS_EXP_C4 (1.0f / 24.0f)
#define RS_EXP_C3 (1.0f / 6.0f)
#define RS_EXP_C2 0.5f
/* Bound checked by the tests (relative to expf, over [RS_EXP_LO, RS_EXP_HI]). */
#define RS_EXP_MAX_REL_ERR 1.2e-7

#endif
