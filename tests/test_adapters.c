/* Adapters (lib/adapters): the LoRA path, the bank mix and the gate against
 * central finite differences of double-precision references written here;
 * the adapter store; merging. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/internal.h"
#include "adapters/lora.h"
#include "adapters/store.h"
#include "adapters/merge.h"
#include "adapters/adapter.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FD_H 1e-5

static double *to_double(const float *x, size_t n)
{
    double *y = malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}

static void expect_close(const char *what, const float *a, const double *num, size_t n, double rtol)
{
    double maxn = 0.0, maxd = 0.0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(num[i]) > maxn) maxn = fabs(num[i]);
        double e = fabs((double)a[i] - num[i]);
        if (!(e <= maxd)) { maxd = e; worst = i; }
    }
    double rel = maxd / (maxn > 1e-12 ? maxn : 1e-12);
    if (!(rel <= rtol))
        fail_msg("%s: relative error %.3g > %.3g (worst at %zu: analytic %.9g, numeric %.9g)", what,
                 rel, rtol, worst, (double)a[worst], num[worst]);
}

typedef double (*loss_fn)(void *state);
static void numeric_grad(loss_fn f, void *state, double *p, size_t n, double *g)
{
    for (size_t i = 0; i < n; i++) {
        double s = p[i];
        p[i] = s + FD_H;
        double lp = f(state);
        p[i] = s - FD_H;
        double lm = f(state);
        p[i] = s;
        g[i] = (lp - lm) / (2 * FD_H);
    }
}

/* ------------------------------------------------------------ LoRA path */

#define NSEG 3
typedef struct lora_state {
    int n, in, out, r, ldx, ldy;
    double scale;
    int row0[NSEG], len[NSEG], has[NSEG];
    double *x, *A[NSEG], *B[NSEG], *R;
} lora_state;

/* L = Σ R ⊙ (scale · B_s A_s x) over the adapted rows (W x is constant). */
static double lora_loss(void *sv)
{
    lora_state *s = sv;
    double L = 0.0;
    for (int g = 0; g < NSEG; g++) {
        if (!s->has[g]) continue;
        for (int i = s->row0[g]; i < s->row0[g] + s->len[g]; i++) {
            double t[16];
            for (int k = 0; k < s->r; k++) {
                t[k] = 0.0;
                for (int c = 0; c < s->in; c++)
                    t[k] += s->A[g][(size_t)k * s->in + c] * s->x[(size_t)i * s->ldx + c];
            }
            for (int o = 0; o < s->out; o++) {
                double y = 0.0;
                for (int k = 0; k < s->r; k++) y += s->B[g][(size_t)o * s->r + k] * t[k];
                L += s->scale * y * s->R[(size_t)i * s->out + o];
            }
        }
    }
    return L;
}

