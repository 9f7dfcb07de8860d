/* Scalar reference for causal softmax attention with optional dropout on
 * the weights. Forward stores the row log-sum-exp so backward can rebuild
 * the weights without keeping the L x L matrix. */
#include "kernels.h"

#include <math.h>
#include <string.h>

void rs_attn_fwd_ref(int L, int start, int dh, float scale, const float *Q, const float *K,
                     const float *V, int ld, float drop_p, uint64_t seed, float *O, float *lse)
{
    float keep_scale = drop_p > 0.0f ? 1.0f / (1.0f - drop_p) : 1.0f;
    for (int i = 0; i < L; i++) {
        float *o = O + (size_t)i * ld;
        memset(o, 0, sizeof(float) * (size_t)dh);
        lse[i] = 0.0f;
        if (i < start) continue;
        const float *q = Q + (size_t)i * ld;
        double m = -INFINITY;
        for (int j = start; j <= i; j++) {
            double s = 0.0;
            for (int c = 0; c < dh; c++) s += (double)q[c] * K[(size_t)j * ld + c];
            s *= scale;
            if (s > m) m = s;
        }
        double l = 0.0;
        for (int j = start; j <= i; j++) {
            double s = 0.0;
            for (int c = 0; c < dh; c++) s += (double)q[c] * K[(size_t)j * ld + c];
            l += exp(s * scale - m);
        }
        double lse_i = m + log(l);
        lse[i] = (float)lse_i;
        for (int j = start; j <= i; j++) {
            if (drop_p > 0.0f && !rs_dropout_keep(seed, (uint64_t)i * L + j, drop_p)) continue;
            double s = 0.0;
            for (int c = 0; c < dh; c++) s += (double)q[c] * K[(size_t)j * ld + c];
            float p = (float)exp(s * scale - lse_i) * keep_scale;
            for (int c = 0; c < dh; c++) o[c] += p * V[(size_t)j * ld + c];
        }
    }
}

void rs_attn_bwd_ref(int L, int start, int dh, float scale, const float *Q, const float *K,
                     const float *V, const float *O, const float *dO, const float *lse,
                     int ld, float drop_p, uint64_t seed, float *dQ, float *dK, float *dV)
{
    float keep_scale = drop_p > 0.0f ? 1.0f / (1.0f - drop_p) : 1.0f;
    for (int i = 0; i < L; i++) {
        memset(dQ + (size_t)i * ld, 0, sizeof(float) * (size_t)dh);
        memset(dK + (size_t)i * ld, 0, sizeof(float) * (size_t)dh);
        memset(dV + (size_t)i * ld, 0, sizeof(float) * (size_t)dh);
    }
    for (int i = start; i < L; i++) {
        const float *q = Q + (size_t)i * ld, *o = O + (size_t)i * ld, *dout = dO + (size_t)i * ld;
        double Di = 0.0; /* dO_i · O_i = sum_j A_ij dA_ij */
        for (int c = 0; c < dh; c++) Di += (double)dout[c] * o[c];
        for (int j = start; j <= i; j++) {
            const float *k = K + (size_t)j * ld, *v = V + (size_t)j * ld;
            double s = 0.0;
            for (int c = 0; c < dh; c++) s += (double)q[c] * k[c];
            double a = exp(s * scale - lse[i]);
            int kept = drop_p <= 0.0f || rs_dropout_keep(seed, (uint64_t)i * L + j, drop_p);
            double dpv = 0.0;
            if (kept) {
                float ad = (float)a * keep_scale;
                for (int c = 0; c < dh; c++) {
                    dV[(size_t)j * ld + c] += ad * dout[c];
                    dpv += (double)dout[c] * v[c];
                }
                dpv *= keep_scale;
            }
            float ds = (float)(a * (dpv - Di)) * scale;
            for (int c = 0; c < dh; c++) {
                dQ[(size_t)i * ld + c] += ds * k[c];
                dK[(size_t)j * ld + c] += ds * q[c];
            }
        }
    }
}
