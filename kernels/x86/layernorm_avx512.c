/* Layer norm fused with the residual add, forward and backward, AVX-512.
 * Remainders use opmask loads/stores, so any size works with no
 * scalar tail. */
#include "kernels_isa.h"
#include "simd_avx512.h"

#include <immintrin.h>
#include <math.h>

#define W 16

void rs_layernorm_fwd_avx512(int n, int d, const float *x, const float *r, const float *gamma,
                             const float *beta, float eps, float *y, float *mean, float *rstd)
{
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d, *ri = r ? r + (size_t)i * d : NULL;
        float *yi = y + (size_t)i * d;
        /* pass 1: sum of h = x + r. Each pass recomputes h from x and r (in
         * L1): re-reading a masked store of h would defeat store forwarding. */
        __m512 s0 = _mm512_setzero_ps(), s1 = s0;
        for (int c = 0; c < d; c += W) {
            __mmask16 m = rs_mask16(d - c);
            __m512 h = _mm512_maskz_loadu_ps(m, xi + c);
            if (ri) h = _mm512_add_ps(h, _mm512_maskz_loadu_ps(m, ri + c));
            if ((c / W) & 1) s1 = _mm512_add_ps(s1, h);
            else s0 = _mm512_add_ps(s0, h);
        }
        const float mu = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / (float)d;
        const __m512 muv = _mm512_set1_ps(mu);
        /* pass 2: variance around the mean (two-pass, no cancellation) */
        __m512 v0 = _mm512_setzero_ps();
        for (int c = 0; c < d; c += W) {
            __mmask16 m = rs_mask16(d - c);
            __m512 h = _mm512_maskz_loadu_ps(m, xi + c);
            if (ri) h = _mm512_add_ps(h, _mm512_maskz_loadu_ps(m, ri + c));
            __m512 t = _mm512_maskz_sub_ps(m, h, muv);
            v0 = _mm512_fmadd_ps(t, t, v0);
        }
        const float var = _mm512_reduce_add_ps(v0) / (float)d;
        const float rs = 1.0f / sqrtf(var + eps);
        mean[i] = mu;
        rstd[i] = rs;
        const __m512 rsv = _mm512_set1_ps(rs);
        /* pass 3: normalise and apply the affine map */
        for (int c = 0; c < d; c += W) {
            __mmask16 m = rs_mask16(d - c);
            __m512 h = _mm512_maskz_loadu_ps(m, xi + c);
            if (ri) h = _mm512_add_ps(h, _mm512_maskz_loadu_ps(m, ri + c));
            h = _mm512_mul_ps(_mm512_sub_ps(h, muv), rsv);
            if (gamma) h = _mm512_mul_ps(h, _mm512_maskz_loadu_ps(m, gamma + c));
            if (beta) h = _mm512_add_ps(h, _mm512_maskz_loadu_ps(m, beta + c));
            _mm512_mask_storeu_ps(yi + c, m, h);
        }
    }
}

void rs_layernorm_bwd_avx512(int n, int d, const float *x, const float *r, const float *gamma,
                             const float *mean, const float *rstd, const float *dy, float *dx,
                             float *dgamma, float *dbeta)
{
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d, *ri = r ? r + (size_t)i * d : NULL;
        const float *dyi = dy + (size_t)i * d;
        float *dxi = dx + (size_t)i * d;
        const __m512 muv = _mm512_set1_ps(mean[i]), rsv = _mm512_set1_ps(rstd[i]);
        __m512 sg = _mm512_setzero_ps(), sgh = sg;
        /* pass 1: the two row sums; gamma/beta gradients accumulate */
        for (int c = 0; c < d; c += W) {
            __mmask16 m = rs_mask16(d - c);
            __m512 h = _mm512_maskz_loadu_ps(m, xi + c);
            if (ri) h = _mm512_add_ps(h, _mm512_maskz_loadu_ps(m, ri + c));
            h = _mm512_maskz_mul_ps(m, _mm512_sub_ps(h, muv), rsv);
            __m512 e = _mm512_maskz_loadu_ps(m, dyi + c);
            __m512 g = gamma ? _mm512_mul_ps(e, _mm512_maskz_loadu_ps(m, gamma + c)) : e;
            sg = _mm512_add_ps(sg, g);
            sgh = _mm512_fmadd_ps(g, h, sgh);
            if (dgamma)
                _mm512_mask_storeu_ps(dgamma + c, m,
                                      _mm512_fmadd_ps(e, h, _mm512_maskz_loadu_ps(m, dgamma + c)));
            if (dbeta)
                _mm512_mask_storeu_ps(dbeta + c, m,
                                      _mm512_add_ps(e, _mm512_maskz_loadu_ps(m, dbeta + c)));
        }
        const __m512 mg = _mm512_set1_ps(_mm512_reduce_add_ps(sg) / (float)d);
        const __m512 mgh = _mm512_set1_ps(_mm512_reduce_add_ps(sgh) / (float)d);
        /* pass 2: dx = rstd * (g - mean(g) - h * mean(g h)) */
        for (int c = 0; c < d; c += W) {
            __mmask16 m = rs_mask16(d - c);
            __m512 h = _mm512_maskz_loadu_ps(m, xi + c);
            if (ri) h = _mm512_add_ps(h, _mm512_maskz_loadu_ps(m, ri + c));
            h = _mm512_mul_ps(_mm512_sub_ps(h, muv), rsv);
            __m512 g = _mm512_maskz_loadu_ps(m, dyi + c);
            if (gamma) g = _mm512_mul_ps(g, _mm512_maskz_loadu_ps(m, gamma + c));
            __m512 t = _mm512_fnmadd_ps(h, mgh, _mm512_sub_ps(g, mg));
            _mm512_mask_storeu_ps(dxi + c, m, _mm512_mul_ps(t, rsv));
        }
    }
}
