/* Constants of rs_dropout_keep (kernels.h) for the SIMD dropout kernels, and
 * the integer form of its comparison: with u = hash >> 40 (24 bits),
 * (float)u * 2^-24 >= p is exact arithmetic, so it holds iff
 * u >= ceil(p * 2^24). */
#ifndef RS_POINTWISE_HASH_H
#define RS_POINTWISE_HASH_H

#include <math.h>
#include <stdint.h>

#define RS_DROP_K1 0xd1342543de82ef95ULL
#define RS_DROP_K2 0x9e3779b97f4a7c15ULL
#define RS_DROP_K3 0xbf58476d1ce4e5b9ULL
#define RS_DROP_K4 0x94d049bb133111ebULL

/* Smallest u kept; 2^25 (nothing kept) for NaN or p > 2, 0 for p <= 0. */
static inline long long rs_drop_threshold(float p)
{
    if (!(p <= 2.0f)) return 1LL << 25;
    if (p <= 0.0f) return 0;
    return (long long)ceil((double)p * 16777216.0);
}

#endif
