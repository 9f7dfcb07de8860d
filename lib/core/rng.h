/* Deterministic random numbers: xoshiro256** streams seeded by splitmix64,
 * and a counter-based hash for dropout masks that must not depend on
 * thread scheduling. */
#ifndef RS_RNG_H
#define RS_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct rs_rng { uint64_t s[4]; } rs_rng;

static inline uint64_t rs_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Stateless mix of (seed, counter): the same inputs give the same bits. */
static inline uint64_t rs_hash64(uint64_t seed, uint64_t counter)
{
    uint64_t x = seed ^ (counter * 0xd1342543de82ef95ULL);
    return rs_splitmix64(&x);
}

static inline void rs_rng_seed(rs_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = rs_splitmix64(&seed);
}

static inline uint64_t rs_rng_next(rs_rng *r)
{
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5;
    uint64_t result = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* Uniform in [0, 1). */
static inline double rs_rng_uniform(rs_rng *r)
{
    return (double)(rs_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, n), n > 0 (Lemire's multiply-shift, unbiased enough
 * for n << 2^64). */
static inline uint64_t rs_rng_below(rs_rng *r, uint64_t n)
{
    return (uint64_t)(((__uint128_t)rs_rng_next(r) * n) >> 64);
}

/* Standard normal (Box–Muller). */
static inline double rs_rng_normal(rs_rng *r)
{
    double u1 = rs_rng_uniform(r), u2 = rs_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