static void run_lora(int nseg, int threads)
{
    recsys_ctx *ctx = new_ctx(threads);
    rs_rng rng;
    rs_rng_seed(&rng, 7 + (uint64_t)nseg);
    lora_state s = {.in = 7, .out = 5, .r = 3, .ldx = 9, .ldy = 8, .scale = 2.0 / 3};
    int lens3[NSEG] = {4, 2, 71}, has3[NSEG] = {1, 0, 1};
    int n = 0;
    for (int g = 0; g < NSEG; g++) {
        s.row0[g] = n;
        s.len[g] = nseg == 1 ? (g == 0 ? 77 : 0) : lens3[g];
        s.has[g] = nseg == 1 ? (g == 0) : has3[g];
        n += s.len[g];
    }
    s.n = n;
    float *x = alloc_f((size_t)n * s.ldx), *y = alloc_f((size_t)n * s.ldy);
    float *R = malloc(sizeof(float) * (size_t)n * s.out);
    fill_sym(&rng, x, (size_t)n * s.ldx, 1.0);
    fill_sym(&rng, y, (size_t)n * s.ldy, 1.0);
    fill_sym(&rng, R, (size_t)n * s.out, 1.0);
    float *y0 = malloc(sizeof(float) * (size_t)n * s.ldy);
    memcpy(y0, y, sizeof(float) * (size_t)n * s.ldy);
    float *A[NSEG], *B[NSEG], *dA[NSEG], *dB[NSEG];
    rs_lora_seg seg[NSEG];
    for (int g = 0; g < NSEG; g++) {
        A[g] = malloc(sizeof(float) * s.r * s.in);
        B[g] = malloc(sizeof(float) * s.out * s.r);
        dA[g] = calloc((size_t)s.r * s.in, sizeof(float));
        dB[g] = calloc((size_t)s.out * s.r, sizeof(float));
        fill_sym(&rng, A[g], (size_t)s.r * s.in, 1.0);
        fill_sym(&rng, B[g], (size_t)s.out * s.r, 1.0);
        s.A[g] = to_double(A[g], (size_t)s.r * s.in);
        s.B[g] = to_double(B[g], (size_t)s.out * s.r);
        seg[g] = (rs_lora_seg){s.row0[g], s.len[g], s.has[g] ? A[g] : NULL, B[g], dA[g], dB[g]};
    }
    s.x = to_double(x, (size_t)n * s.ldx);
    s.R = to_double(R, (size_t)n * s.out);
    float *t = malloc(sizeof(float) * (size_t)n * s.r), *u = malloc(sizeof(float) * (size_t)n * s.r);
    int ns = nseg == 1 ? 1 : NSEG;
    /* y: the first `out` of ldy columns; the rest must be untouched */
    rs_lora_fwd(ctx, ns, seg, s.in, s.out, s.r, (float)s.scale, x, s.ldx, t, y, s.ldy);
    assert_true(guard_ok(y, (size_t)n * s.ldy));
    for (int i = 0; i < n; i++)
        for (int c = s.out; c < s.ldy; c++) assert_true(y[(size_t)i * s.ldy + c] == y0[(size_t)i * s.ldy + c]);
    /* forward value: Σ R ⊙ (y - y0) == the reference loss */
    double Ly = 0.0;
    for (int i = 0; i < n; i++)
        for (int o = 0; o < s.out; o++)
            Ly += ((double)y[(size_t)i * s.ldy + o] - y0[(size_t)i * s.ldy + o]) * R[(size_t)i * s.out + o];
    assert_true(fabs(Ly - lora_loss(&s)) < 1e-4 * (1 + fabs(Ly)));
    /* rows without an adapter: y unchanged */
    for (int g = 0; g < NSEG; g++)
        if (!s.has[g])
            for (int i = s.row0[g]; i < s.row0[g] + s.len[g]; i++)
                for (int o = 0; o < s.out; o++)
                    assert_true(y[(size_t)i * s.ldy + o] == y0[(size_t)i * s.ldy + o]);

    float *dx = alloc_f((size_t)n * s.ldx);
    for (size_t i = 0; i < (size_t)n * s.ldx; i++) dx[i] = 1.0f;
    rs_lora_bwd(ctx, ns, seg, s.in, s.out, s.r, (float)s.scale, x, s.ldx, t, R, s.out, u, dx, s.ldx);
    assert_true(guard_ok(dx, (size_t)n * s.ldx));
    double *g = malloc(sizeof(double) * (size_t)n * s.ldx);
    for (int q = 0; q < NSEG; q++) {
        if (!s.has[q]) continue;
        numeric_grad(lora_loss, &s, s.A[q], (size_t)s.r * s.in, g);
        expect_close("lora dA", dA[q], g, (size_t)s.r * s.in, 1e-5);
        numeric_grad(lora_loss, &s, s.B[q], (size_t)s.out * s.r, g);
        expect_close("lora dB", dB[q], g, (size_t)s.out * s.r, 1e-5);
    }
    numeric_grad(lora_loss, &s, s.x, (size_t)n * s.ldx, g);
    float *dxa = malloc(sizeof(float) * (size_t)n * s.in);
    double *gx = malloc(sizeof(double) * (size_t)n * s.in);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < s.in; c++) {
            dxa[i * s.in + c] = dx[(size_t)i * s.ldx + c] - 1.0f;
            gx[i * s.in + c] = g[(size_t)i * s.ldx + c];
        }
    expect_close("lora dx", dxa, gx, (size_t)n * s.in, 1e-5);
    for (int i = 0; i < n; i++)
        for (int c = s.in; c < s.ldx; c++) assert_true(dx[(size_t)i * s.ldx + c] == 1.0f);

    for (int q = 0; q < NSEG; q++) {
        free(A[q]); free(B[q]); free(dA[q]); free(dB[q]); free(s.A[q]); free(s.B[q]);
    }
    free(x); free(y); free(y0); free(R); free(t); free(u); free(dx); free(g); free(dxa); free(gx);
    free(s.x); free(s.R);
    recsys_ctx_free(ctx);
}

static void test_lora_grad(void **state)
{
    (void)state;
    run_lora(1, 1);
    run_lora(1, 2);
    run_lora(3, 1);
    run_lora(3, 2);
}

/* ------------------------------------------------------------- bank mix */

typedef struct mix_state {
    int U, K, P;
    double *alpha, *bank, *R;
} mix_state;

static double mix_loss(void *sv)
{
    mix_state *s = sv;
    double L = 0.0;
    for (int u = 0; u < s->U; u++)
        for (int p = 0; p < s->P; p++) {
            double v = 0.0;
            for (int k = 0; k < s->K; k++) v += s->alpha[u * s->K + k] * s->bank[(size_t)k * s->P + p];
            L += v * s->R[(size_t)u * s->P + p];
        }
    return L;
}

static void test_bank_mix_grad(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(2);
    rs_rng rng;
    rs_rng_seed(&rng, 3);
    int U = 5, K = 4, P = 37;
    float *alpha = malloc(sizeof(float) * U * K), *bank = malloc(sizeof(float) * K * P);
    float *R = malloc(sizeof(float) * U * P), *out = malloc(sizeof(float) * U * P);
    float *dbank = calloc((size_t)K * P, sizeof(float)), *dalpha = malloc(sizeof(float) * U * K);
    fill_sym(&rng, alpha, (size_t)U * K, 1.0);
    fill_sym(&rng, bank, (size_t)K * P, 1.0);
    fill_sym(&rng, R, (size_t)U * P, 1.0);
    mix_state s = {U, K, P, to_double(alpha, (size_t)U * K), to_double(bank, (size_t)K * P),
                   to_double(R, (size_t)U * P)};
    rs_bank_mix(ctx, U, K, (size_t)P, alpha, bank, out);
    double L = 0.0;
    for (int i = 0; i < U * P; i++) L += (double)out[i] * R[i];
    assert_true(fabs(L - mix_loss(&s)) < 1e-4);
    rs_bank_mix_bwd(ctx, U, K, (size_t)P, alpha, bank, R, dbank, dalpha);
    double *g = malloc(sizeof(double) * K * P);
    numeric_grad(mix_loss, &s, s.bank, (size_t)K * P, g);
    expect_close("mix dbank", dbank, g, (size_t)K * P, 1e-5);
    numeric_grad(mix_loss, &s, s.alpha, (size_t)U * K, g);
    expect_close("mix dalpha", dalpha, g, (size_t)U * K, 1e-5);
    free(alpha); free(bank); free(R); free(out); free(dbank); free(dalpha); free(g);
    free(s.alpha); free(s.bank); free(s.R);
    recsys_ctx_free(ctx);
}

