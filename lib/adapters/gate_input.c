/* The gate's input rows and, in training, the cut that keeps the targets out
 * of them (gate_input.h). */
#include "adapters/gate_input.h"

#include <string.h>

void rs_gate_input(rs_batch_buf *bb, int rows, int gw, int train, int32_t *gseq,
                   int64_t *gtimes, int64_t *gnext_times, int *gstart)
{
    int L = bb->L;
    for (int r = 0; r < rows; r++) {
        size_t o = (size_t)r * L;
        int s0 = bb->start[r];
        int c = train ? s0 + (L - s0) / 2 : L - 1;
        if (c > L - 1) c = L - 1;
        int g0 = s0;
        if (gw > 0 && g0 < c - gw + 1) g0 = c - gw + 1;
        int shift = L - 1 - c;
        memset(gseq + o, 0, sizeof(int32_t) * (size_t)L);
        if (g0 <= c) memcpy(gseq + o + g0 + shift, bb->seq + o + g0, sizeof(int32_t) * (size_t)(c - g0 + 1));
        if (bb->times && gtimes) {
            memset(gtimes + o, 0, sizeof(int64_t) * (size_t)L);
            memset(gnext_times + o, 0, sizeof(int64_t) * (size_t)L);
            if (g0 <= c) {
                memcpy(gtimes + o + g0 + shift, bb->times + o + g0, sizeof(int64_t) * (size_t)(c - g0 + 1));
                memcpy(gnext_times + o + g0 + shift, bb->next_times + o + g0,
                       sizeof(int64_t) * (size_t)(c - g0 + 1));
            }
        }
        gstart[r] = g0 <= c ? g0 + shift : L;
        if (train && bb->pos)
            for (int p = s0; p < c; p++) bb->pos[o + p] = 0;
    }
}
