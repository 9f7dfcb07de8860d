/* Layer norm fused with the residual add, forward and backward, AVX2 + FMA.
 * Remainders use vmaskmov loads/stores (masked-off lanes read as 0
 * and are never touched), so any size works with no scalar tail. */
#include "kernels_isa.h"
#include "simd_avx2.h"

#include <immintrin.h>
#include <math.h>

#define W 8

void rs_layernorm_fwd_avx2(int n, int d, const float *x, const float *r, const float *gamma,
                           const float *beta, float eps, float *y, float *mean, float *rstd)
{
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d, *ri = r ? r + (size_t)i * d : NULL;
        float *yi = y + (size_t)i * d;
        /* pass 1: sum of h = x + r. Each pass recomputes h from x and r (in
         * L1): re-reading a masked store of h would defeat store forwarding. */
        __m256 s0 = _mm256_setzero_ps(), s1 = s0;
        for (int c = 0; c < d; c += W) {
            __m256i m = rs_tail8(d - c);
            __m256 h = _mm256_maskload_ps(xi + c, m);
            if (ri) h = _mm256_add_ps(h, _mm256_maskload_ps(ri + c, m));
            if ((c / W) & 1) s1 = _mm256_add_ps(s1, h);
            else s0 = _mm256_add_ps(s0, h);
        }
        const float mu = rs_hsum8(_mm256_add_ps(s0, s1)) / (float)d;
        const __m256 muv = _mm256_set1_ps(mu);
        /* pass 2: variance around the mean (two-pass, no cancellation) */
        __m256 v0 = _mm256_setzero_ps();
        for (int c = 0; c < d; c += W) {
            __m256i m = rs_tail8(d - c);
            __m256 h = _mm256_maskload_ps(xi + c, m);
            if (ri) h = _mm256_add_ps(h, _mm256_maskload_ps(ri + c, m));
            __m256 t = _mm256_and_ps(_mm256_castsi256_ps(m), _mm256_sub_ps(h, muv));
            v0 = _mm256_fmadd_ps(t, t, v0);
        }
        const float var = rs_hsum8(v0) / (float)d;
        const float rs = 1.0f / sqrtf(var + eps);
        mean[i] = mu;
        rstd[i] = rs;
        const __m256 rsv = _mm256_set1_ps(rs);
        /* pass 3: normalise and apply the affine map */
        for (int c = 0; c < d; c += W) {
            __m256i m = rs_tail8(d - c);
            __m256 h = _mm256_maskload_ps(xi + c, m);
            if (ri) h = _mm256_add_ps(h, _mm256_maskload_ps(ri + c, m));
            h = _mm256_mul_ps(_mm256_sub_ps(h, muv), rsv);
            if (gamma) h = _mm256_mul_ps(h, _mm256_maskload_ps(gamma + c, m));
            if (beta) h = _mm256_add_ps(h, _mm256_maskload_ps(beta + c, m));
            _mm256_maskstore_ps(yi + c, m, h);
        }
    }
}

void rs_layernorm_bwd_avx2(int n, int d, const float *x, const float *r, const float *gamma,
                           const float *mean, const float *rstd, const float *dy, float *dx,
                           float *dgamma, float *dbeta)
{
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d, *ri = r ? r + (size_t)i * d : NULL;
        const float *dyi = dy + (size_t)i * d;
        float *dxi = dx + (size_t)i * d;
        const __m256 muv = _mm256_set1_ps(mean[i]), rsv = _mm256_set1_ps(rstd[i]);
        __m256 sg = _mm256_setzero_ps(), sgh = sg;
        /* pass 1: the two row sums; gamma/beta gradients accumulate */
        for (int c = 0; c < d; c += W) {
            __m256i m = rs_tail8(d - c);
            __m256 h = _mm256_maskload_ps(xi + c, m);
            if (ri) h = _mm256_add_ps(h, _mm256_maskload_ps(ri + c, m));
            h = _mm256_and_ps(_mm256_castsi256_ps(m), _mm256_mul_ps(_mm256_sub_ps(h, muv), rsv));
            __m256 e = _mm256_maskload_ps(dyi + c, m);
            __m256 g = gamma ? _mm256_mul_ps(e, _mm256_maskload_ps(gamma + c, m)) : e;
            sg = _mm256_add_ps(sg, g);
            sgh = _mm256_fmadd_ps(g, h, sgh);
            if (dgamma)
                _mm256_maskstore_ps(dgamma + c, m,
                                    _mm256_fmadd_ps(e, h, _mm256_maskload_ps(dgamma + c, m)));
            if (dbeta)
                _mm256_maskstore_ps(dbeta + c, m, _mm256_add_ps(e, _mm256_maskload_ps(dbeta + c, m)));
        }
        const __m256 mg = _mm256_set1_ps(rs_hsum8(sg) / (float)d);
        const __m256 mgh = _mm256_set1_ps(rs_hsum8(sgh) / (float)d);
        /* pass 2: dx = rstd * (g - mean(g) - h * mean(g h)) */
        for (int c = 0; c < d; c += W) {
            __m256i m = rs_tail8(d - c);
            __m256 h = _mm256_maskload_ps(xi + c, m);
            if (ri) h = _mm256_add_ps(h, _mm256_maskload_ps(ri + c, m));
            h = _mm256_mul_ps(_mm256_sub_ps(h, muv), rsv);
            __m256 g = _mm256_maskload_ps(dyi + c, m);
            if (gamma) g = _mm256_mul_ps(g, _mm256_maskload_ps(gamma + c, m));
            __m256 t = _mm256_fnmadd_ps(h, mgh, _mm256_sub_ps(g, mg));
            _mm256_maskstore_ps(dxi + c, m, _mm256_mul_ps(t, rsv));
        }
    }
}