/* ------------------------------------------------------------------ gate */

typedef struct gate_state {
    rs_gate_shape g;
    int U, ldh;
    double *h, *p, *R;
} gate_state;

/* The gate in double: softmax(W2·ReLU(W1·LN(h)+b1)+b2)/tau), no dropout. */
static void gate_ref(const gate_state *s, int u, double *alpha)
{
    int d = s->g.d, H = s->g.hidden, K = s->g.K;
    const double *h = s->h + (size_t)u * s->ldh, *P = s->p;
    const double *lg = P, *lb = P + d, *W1 = P + 2 * d, *b1 = W1 + H * d, *W2 = b1 + H,
                 *b2 = W2 + K * H;
    double m = 0.0, v = 0.0, xn[64], z[64];
    for (int i = 0; i < d; i++) m += h[i];
    m /= d;
    for (int i = 0; i < d; i++) v += (h[i] - m) * (h[i] - m);
    v /= d;
    for (int i = 0; i < d; i++) xn[i] = (h[i] - m) / sqrt(v + 1e-5) * lg[i] + lb[i];
    for (int j = 0; j < H; j++) {
        double a = b1[j];
        for (int i = 0; i < d; i++) a += W1[j * d + i] * xn[i];
        z[j] = a > 0 ? a : 0;
    }
    double mx = -1e300;
    for (int k = 0; k < K; k++) {
        double a = b2[k];
        for (int j = 0; j < H; j++) a += W2[k * H + j] * z[j];
        alpha[k] = a / s->g.tau;
        if (alpha[k] > mx) mx = alpha[k];
    }
    double sum = 0.0;
    for (int k = 0; k < K; k++) sum += (alpha[k] = exp(alpha[k] - mx));
    for (int k = 0; k < K; k++) alpha[k] /= sum;
}

static double gate_loss(void *sv)
{
    gate_state *s = sv;
    double L = 0.0, a[64];
    for (int u = 0; u < s->U; u++) {
        gate_ref(s, u, a);
        for (int k = 0; k < s->g.K; k++) L += a[k] * s->R[u * s->g.K + k];
    }
    return L;
}

static void test_gate_grad(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(2);
    rs_rng rng;
    rs_rng_seed(&rng, 11);
    rs_gate_shape g = {.d = 6, .hidden = 5, .K = 4, .tau = 0.7f, .dropout = 0.0f};
    int U = 70, ldh = 8; /* U > RS_NN_CHUNK_ROWS: the bias/gain sums reduce over chunks */
    size_t np = rs_gate_n_params(&g);
    assert_int_equal(np, (size_t)(2 * 6 + 5 * 6 + 5 + 4 * 5 + 4));
    float *P = malloc(sizeof(float) * np), *G = calloc(np, sizeof(float));
    rs_gate_init(&g, P, &rng);
    fill_sym(&rng, P + 2 * g.d + g.hidden * g.d, (size_t)g.hidden, 0.3); /* b1 */
    fill_sym(&rng, P, (size_t)2 * g.d, 1.0);                             /* LN gain/bias */
    for (int i = 0; i < g.d; i++) P[i] += 1.5f;
    float *h = malloc(sizeof(float) * U * ldh), *R = malloc(sizeof(float) * U * g.K);
    fill_sym(&rng, h, (size_t)U * ldh, 2.0);
    fill_sym(&rng, R, (size_t)U * g.K, 1.0);
    gate_state s = {g, U, ldh, to_double(h, (size_t)U * ldh), to_double(P, np),
                    to_double(R, (size_t)U * g.K)};
    rs_gate_ws w;
    assert_int_equal(rs_gate_ws_init(&w, &g, U), RECSYS_OK);
    float *alpha = malloc(sizeof(float) * U * g.K);
    rs_gate_fwd(ctx, &g, P, &w, U, h, ldh, 0, 1, NULL, alpha);
    double a[64];
    for (int u = 0; u < U; u++) {
        gate_ref(&s, u, a);
        double sum = 0;
        for (int k = 0; k < g.K; k++) {
            assert_true(fabs(alpha[u * g.K + k] - a[k]) < 1e-5);
            sum += alpha[u * g.K + k];
        }
        assert_true(fabs(sum - 1.0) < 1e-5);
    }
    rs_gate_bwd(ctx, &g, P, &w, h, ldh, 0, R, G);
    double *num = malloc(sizeof(double) * np);
    numeric_grad(gate_loss, &s, s.p, np, num);
    expect_close("gate grads", G, num, np, 1e-4);

    /* dropout on: alphas still sum to one and differ from the eval pass */
    g.dropout = 0.5f;
    rs_gate_fwd(ctx, &g, P, &w, U, h, ldh, 1, 99, NULL, alpha);
    for (int u = 0; u < U; u++) {
        double sum = 0;
        for (int k = 0; k < g.K; k++) sum += alpha[u * g.K + k];
        assert_true(fabs(sum - 1.0) < 1e-5);
    }
    rs_gate_ws_release(&w);
    free(P); free(G); free(h); free(R); free(alpha); free(num);
    free(s.h); free(s.p); free(s.R);
    recsys_ctx_free(ctx);
}


