/* Scalar pieces shared by the HSTU attention kernels of every ISA
 * (hstu_attention_avx2.c, hstu_attention_avx512.c): the key tiles packed
 * transposed (tw keys per tile, one SIMD lane per key) and the choice of the
 * work buffer. tw is a compile-time constant at each call once inlined. */
#ifndef RS_HSTU_TILES_H
#define RS_HSTU_TILES_H

#include "kernels.h"

#include <string.h>

/* Work buffer on the stack when the caller passes none: enough for
 * dqk, dv <= 128 with 16-key tiles (rs_hstu_scratch_floats). */
#define RS_HSTU_STACK_FLOATS (32 * 128 + 512)

/* Transpose rows j0..j0+nj-1 (width w, stride ld) into t[c*tw + jj]; lanes
 * past nj are zero. */
static inline void rs_hstu_pack_tile(const float *x, int ld, int j0, int nj, int w, int tw,
                                     float *t)
{
    memset(t, 0, sizeof(float) * (size_t)w * (size_t)tw);
    for (int jj = 0; jj < nj; jj++) {
        const float *row = x + (size_t)(j0 + jj) * ld;
        for (int c = 0; c < w; c++) t[c * tw + jj] = row[c];
    }
}

/* The inverse: rows j0..j0+nj-1 of x from t. */
static inline void rs_hstu_unpack_tile(const float *t, int nj, int w, int tw, float *x, int ld,
                                       int j0)
{
    for (int jj = 0; jj < nj; jj++) {
        float *row = x + (size_t)(j0 + jj) * ld;
        for (int c = 0; c < w; c++) row[c] = t[c * tw + jj];
    }
}

/* The caller's scratch, else the stack buffer when it is large enough, else
 * NULL (the kernel then falls back to the reference). */
static inline float *rs_hstu_pick_scratch(float *scratch, float *stack, int dqk, int dv)
{
    if (scratch) return scratch;
    return rs_hstu_scratch_floats(dqk, dv) <= RS_HSTU_STACK_FLOATS ? stack : NULL;
}

#endif
