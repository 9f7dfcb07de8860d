/*
 * Row-wise and elementwise kernels, AVX2 + FMA: layer norm fused with the
 * residual add (forward and backward), the Adam/AdamW update, the dot
 * product. Remainders use vmaskmov loads/stores (masked-off lanes read as 0
 * and are never touched), so any size works with no scalar tail.
 */
#include "kernels_isa.h"

#include <immintrin.h>
#include <math.h>

#define W 8

/* All-ones in lanes < n. */
static inline __m256i tail_mask(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

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
            __m256i m = tail_mask(d - c);
            __m256 h = _mm256_maskload_ps(xi + c, m);
            if (ri) h = _mm256_add_ps(h, _mm256_maskload_ps(ri + c, m));
            if ((c / W) & 1) s1 = _mm256_add_ps(s1, h);
            else s0 = _mm256_add_ps(s0, h);
        }
        const float mu = hsum8(_mm256_add_ps(s0, s1)) / (float)d;
        const __m256 muv = _mm256_set1_ps(mu);
        /* pass 2: variance around the mean (two-pass, no cancellation) */
        __m256 v0 = _mm256_setzero_ps();
        for (int c = 0; c < d; c += W) {
            __m256i m = tail_mask(d - c);
            __m256 h = _mm256_maskload_ps(xi + c, m);
            if (ri) h = _mm256_add_ps(h, _mm256_maskload_ps(ri + c, m));
            __m256 t = _mm256_and_ps(_mm256_castsi256_ps(m), _mm256_sub_ps(h, muv));
            v0 = _mm256_fmadd_ps(t, t, v0);
        }
        const float var = hsum8(v0) / (float)d;
        const float rs = 1.0f / sqrtf(var + eps);
        mean[i] = mu;
        rstd[i] = rs;
        const __m256 rsv = _mm256_set1_ps(rs);
        /* pass 3: normalise and apply the affine map */
        for (int c = 0; c < d; c += W) {
            __m256i m = tail_mask(d - c);
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
            __m256i m = tail_mask(d - c);
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
        const __m256 mg = _mm256_set1_ps(hsum8(sg) / (float)d);
        const __m256 mgh = _mm256_set1_ps(hsum8(sgh) / (float)d);
        /* pass 2: dx = rstd * (g - mean(g) - h * mean(g h)) */
        for (int c = 0; c < d; c += W) {
            __m256i m = tail_mask(d - c);
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

/* Plain mul/add in the reference's order (no FMA): the update then matches
 * rs_adam_ref bit for bit, and it is memory bound anyway. */
void rs_adam_avx2(size_t n, float *p, const float *g, float *m, float *v, float lr, float b1,
                  float b2, float eps, float wd, float bc1, float bc2)
{
    const __m256 vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2);
    const __m256 ob1 = _mm256_set1_ps(1.0f - b1), ob2 = _mm256_set1_ps(1.0f - b2);
    const __m256 vlr = _mm256_set1_ps(lr), veps = _mm256_set1_ps(eps), vwd = _mm256_set1_ps(wd);
    const __m256 vbc1 = _mm256_set1_ps(bc1), vbc2 = _mm256_set1_ps(bc2);
    for (size_t i = 0; i < n; i += W) {
        __m256i k = tail_mask(n - i >= W ? W : (int)(n - i));
        __m256 gi = _mm256_maskload_ps(g + i, k);
        __m256 mi = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_maskload_ps(m + i, k)),
                                  _mm256_mul_ps(ob1, gi));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_maskload_ps(v + i, k)),
                                  _mm256_mul_ps(_mm256_mul_ps(ob2, gi), gi));
        __m256 pi = _mm256_maskload_ps(p + i, k);
        __m256 mh = _mm256_div_ps(mi, vbc1), vh = _mm256_div_ps(vi, vbc2);
        __m256 step = _mm256_add_ps(_mm256_div_ps(mh, _mm256_add_ps(_mm256_sqrt_ps(vh), veps)),
                                    _mm256_mul_ps(vwd, pi));
        _mm256_maskstore_ps(m + i, k, mi);
        _mm256_maskstore_ps(v + i, k, vi);
        _mm256_maskstore_ps(p + i, k, _mm256_sub_ps(pi, _mm256_mul_ps(vlr, step)));
    }
}

float rs_dot_avx2(size_t n, const float *a, const float *b)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + W), _mm256_loadu_ps(b + i + W), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 2 * W), _mm256_loadu_ps(b + i + 2 * W), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 3 * W), _mm256_loadu_ps(b + i + 3 * W), s3);
    }
    for (; i < n; i += W) {
        __m256i k = tail_mask(n - i >= W ? W : (int)(n - i));
        s0 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, k), _mm256_maskload_ps(b + i, k), s0);
    }
    return hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}