/* ----------------------------------------------------------------- store */

#define SF 37 /* floats per record */

static void vec_for(uint64_t user, int version, float *v)
{
    for (int i = 0; i < SF; i++) v[i] = (float)(user * 1000 + (uint64_t)version * 100 + (uint64_t)i) * 0.25f - 3.0f;
}

static void tmp_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "test_adapters_%s_%ld.rsa", name, (long)getpid());
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static void poke(const char *path, long off, uint8_t x)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, off, SEEK_SET);
    int c = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(c ^ x, f);
    fclose(f);
}

static void test_store_roundtrip(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(1);
    char path[256];
    tmp_path(path, sizeof path, "rt");
    float v[SF], w[SF];
    for (uint32_t dtype = 0; dtype <= RS_STORE_BF16; dtype++) {
        assert_int_equal(rs_store_create(ctx, path, "kind=user\nrank=2\n", 50, SF, dtype), RECSYS_OK);
        rs_store *s = NULL;
        assert_int_equal(rs_store_open(ctx, path, 1, 1 << 20, &s), RECSYS_OK);
        assert_int_equal(rs_store_info(s)->n_records, 0);
        assert_int_equal(rs_store_get(ctx, s, 3, w), RECSYS_E_NOT_FOUND);
        assert_int_equal(rs_store_get(ctx, s, 50, w), RECSYS_E_INVALID);
        for (uint64_t u = 0; u < 50; u += 7) {
            vec_for(u, 0, v);
            assert_int_equal(rs_store_put(ctx, s, u, v, 0), RECSYS_OK);
        }
        vec_for(14, 1, v); /* replace one */
        assert_int_equal(rs_store_put(ctx, s, 14, v, 1), RECSYS_OK);
        rs_store_close(s);
        /* reopen read-only: every adapter as written (bf16: rounded) */
        assert_int_equal(rs_store_open(ctx, path, 0, 0, &s), RECSYS_OK);
        assert_int_equal(strncmp(rs_store_info(s)->conf, "kind=user\n", 10), 0);
        for (uint64_t u = 0; u < 50; u++) {
            recsys_status rc = rs_store_get(ctx, s, u, w);
            if (u % 7) {
                assert_int_equal(rc, RECSYS_E_NOT_FOUND);
                continue;
            }
            assert_int_equal(rc, RECSYS_OK);
            vec_for(u, u == 14, v);
            for (int i = 0; i < SF; i++)
                assert_true(dtype == RS_STORE_F32 ? w[i] == v[i] : w[i] == bf16_round(v[i]));
        }
        rs_store_close(s);
    }
    /* the same bytes from memory */
    FILE *f = fopen(path, "rb");
    long n = file_size(path);
    uint8_t *buf = malloc((size_t)n);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    rs_store *m = NULL;
    assert_int_equal(rs_store_open_memory(ctx, buf, (size_t)n, 4096, &m), RECSYS_OK);
    assert_int_equal(rs_store_get(ctx, m, 21, w), RECSYS_OK);
    vec_for(21, 0, v);
    assert_true(w[5] == bf16_round(v[5]));
    assert_int_equal(rs_store_put(ctx, m, 21, v, 0), RECSYS_E_STATE);
    rs_store_close(m);
    /* parse never crashes on damaged images: every prefix, and byte flips */
    rs_store_view view;
    for (long k = 0; k < n; k += 13) {
        recsys_status rc = rs_store_parse(ctx, buf, (size_t)k, &view);
        if (rc == RECSYS_OK)
            for (uint64_t u = 0; u < view.n_users; u++) (void)rs_store_view_read(ctx, &view, u, w, NULL);
        else
            assert_int_equal(rc, RECSYS_E_FORMAT);
    }
    for (long k = 0; k < n; k += 5) {
        buf[k] ^= 0x21;
        if (rs_store_parse(ctx, buf, (size_t)n, &view) == RECSYS_OK)
            for (uint64_t u = 0; u < view.n_users; u++) {
                recsys_status rc = rs_store_view_read(ctx, &view, u, w, NULL);
                assert_true(rc == RECSYS_OK || rc == RECSYS_E_NOT_FOUND || rc == RECSYS_E_FORMAT);
            }
        buf[k] ^= 0x21;
    }
    free(buf);
    unlink(path);
    recsys_ctx_free(ctx);
}

