/* The dropout hash: the one definition of its constants and of the keep
 * decision, used by the scalar references (rs_dropout_keep, through
 * kernels.h) and by the SIMD toolkits (x86/simd_avx2.h, x86/simd_avx512.h),
 * which evaluate the same steps on 64-bit lanes.
 *
 * hash(seed, c): x = seed ^ (c * K1); x += K2; x = (x ^ x>>30) * K3;
 * x = (x ^ x>>27) * K4; x ^= x>>31 (a SplitMix64 finaliser). keep(c) iff
 * (x >> 40) * 2^-24 >= p. The last step x ^= x>>31 leaves the top 33 bits
 * alone, so the SIMD code stops after the K4 multiply and keeps x >> 40.
 * With u = x >> 40 (24 bits), u * 2^-24 >= p is exact arithmetic, so it
 * holds iff u >= ceil(p * 2^24) (rs_dropout_threshold). */
#ifndef RS_DROPOUT_HASH_H
#define RS_DROPOUT_HASH_H

#include <math.h>
#include <stdint.h>

#define RS_DROP_K1 0xd1342543de82ef95ULL
#define RS_DROP_K2 0x9e3779b97f4a7c15ULL
#define RS_DROP_K3 0xbf58476d1ce4e5b9ULL
#define RS_DROP_K4 0x94d049bb133111ebULL
#define RS_DROP_SHIFT 40 /* 64 - 24: the hash bits compared with p */

static inline uint64_t rs_dropout_hash(uint64_t seed, uint64_t counter)
{
    uint64_t x = seed ^ (counter * RS_DROP_K1);
    x += RS_DROP_K2;
    x = (x ^ (x >> 30)) * RS_DROP_K3;
    x = (x ^ (x >> 27)) * RS_DROP_K4;
    return x ^ (x >> 31);
}

/* The dropout decision shared by every kernel variant and the references. */
static inline int rs_dropout_keep(uint64_t seed, uint64_t counter, float drop_p)
{
    return (float)(rs_dropout_hash(seed, counter) >> RS_DROP_SHIFT) * (1.0f / 16777216.0f) >=
           drop_p;
}

/* Smallest u = hash >> 40 that is kept; 2^25 (nothing kept) for NaN or
 * p > 2, 0 for p <= 0. */
static inline long long rs_dropout_threshold(float p)
{
    if (!(p <= 2.0f)) return 1LL << 25;
    if (p <= 0.0f) return 0;
    return (long long)ceil((double)p * 16777216.0);
}

#endif
