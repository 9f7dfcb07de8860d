/* Scalar reference for HSTU pointwise attention (docs/MODELS.md §3): SiLU of
 * the biased scores instead of a softmax, so every (i, j) pair is
 * independent and the backward needs no row statistics. Per-pair products
 * are formed in double; the SIMD variants are tested against this. */
#include "kernels.h"

#include <math.h>
#include <string.h>

int rs_hstu_time_bucket(int64_t delta)
{
    uint64_t x = delta < 0 ? 0 - (uint64_t)delta : (uint64_t)delta;
    if (x <= 1) return 0;
    double b = floor(log((double)x) / 0.301);
    return b > 128.0 ? 128 : (int)b;
}

/* Packed key/value tiles of up to 16 columns, their gradients, and a few
 * per-row-block tiles (see hstu_attention_avx512.c). */
size_t rs_hstu_scratch_floats(int dqk, int dv)
{
    return (size_t)32 * (size_t)(dqk + dv) + 512;
}

/* Score of pair (i, j): dot product plus the relative biases. */
static double hstu_score(const rs_hstu_attn *a, int i, int j, int *bucket)
{
    const float *q = a->q + (size_t)i * a->ld, *k = a->k + (size_t)j * a->ld;
    double s = 0.0;
    for (int c = 0; c < a->dqk; c++) s += (double)q[c] * k[c];
    s += a->rab_pos[j - i + a->N - 1];
    *bucket = 0;
    if (a->rab_time) {
        *bucket = rs_hstu_time_bucket(a->next_times[i] - a->times[j]);
        s += a->rab_time[*bucket];
    }
    return s;
}

void rs_hstu_fwd_ref(const rs_hstu_attn *a, float *o, int ld_o, float *scratch)
{
    (void)scratch;
    double inv_n = 1.0 / a->N;
    for (int i = 0; i < a->L; i++) {
        float *oi = o + (size_t)i * ld_o;
        memset(oi, 0, sizeof(float) * (size_t)a->dv);
        for (int j = a->start; j <= i; j++) {
            int bucket;
            double s = hstu_score(a, i, j, &bucket);
            double w = s / (1.0 + exp(-s)) * inv_n;
            const float *vj = a->v + (size_t)j * a->ld;
            for (int c = 0; c < a->dv; c++) oi[c] += (float)(w * vj[c]);
        }
    }
}

void rs_hstu_bwd_ref(const rs_hstu_attn *a, const float *d_o, int ld_o, float *dq, float *dk,
                     float *dv, float *d_rab_pos, float *d_rab_time, float *scratch)
{
    (void)scratch;
    double inv_n = 1.0 / a->N;
    for (int i = 0; i < a->L; i++) {
        memset(dq + (size_t)i * a->ld, 0, sizeof(float) * (size_t)a->dqk);
        memset(dk + (size_t)i * a->ld, 0, sizeof(float) * (size_t)a->dqk);
        memset(dv + (size_t)i * a->ld, 0, sizeof(float) * (size_t)a->dv);
    }
    for (int i = a->start; i < a->L; i++) {
        const float *qi = a->q + (size_t)i * a->ld, *doi = d_o + (size_t)i * ld_o;
        float *dqi = dq + (size_t)i * a->ld;
        for (int j = a->start; j <= i; j++) {
            int bucket;
            double s = hstu_score(a, i, j, &bucket);
            double sig = 1.0 / (1.0 + exp(-s));
            double w = s * sig * inv_n;
            const float *kj = a->k + (size_t)j * a->ld, *vj = a->v + (size_t)j * a->ld;
            double dw = 0.0; /* dLoss/dA[i,j] = dO_i · v_j */
            for (int c = 0; c < a->dv; c++) dw += (double)doi[c] * vj[c];
            double ds = dw * sig * (1.0 + s * (1.0 - sig)) * inv_n;
            float *dkj = dk + (size_t)j * a->ld, *dvj = dv + (size_t)j * a->ld;
            for (int c = 0; c < a->dv; c++) dvj[c] += (float)(w * doi[c]);
            for (int c = 0; c < a->dqk; c++) {
                dqi[c] += (float)(ds * kj[c]);
                dkj[c] += (float)(ds * qi[c]);
            }
            d_rab_pos[j - i + a->N - 1] += (float)ds;
            if (a->rab_time) d_rab_time[bucket] += (float)ds;
        }
    }
}