static void test_store_damage(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(1);
    char path[256];
    tmp_path(path, sizeof path, "dmg");
    float v[SF], w[SF];
    rs_store *s = NULL;
    assert_int_equal(rs_store_create(ctx, path, "kind=user\n", 10, SF, RS_STORE_F32), RECSYS_OK);
    assert_int_equal(rs_store_open(ctx, path, 1, 0, &s), RECSYS_OK);
    for (uint64_t u = 0; u < 10; u++) {
        vec_for(u, 0, v);
        assert_int_equal(rs_store_put(ctx, s, u, v, 0), RECSYS_OK);
    }
    const rs_store_view *vi = rs_store_info(s);
    long data_off = (long)vi->data_off, rec = (long)vi->rec_bytes, conf_at = RS_STORE_HEADER;
    rs_store_close(s);
    long n = file_size(path);
    /* header, CONF and record corruption */
    poke(path, 20, 1);
    assert_int_equal(rs_store_open(ctx, path, 0, 0, &s), RECSYS_E_FORMAT);
    assert_non_null(strstr(recsys_ctx_errmsg(ctx), "header checksum"));
    poke(path, 20, 1);
    poke(path, conf_at + 2, 4);
    assert_int_equal(rs_store_open(ctx, path, 0, 0, &s), RECSYS_E_FORMAT);
    assert_non_null(strstr(recsys_ctx_errmsg(ctx), "CONF"));
    poke(path, conf_at + 2, 4);
    poke(path, data_off + 3 * rec + 40, 0x10); /* user 3's payload */
    assert_int_equal(rs_store_open(ctx, path, 0, 0, &s), RECSYS_OK);
    assert_int_equal(rs_store_get(ctx, s, 3, w), RECSYS_E_FORMAT);
    assert_non_null(strstr(recsys_ctx_errmsg(ctx), "corrupted"));
    assert_int_equal(rs_store_get(ctx, s, 4, w), RECSYS_OK);
    rs_store_close(s);
    poke(path, data_off + 3 * rec + 40, 0x10);
    /* truncation: inside the data -> the cut records are refused */
    assert_int_equal(truncate(path, n - rec / 2), 0);
    assert_int_equal(rs_store_open(ctx, path, 0, 0, &s), RECSYS_OK);
    assert_int_equal(rs_store_get(ctx, s, 9, w), RECSYS_E_FORMAT);
    assert_non_null(strstr(recsys_ctx_errmsg(ctx), "truncated"));
    assert_int_equal(rs_store_get(ctx, s, 8, w), RECSYS_OK);
    rs_store_close(s);
    /* ... inside the index or header -> open refuses */
    assert_int_equal(truncate(path, data_off - 8), 0);
    assert_int_equal(rs_store_open(ctx, path, 0, 0, &s), RECSYS_E_FORMAT);
    assert_int_equal(truncate(path, 30), 0);
    assert_int_equal(rs_store_open(ctx, path, 0, 0, &s), RECSYS_E_FORMAT);
    assert_int_equal(rs_store_open(ctx, "/nonexistent/x.rsa", 0, 0, &s), RECSYS_E_IO);
    unlink(path);
    recsys_ctx_free(ctx);
}

static void test_store_lru(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(1);
    char path[256];
    tmp_path(path, sizeof path, "lru");
    float v[SF], w[SF];
    rs_store *s = NULL;
    assert_int_equal(rs_store_create(ctx, path, "kind=user\n", 100, SF, RS_STORE_F32), RECSYS_OK);
    assert_int_equal(rs_store_open(ctx, path, 1, 0, &s), RECSYS_OK);
    for (uint64_t u = 0; u < 100; u++) {
        vec_for(u, 0, v);
        assert_int_equal(rs_store_put(ctx, s, u, v, 0), RECSYS_OK);
    }
    rs_store_close(s);
    rs_store_stats st;
    size_t limit = 5 * (sizeof(float) * SF + 64);
    assert_int_equal(rs_store_open(ctx, path, 1, limit, &s), RECSYS_OK);
    for (uint64_t u = 0; u < 100; u++) {
        assert_int_equal(rs_store_get(ctx, s, u, w), RECSYS_OK);
        rs_store_get_stats(s, &st);
        assert_true(st.cache_bytes <= limit);
    }
    rs_store_get_stats(s, &st);
    assert_true(st.cached >= 1 && st.cached <= 5);
    assert_int_equal(st.misses, 100);
    assert_true(st.evictions >= 95 - 5);
    /* the most recent is a hit, the oldest a miss */
    assert_int_equal(rs_store_get(ctx, s, 99, w), RECSYS_OK);
    rs_store_get_stats(s, &st);
    assert_int_equal(st.hits, 1);
    /* pins survive any amount of traffic; unpinned entries respect the bound */
    assert_int_equal(rs_store_pin(ctx, s, 7, 1), RECSYS_OK);
    assert_int_equal(rs_store_pin(ctx, s, 8, 1), RECSYS_OK);
    for (uint64_t u = 20; u < 90; u++) assert_int_equal(rs_store_get(ctx, s, u, w), RECSYS_OK);
    rs_store_get_stats(s, &st);
    assert_int_equal(st.pinned, 2);
    assert_true(st.cache_bytes <= limit);
    uint64_t h0 = st.hits;
    assert_int_equal(rs_store_get(ctx, s, 7, w), RECSYS_OK);
    assert_int_equal(rs_store_get(ctx, s, 8, w), RECSYS_OK);
    rs_store_get_stats(s, &st);
    assert_int_equal(st.hits, h0 + 2);
    vec_for(8, 0, v);
    assert_memory_equal(v, w, sizeof v);
    /* a put updates the cached copy */
    vec_for(7, 3, v);
    assert_int_equal(rs_store_put(ctx, s, 7, v, 0), RECSYS_OK);
    assert_int_equal(rs_store_get(ctx, s, 7, w), RECSYS_OK);
    assert_memory_equal(v, w, sizeof v);
    /* pinning more than fits: allowed; unpinning shrinks back under the bound */
    for (uint64_t u = 30; u < 40; u++) assert_int_equal(rs_store_pin(ctx, s, u, 1), RECSYS_OK);
    rs_store_get_stats(s, &st);
    assert_int_equal(st.pinned, 12);
    assert_true(st.cache_bytes > limit);
    for (uint64_t u = 30; u < 40; u++) assert_int_equal(rs_store_pin(ctx, s, u, 0), RECSYS_OK);
    rs_store_get_stats(s, &st);
    assert_true(st.cache_bytes <= limit);
    assert_int_equal(st.pinned, 2);
    rs_store_close(s);
    unlink(path);
    recsys_ctx_free(ctx);
}

static void test_store_interrupted_update(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(1);
    char path[256];
    tmp_path(path, sizeof path, "intr");
    float v[SF], w[SF], old[SF];
    rs_store *s = NULL;
    assert_int_equal(rs_store_create(ctx, path, "kind=user\n", 4, SF, RS_STORE_F32), RECSYS_OK);
    assert_int_equal(rs_store_open(ctx, path, 1, 1 << 16, &s), RECSYS_OK);
    vec_for(2, 0, old);
    assert_int_equal(rs_store_put(ctx, s, 2, old, 1), RECSYS_OK);
    for (int stop = 1; stop <= 2; stop++) {
        vec_for(2, stop, v);
        assert_int_equal(rs_store_put_interrupted(ctx, s, 2, v, stop), RECSYS_OK);
        rs_store_close(s); /* "crash" */
        assert_int_equal(rs_store_open(ctx, path, 1, 1 << 16, &s), RECSYS_OK);
        assert_int_equal(rs_store_get(ctx, s, 2, w), RECSYS_OK);
        assert_memory_equal(w, old, sizeof w);
    }
    /* the next update goes through, over the half-written tail */
    vec_for(2, 9, v);
    assert_int_equal(rs_store_put(ctx, s, 2, v, 1), RECSYS_OK);
    rs_store_close(s);
    assert_int_equal(rs_store_open(ctx, path, 0, 0, &s), RECSYS_OK);
    assert_int_equal(rs_store_get(ctx, s, 2, w), RECSYS_OK);
    assert_memory_equal(w, v, sizeof w);
    rs_store_close(s);
    unlink(path);
    recsys_ctx_free(ctx);
}

/* ----------------------------------------------------------------- merge */

static int cmp_desc_test(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void check_svd(int m, int n, uint64_t seed)
{
    rs_rng rng;
    rs_rng_seed(&rng, seed);
    int k = m < n ? m : n;
    double *a = malloc(sizeof(double) * m * n), *U = malloc(sizeof(double) * m * k);
    double *V = malloc(sizeof(double) * n * k), *s = malloc(sizeof(double) * k);
    for (int i = 0; i < m * n; i++) a[i] = urand(&rng);
    assert_true(rs_svd(m, n, a, U, s, V) > 0);
    for (int c = 1; c < k; c++) assert_true(s[c - 1] >= s[c]);
    double err = 0, mx = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double x = 0;
            for (int c = 0; c < k; c++) x += U[i * k + c] * s[c] * V[j * k + c];
            err = fmax(err, fabs(x - a[i * n + j]));
            mx = fmax(mx, fabs(a[i * n + j]));
        }
    assert_true(err < 1e-10 * mx);
    for (int c = 0; c < k; c++)
        for (int e = 0; e < k; e++) {
            double uu = 0, vv = 0;
            for (int i = 0; i < m; i++) uu += U[i * k + c] * U[i * k + e];
            for (int j = 0; j < n; j++) vv += V[j * k + c] * V[j * k + e];
            assert_true(fabs(uu - (c == e)) < 1e-10 && fabs(vv - (c == e)) < 1e-10);
        }
    free(a); free(U); free(V); free(s);
}

static void test_svd(void **state)
{
    (void)state;
    check_svd(40, 30, 1);
    check_svd(20, 50, 2);
    check_svd(64, 64, 3);
    check_svd(1, 7, 4);
}

/* scale · B · A as a double matrix [out x in]. */
static void delta_of(int in, int out, int r, double scale, const float *A, const float *B, double *d)
{
    for (int o = 0; o < out; o++)
        for (int j = 0; j < in; j++) {
            double x = 0;
            for (int c = 0; c < r; c++) x += (double)B[o * r + c] * A[c * in + j];
            d[o * in + j] = scale * x;
        }
}

static void test_merge(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(1);
    rs_rng rng;
    rs_rng_seed(&rng, 5);
    enum { IN = 9, OUT = 12, R = 3, NA = 3 };
    float scale = 2.0f / R;
    float A[NA][R * IN], B[NA][OUT * R];
    for (int a = 0; a < NA; a++) {
        fill_sym(&rng, A[a], R * IN, 1.0);
        fill_sym(&rng, B[a], OUT * R, 1.0);
    }
    double d0[OUT * IN], d1[OUT * IN], d2[OUT * IN], ref[OUT * IN];
    float A2[IN * IN], B2[OUT * IN];
    /* refactor of a rank-R delta at rank R: exact */
    delta_of(IN, OUT, R, scale, A[0], B[0], d0);
    assert_int_equal(rs_lora_refactor(ctx, IN, OUT, R, scale, d0, A2, B2), RECSYS_OK);
    delta_of(IN, OUT, R, scale, A2, B2, d1);
    for (int e = 0; e < OUT * IN; e++) assert_true(fabs(d1[e] - d0[e]) < 1e-5);
    /* at rank R-1: the error is the dropped singular value (Eckart-Young) */
    double U[OUT * IN], S[IN], V[IN * IN];
    assert_true(rs_svd(OUT, IN, d0, U, S, V) > 0);
    assert_int_equal(rs_lora_refactor(ctx, IN, OUT, R - 1, scale, d0, A2, B2), RECSYS_OK);
    delta_of(IN, OUT, R - 1, scale, A2, B2, d1);
    double fe = 0;
    for (int e = 0; e < OUT * IN; e++) fe += (d1[e] - d0[e]) * (d1[e] - d0[e]);
    assert_true(fabs(sqrt(fe) - S[R - 1]) < 1e-5 * (1 + S[R - 1]));
    /* linear merge at rank NA*R: exactly Σ w Δ */
    const float *Ap[NA] = {A[0], A[1], A[2]}, *Bp[NA] = {B[0], B[1], B[2]};
    float w[NA] = {0.5f, 0.3f, 0.2f};
    assert_int_equal(rs_lora_merge(ctx, NA, Ap, Bp, w, IN, OUT, R, scale, RS_MERGE_LINEAR, 1.0f,
                                   NA * R, A2, B2), RECSYS_OK);
    delta_of(IN, OUT, R, scale, A[1], B[1], d1);
    delta_of(IN, OUT, R, scale, A[2], B[2], d2);
    for (int e = 0; e < OUT * IN; e++) ref[e] = w[0] * d0[e] + w[1] * d1[e] + w[2] * d2[e];
    double dd[OUT * IN];
    delta_of(IN, OUT, NA * R, scale, A2, B2, dd);
    for (int e = 0; e < OUT * IN; e++) assert_true(fabs(dd[e] - ref[e]) < 1e-5);
    /* TIES at full rank against a direct computation: trim 50 %, elect, disjoint mean */
    assert_int_equal(rs_lora_merge(ctx, NA, Ap, Bp, w, IN, OUT, R, scale, RS_MERGE_TIES, 0.5f, IN,
                                   A2, B2), RECSYS_OK);
    delta_of(IN, OUT, IN, scale, A2, B2, dd);
    const double *ds[NA] = {d0, d1, d2};
    double thr[NA];
    for (int a = 0; a < NA; a++) {
        double m[OUT * IN];
        for (int e = 0; e < OUT * IN; e++) m[e] = fabs(ds[a][e]);
        qsort(m, OUT * IN, sizeof(double), cmp_desc_test);
        thr[a] = m[(OUT * IN + 1) / 2 - 1];
    }
    int disagree = 0;
    for (int e = 0; e < OUT * IN; e++) {
        double el = 0, num = 0, den = 0;
        for (int a = 0; a < NA; a++)
            if (fabs(ds[a][e]) >= thr[a]) el += w[a] * ds[a][e];
        for (int a = 0; a < NA; a++)
            if (fabs(ds[a][e]) >= thr[a] && ds[a][e] * el > 0) {
                num += w[a] * ds[a][e];
                den += w[a];
            }
        double t = den > 0 ? num / den : 0;
        assert_true(fabs(dd[e] - t) < 1e-5);
        if (t != 0 && fabs(t - ref[e]) > 1e-3) disagree++;
    }
    assert_true(disagree > 0); /* TIES is not the linear merge */
    /* fold: (W + scale·B·A)·x == W·x + scale·B·(A·x) */
    float W[OUT * IN], x[IN], y1[OUT], y2[OUT], t[R];
    fill_sym(&rng, W, OUT * IN, 1.0);
    fill_sym(&rng, x, IN, 1.0);
    for (int o = 0; o < OUT; o++) {
        y1[o] = 0;
        for (int j = 0; j < IN; j++) y1[o] += W[o * IN + j] * x[j];
    }
    rs_lora_seg seg = {0, 1, A[0], B[0], NULL, NULL};
    rs_lora_fwd(ctx, 1, &seg, IN, OUT, R, scale, x, IN, t, y1, OUT);
    rs_lora_fold(ctx, IN, OUT, R, scale, A[0], B[0], W, IN);
    for (int o = 0; o < OUT; o++) {
        y2[o] = 0;
        for (int j = 0; j < IN; j++) y2[o] += W[o * IN + j] * x[j];
        assert_true(fabs(y1[o] - y2[o]) < 1e-5);
    }
    recsys_ctx_free(ctx);
}

/* ------------------------------------------------------------ public API */

static recsys_model *small_model(recsys_ctx *ctx, const char *type)
{
    recsys_opts *o = NULL;
    assert_int_equal(recsys_opts_new(ctx, &o), RECSYS_OK);
    assert_int_equal(recsys_opts_set(o, "model.type", type), RECSYS_OK);
    assert_int_equal(recsys_opts_set(o, "model.dim", "16"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(o, "model.max_len", "8"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(o, "model.heads", "2"), RECSYS_OK);
    rs_model_config cfg;
    assert_int_equal(rs_model_config_from_opts(ctx, o, 30, 0, &cfg), RECSYS_OK);
    rs_rng rng;
    rs_rng_seed(&rng, 1);
    recsys_model *m = NULL;
    assert_int_equal(rs_model_create(ctx, &cfg, &rng, &m), RECSYS_OK);
    recsys_opts_free(o);
    return m;
}

static void test_adapter_api(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(1);
    const char *types[2] = {"sasrec", "hstu"};
    for (int ti = 0; ti < 2; ti++) {
        recsys_model *m = small_model(ctx, types[ti]);
        recsys_opts *o = NULL;
        assert_int_equal(recsys_opts_new(ctx, &o), RECSYS_OK);
        assert_int_equal(recsys_opts_set(o, "adapter.rank", "4"), RECSYS_OK);
        assert_int_equal(recsys_opts_set(o, "adapter.targets", ti ? "u,v,q,k,o" : "q,k,v,o,ffn1,ffn2"), RECSYS_OK);
        recsys_adapter *a = NULL, *b = NULL, *bank = NULL;
        assert_int_equal(recsys_adapter_new(ctx, m, o, RECSYS_ADAPTER_USER, &a), RECSYS_OK);
        recsys_model_free(m); /* the adapter keeps the model alive */
        int64_t np = 0;
        int kind, rank;
        assert_int_equal(recsys_adapter_info(a, &kind, &rank, &np), RECSYS_OK);
        assert_int_equal(rank, 4);
        assert_true(np > 0);
        float *p = malloc(sizeof(float) * (size_t)np), *q = malloc(sizeof(float) * (size_t)np);
        rs_rng rng;
        rs_rng_seed(&rng, 9);
        fill_sym(&rng, p, (size_t)np, 0.3);
        assert_int_equal(recsys_adapter_set_params(a, p, (size_t)np), RECSYS_OK);
        /* buffers: round trip, damage refused */
        void *buf = NULL;
        size_t len = 0;
        assert_int_equal(recsys_adapter_to_buffer(a, &buf, &len), RECSYS_OK);
        assert_int_equal(recsys_adapter_from_buffer(ctx, a->model, buf, len, &b), RECSYS_OK);
        assert_int_equal(recsys_adapter_get_params(b, q, (size_t)np), RECSYS_OK);
        assert_memory_equal(p, q, sizeof(float) * (size_t)np);
        recsys_adapter_free(b);
        b = NULL;
        ((uint8_t *)buf)[len / 2] ^= 1;
        assert_int_equal(recsys_adapter_from_buffer(ctx, a->model, buf, len, &b), RECSYS_E_FORMAT);
        assert_int_equal(recsys_adapter_from_buffer(ctx, a->model, buf, len - 3, &b), RECSYS_E_FORMAT);
        assert_null(b);
        recsys_free(buf);
        /* store through the public API, bf16 */
        char path[256];
        tmp_path(path, sizeof path, "api");
        assert_int_equal(recsys_opts_set(o, "adapter.store_dtype", "bf16"), RECSYS_OK);
        assert_int_equal(recsys_adapter_store_create(ctx, a->model, o, path, 10), RECSYS_OK);
        recsys_adapter_store *st = NULL;
        assert_int_equal(recsys_adapter_store_open(ctx, a->model, path, 1, o, &st), RECSYS_OK);
        assert_int_equal(recsys_adapter_store_put(st, 4, a, 1), RECSYS_OK);
        assert_int_equal(recsys_adapter_store_get(st, 4, &b), RECSYS_OK);
        assert_int_equal(recsys_adapter_get_params(b, q, (size_t)np), RECSYS_OK);
        for (int64_t i = 0; i < np; i++) assert_true(q[i] == bf16_round(p[i]));
        recsys_adapter_free(b);
        assert_int_equal(recsys_adapter_store_get(st, 5, &b), RECSYS_E_NOT_FOUND);
        /* a bank cannot go into a user store */
        assert_int_equal(recsys_adapter_new(ctx, a->model, o, RECSYS_ADAPTER_BANK, &bank), RECSYS_OK);
        assert_int_equal(recsys_adapter_store_put(st, 1, bank, 0), RECSYS_E_INVALID);
        assert_int_equal(recsys_adapter_fold(bank, &m), RECSYS_E_INVALID);
        recsys_adapter_store_close(st);
        unlink(path);
        /* fold: W' = W + scale·B·A at exactly the adapted rows; a zero-B adapter changes nothing */
        recsys_model *f = NULL;
        assert_int_equal(recsys_adapter_fold(a, &f), RECSYS_OK);
        size_t changed = 0;
        for (size_t i = 0; i < f->n_params; i++) changed += f->params[i] != a->model->params[i];
        assert_true(changed > 0);
        recsys_model_free(f);
        recsys_adapter *z = NULL;
        assert_int_equal(recsys_adapter_new(ctx, a->model, o, RECSYS_ADAPTER_USER, &z), RECSYS_OK);
        assert_int_equal(recsys_adapter_fold(z, &f), RECSYS_OK);
        assert_memory_equal(f->params, a->model->params, sizeof(float) * f->n_params);
        recsys_model_free(f);
        /* merge of one adapter with itself (weights 0.5, 0.5) reproduces its delta W */
        const recsys_adapter *two[2] = {a, a};
        float w[2] = {0.5f, 0.5f};
        assert_int_equal(recsys_adapter_merge(ctx, two, w, 2, o, &b), RECSYS_OK);
        recsys_model *f1 = NULL, *f2 = NULL;
        assert_int_equal(recsys_adapter_fold(a, &f1), RECSYS_OK);
        assert_int_equal(recsys_adapter_fold(b, &f2), RECSYS_OK);
        for (size_t i = 0; i < f1->n_params; i++) assert_true(fabsf(f1->params[i] - f2->params[i]) < 1e-5f);
        recsys_model_free(f1);
        recsys_model_free(f2);
        recsys_adapter_free(b);
        recsys_adapter_free(z);
        recsys_adapter_free(bank);
        recsys_adapter_free(a);
        free(p);
        free(q);
        recsys_opts_free(o);
    }
    recsys_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lora_grad),
        cmocka_unit_test(test_bank_mix_grad),
        cmocka_unit_test(test_gate_grad),
        cmocka_unit_test(test_store_roundtrip),
        cmocka_unit_test(test_store_damage),
        cmocka_unit_test(test_store_lru),
        cmocka_unit_test(test_store_interrupted_update),
        cmocka_unit_test(test_svd),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_adapter_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
