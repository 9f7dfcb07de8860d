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
#include "adapters/hook.h"
#include "adapters/gate_input.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>

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

/* ------------------------------------------- LoRA through a whole model */

typedef struct model_lora {
    recsys_ctx *ctx;
    recsys_model *m;
    rs_workspace *ws;
    rs_batch b;
    rs_lora_hook hook;
    float *out, *dout, *G;
    double *wout; /* loss = Σ wout · out */
} model_lora;

static double model_lora_loss(model_lora *s, int grads)
{
    const rs_model_config *c = &s->m->cfg;
    assert_int_equal(s->m->ops->forward(s->ctx, c, s->m->params, s->ws, &s->b, s->out), RECSYS_OK);
    size_t nd = (size_t)s->b.B * c->max_len * c->dim;
    double L = 0.0;
    for (size_t i = 0; i < nd; i++) L += s->wout[i] * s->out[i];
    if (grads) {
        for (size_t i = 0; i < nd; i++) s->dout[i] = (float)s->wout[i];
        assert_int_equal(s->m->ops->backward(s->ctx, c, s->m->params, s->ws, &s->b, s->dout, s->G),
                         RECSYS_OK);
    }
    return L;
}

/* Rows 0-1 use adapter X, row 2 none, row 3 adapter Y; every adapter
 * parameter's gradient (a sample) and the item and position tables' (through
 * the LoRA's dx) against central differences. */
static void model_lora_grad(const char *type)
{
    model_lora s;
    memset(&s, 0, sizeof s);
    s.ctx = new_ctx(2);
    s.m = small_model(s.ctx, type);
    s.m->cfg.dropout = 0.0f;
    const rs_model_config *c = &s.m->cfg;
    recsys_opts *o = NULL;
    assert_int_equal(recsys_opts_new(s.ctx, &o), RECSYS_OK);
    assert_int_equal(recsys_opts_set(o, "adapter.rank", "3"), RECSYS_OK);
    assert_int_equal(recsys_opts_set(o, "adapter.targets",
                                     strcmp(type, "hstu") ? "q,k,v,o,ffn1,ffn2" : "u,v,q,k,o"),
                     RECSYS_OK);
    recsys_adapter *X = NULL, *Y = NULL;
    assert_int_equal(recsys_adapter_new(s.ctx, s.m, o, RECSYS_ADAPTER_USER, &X), RECSYS_OK);
    assert_int_equal(recsys_adapter_new(s.ctx, s.m, o, RECSYS_ADAPTER_USER, &Y), RECSYS_OK);
    recsys_opts_free(o);
    rs_rng rng;
    rs_rng_seed(&rng, 77);
    size_t P = X->P;
    for (size_t i = 0; i < P; i++) {
        X->params[i] = (float)(0.3 * urand(&rng));
        Y->params[i] = (float)(0.3 * urand(&rng));
    }
    enum { NB = 4 };
    int L = c->max_len, starts[NB] = {0, 3, 1, 5};
    int32_t *seq = calloc((size_t)NB * L, sizeof(int32_t));
    for (int r = 0; r < NB; r++)
        for (int t = starts[r]; t < L; t++) seq[(size_t)r * L + t] = 1 + (int32_t)rs_rng_below(&rng, 30);
    s.b.B = NB;
    s.b.L = L;
    s.b.seq = seq;
    s.b.start = starts;
    s.b.train = 1;
    s.b.seed = 5;
    s.ws = s.m->ops->ws_new(c, NB);
    assert_non_null(s.ws);
    size_t nd = (size_t)NB * L * c->dim;
    s.out = malloc(sizeof(float) * nd);
    s.dout = malloc(sizeof(float) * nd);
    s.wout = malloc(sizeof(double) * nd);
    s.G = calloc(s.m->n_params, sizeof(float));
    for (size_t i = 0; i < nd; i++) s.wout[i] = urand(&rng);

    /* base run without a hook, then with a hook of no adapters: bit-identical */
    float *base = malloc(sizeof(float) * nd);
    model_lora_loss(&s, 0);
    memcpy(base, s.out, sizeof(float) * nd);
    assert_int_equal(rs_lora_hook_init(s.ctx, &s.hook, X, NB), RECSYS_OK);
    s.b.hook = &s.hook.h;
    model_lora_loss(&s, 0);
    assert_memory_equal(base, s.out, sizeof(float) * nd);

    float *gX = calloc(P, sizeof(float)), *gY = calloc(P, sizeof(float));
    s.hook.vec[0] = s.hook.vec[1] = X->params;
    s.hook.grad[0] = s.hook.grad[1] = gX;
    s.hook.vec[3] = Y->params;
    s.hook.grad[3] = gY;
    model_lora_loss(&s, 1);
    /* row 2 has no adapter: its output is the base's */
    size_t r2 = (size_t)2 * L * c->dim, rn = (size_t)L * c->dim;
    for (size_t i = 0; i < rn; i++) assert_true(s.out[r2 + i] == base[r2 + i]);

    const double h = 2e-3;
    struct { float *p, *g; size_t n; const char *what; } chk[] = {
        {X->params, gX, P, "adapter X"},
        {Y->params, gY, P, "adapter Y"},
        {s.m->params, s.G, ((size_t)c->n_items + 1) * c->dim, "item_emb"},
    };
    float *gcopy = malloc(sizeof(float) * s.m->n_params);
    memcpy(gcopy, s.G, sizeof(float) * s.m->n_params);
    for (size_t q = 0; q < sizeof chk / sizeof chk[0]; q++) {
        const float *ga = q == 2 ? gcopy : chk[q].g;
        double num2 = 0.0, err2 = 0.0;
        int checked = 0;
        for (size_t i = (q == 2 ? (size_t)c->dim : 0); i < chk[q].n && checked < 60;
             i += 1 + chk[q].n / 97) {
            float save = chk[q].p[i];
            chk[q].p[i] = save + (float)h;
            double lp = model_lora_loss(&s, 0);
            chk[q].p[i] = save - (float)h;
            double lm = model_lora_loss(&s, 0);
            chk[q].p[i] = save;
            double num = (lp - lm) / (2 * h);
            num2 += num * num;
            err2 += (num - ga[i]) * (num - ga[i]);
            checked++;
        }
        if (!(sqrt(err2) <= 2e-2 * sqrt(num2) + 2e-4))
            fail_msg("%s %s: |fd - analytic| = %.3g, |fd| = %.3g", type, chk[q].what, sqrt(err2),
                     sqrt(num2));
    }
    free(gcopy);
    free(gX);
    free(gY);
    free(base);
    rs_lora_hook_release(&s.hook);
    free(seq);
    free(s.out);
    free(s.dout);
    free(s.wout);
    free(s.G);
    s.m->ops->ws_free(s.ws);
    recsys_adapter_free(X);
    recsys_adapter_free(Y);
    recsys_model_free(s.m);
    recsys_ctx_free(s.ctx);
}

static void test_model_lora_grad_sasrec(void **state)
{
    (void)state;
    model_lora_grad("sasrec");
}

static void test_model_lora_grad_hstu(void **state)
{
    (void)state;
    model_lora_grad("hstu");
}

/* ------------------------------------- training on a frozen base, scoring */

typedef struct synth {
    recsys_ctx *ctx;
    recsys_opts *o;
    recsys_dataset *ds;
    recsys_model *m;
} synth;

static void synth_new(synth *s, const char *type)
{
    s->ctx = new_ctx(2);
    assert_int_equal(recsys_opts_new(s->ctx, &s->o), RECSYS_OK);
    const char *kv[][2] = {{"data.synthetic_users", "120"}, {"data.synthetic_items", "60"},
                           {"data.synthetic_length", "24"}, {"model.type", type},
                           {"model.dim", "16"}, {"model.max_len", "16"}, {"model.heads", "2"},
                           {"adapter.rank", "4"}, {"adapter.epochs", "2"},
                           {"adapter.user_steps", "5"}, {"adapter.lr", "0.01"},
                           {"adapter.gate_window", "12"}, {"adapter.bank_size", "3"},
                           {"adapter.gate_hidden", "8"}, {"trainer.batch_size", "32"},
                           {"eval.batch_size", "32"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        assert_int_equal(recsys_opts_set(s->o, kv[i][0], kv[i][1]), RECSYS_OK);
    assert_int_equal(recsys_opts_set(s->o, "adapter.targets",
                                     strcmp(type, "hstu") ? "q,v,o,ffn1" : "u,v,o"), RECSYS_OK);
    assert_int_equal(recsys_dataset_synthetic(s->ctx, s->o, &s->ds), RECSYS_OK);
    assert_int_equal(recsys_model_new(s->ctx, s->o, s->ds, &s->m), RECSYS_OK);
}

static void synth_free(synth *s)
{
    recsys_model_free(s->m);
    recsys_dataset_free(s->ds);
    recsys_opts_free(s->o);
    recsys_ctx_free(s->ctx);
}

static double metric(recsys_metrics *r, const char *k)
{
    double v = NAN;
    assert_int_equal(recsys_metrics_get(r, k, &v), RECSYS_OK);
    return v;
}

/* Every kind trains with the base bit-for-bit unchanged, moves off zero and
 * changes the scores; a USER adapter trains on one user only. */
static void frozen_training(const char *type)
{
    synth s;
    synth_new(&s, type);
    size_t np = s.m->n_params;
    float *before = malloc(sizeof(float) * np);
    memcpy(before, s.m->params, sizeof(float) * np);
    for (int kind = 0; kind < 3; kind++) {
        recsys_adapter *a = NULL;
        assert_int_equal(recsys_adapter_new(s.ctx, s.m, s.o, kind, &a), RECSYS_OK);
        double loss = -1;
        assert_int_equal(recsys_adapter_train(a, s.ds, kind == RECSYS_ADAPTER_USER ? 7 : -1, s.o,
                                              &loss),
                         RECSYS_OK);
        assert_true(loss > 0 && isfinite(loss));
        assert_memory_equal(before, s.m->params, sizeof(float) * np);
        double bsum = 0; /* B moved off zero */
        for (int i = 0; i < a->n_sites; i++) {
            const rs_lora_site *st = &a->sites[i];
            const float *B = a->params + st->off + (size_t)a->rank * st->in;
            for (size_t j = 0; j < (size_t)a->rank * st->out; j++) bsum += fabs(B[j]);
        }
        assert_true(bsum > 0);
        recsys_metrics *r0 = NULL, *r1 = NULL;
        assert_int_equal(recsys_evaluate(s.ctx, s.m, s.ds, s.o, &r0), RECSYS_OK);
        assert_int_equal(recsys_evaluate_adapters(s.ctx, s.m, a, NULL, s.ds, s.o, NULL, &r1),
                         RECSYS_OK);
        assert_true(isfinite(metric(r1, "NDCG@10")));
        recsys_metrics_free(r0);
        recsys_metrics_free(r1);
        /* wrong user arguments */
        assert_int_equal(recsys_adapter_train(a, s.ds, kind == RECSYS_ADAPTER_USER ? -1 : 3, s.o,
                                              NULL),
                         RECSYS_E_INVALID);
        recsys_adapter_free(a);
    }
    /* no adapter: recsys_evaluate_adapters == recsys_evaluate, ranks per user */
    recsys_metrics *r0 = NULL, *r1 = NULL;
    double *rank = malloc(sizeof(double) * (size_t)s.ds->n_users);
    assert_int_equal(recsys_evaluate(s.ctx, s.m, s.ds, s.o, &r0), RECSYS_OK);
    assert_int_equal(recsys_evaluate_adapters(s.ctx, s.m, NULL, NULL, s.ds, s.o, rank, &r1),
                     RECSYS_OK);
    assert_true(metric(r0, "NDCG@10") == metric(r1, "NDCG@10"));
    double nd = 0;
    int64_t nu = 0;
    for (int64_t u = 0; u < s.ds->n_users; u++)
        if (!isnan(rank[u])) {
            nd += rank[u] < 10 ? 1.0 / log2(rank[u] + 2.0) : 0.0;
            nu++;
        }
    assert_true(fabs(nd / (double)nu - metric(r0, "NDCG@10")) < 1e-9);
    free(rank);
    recsys_metrics_free(r0);
    recsys_metrics_free(r1);
    free(before);
    synth_free(&s);
}

static void test_frozen_training_sasrec(void **state)
{
    (void)state;
    frozen_training("sasrec");
}

static void test_frozen_training_hstu(void **state)
{
    (void)state;
    frozen_training("hstu");
}

/* Forward of batch rows seq (B x L, starts) with per-row adapters (NULL:
 * none) into out. */
static void forward_rows(recsys_ctx *ctx, const recsys_model *m, const recsys_adapter *shape,
                         int B, const int32_t *seq, const int *start,
                         const recsys_adapter *const *per_row, float *out)
{
    const rs_model_config *c = &m->cfg;
    rs_workspace *ws = m->ops->ws_new(c, B);
    assert_non_null(ws);
    rs_lora_hook h;
    rs_batch b = {0};
    b.B = B;
    b.L = c->max_len;
    b.seq = seq;
    b.start = start;
    if (shape) {
        assert_int_equal(rs_lora_hook_init(ctx, &h, shape, B), RECSYS_OK);
        for (int r = 0; r < B; r++) h.vec[r] = per_row[r] ? per_row[r]->params : NULL;
        b.hook = &h.h;
    }
    assert_int_equal(m->ops->forward(ctx, c, m->params, ws, &b, out), RECSYS_OK);
    if (shape) rs_lora_hook_release(&h);
    m->ops->ws_free(ws);
}

/* Folded == unmerged (whole model, 1e-5); a batch where every row has its
 * own adapter == one call per row. */
static void scoring_equivalence(const char *type)
{
    synth s;
    synth_new(&s, type);
    const rs_model_config *c = &s.m->cfg;
    enum { NB = 6 };
    recsys_adapter *ad[NB];
    rs_rng rng;
    rs_rng_seed(&rng, 3);
    for (int i = 0; i < NB; i++) {
        assert_int_equal(recsys_adapter_new(s.ctx, s.m, s.o, RECSYS_ADAPTER_USER, &ad[i]), RECSYS_OK);
        for (size_t j = 0; j < ad[i]->n_params; j++) ad[i]->params[j] = (float)(0.2 * urand(&rng));
    }
    int L = c->max_len, start[NB];
    int32_t *seq = calloc((size_t)NB * L, sizeof(int32_t));
    for (int r = 0; r < NB; r++) {
        start[r] = r % 3 == 2 ? 0 : 1 + r;
        for (int t = start[r]; t < L; t++)
            seq[(size_t)r * L + t] = 1 + (int32_t)rs_rng_below(&rng, (uint64_t)c->n_items);
    }
    size_t rowf = (size_t)L * c->dim;
    float *mixed = malloc(sizeof(float) * NB * rowf), *one = malloc(sizeof(float) * rowf);
    float *folded = malloc(sizeof(float) * rowf);
    const recsys_adapter *per_row[NB];
    for (int r = 0; r < NB; r++) per_row[r] = r == 4 ? NULL : ad[r];
    forward_rows(s.ctx, s.m, ad[0], NB, seq, start, per_row, mixed);
    for (int r = 0; r < NB; r++) {
        forward_rows(s.ctx, s.m, ad[0], 1, seq + (size_t)r * L, start + r, per_row + r, one);
        for (size_t i = 0; i < rowf; i++)
            assert_true(fabsf(one[i] - mixed[(size_t)r * rowf + i]) <= 1e-5f * (1 + fabsf(one[i])));
        if (!per_row[r]) continue;
        recsys_model *f = NULL;
        assert_int_equal(recsys_adapter_fold(ad[r], &f), RECSYS_OK);
        forward_rows(s.ctx, f, NULL, 1, seq + (size_t)r * L, start + r, NULL, folded);
        double md = 0;
        for (size_t i = 0; i < rowf; i++) md = fmax(md, fabs(folded[i] - one[i]));
        if (md > 1e-5) fail_msg("%s row %d: folded vs unmerged max diff %.3g", type, r, md);
        recsys_model_free(f);
    }
    free(mixed);
    free(one);
    free(folded);
    free(seq);
    for (int i = 0; i < NB; i++) recsys_adapter_free(ad[i]);
    synth_free(&s);
}

static void test_scoring_equivalence(void **state)
{
    (void)state;
    scoring_equivalence("sasrec");
    scoring_equivalence("hstu");
}

/* Several threads evaluating with different adapters (each its own ctx, one
 * shared model and store) == the same evaluations run one after another. */
typedef struct conc_job {
    recsys_model *m;
    const recsys_dataset *ds;
    const recsys_opts *o;
    recsys_adapter_store *store;
    const float *params;
    double ndcg;
    double *rank; /* per user: compared exactly (the NDCG sum's order follows the pool) */
    int rc;
} conc_job;

static void *conc_run(void *arg)
{
    conc_job *j = arg;
    recsys_ctx *ctx = NULL;
    j->rc = recsys_ctx_new(&ctx);
    recsys_adapter *a = NULL;
    if (!j->rc) j->rc = recsys_adapter_new(ctx, j->m, j->o, RECSYS_ADAPTER_SHARED, &a);
    if (!j->rc) j->rc = recsys_adapter_set_params(a, j->params, a->n_params);
    recsys_metrics *r = NULL;
    if (!j->rc) j->rc = recsys_evaluate_adapters(ctx, j->m, a, j->store, j->ds, j->o, j->rank, &r);
    if (!j->rc) j->rc = recsys_metrics_get(r, "NDCG@10", &j->ndcg);
    recsys_metrics_free(r);
    recsys_adapter_free(a);
    recsys_ctx_free(ctx);
    return NULL;
}

static void test_concurrent_scoring(void **state)
{
    (void)state;
    synth s;
    synth_new(&s, "sasrec");
    char path[256];
    tmp_path(path, sizeof path, "conc.adapters");
    assert_int_equal(recsys_adapter_store_create(s.ctx, s.m, s.o, path, s.ds->n_users), RECSYS_OK);
    recsys_adapter_store *st = NULL;
    assert_int_equal(recsys_adapter_store_open(s.ctx, s.m, path, 1, s.o, &st), RECSYS_OK);
    rs_rng rng;
    rs_rng_seed(&rng, 11);
    recsys_adapter *u = NULL;
    assert_int_equal(recsys_adapter_new(s.ctx, s.m, s.o, RECSYS_ADAPTER_USER, &u), RECSYS_OK);
    for (int64_t user = 0; user < s.ds->n_users; user += 3) {
        for (size_t j = 0; j < u->n_params; j++) u->params[j] = (float)(0.2 * urand(&rng));
        assert_int_equal(recsys_adapter_store_put(st, user, u, 0), RECSYS_OK);
    }
    enum { NT = 4 };
    float *params[NT];
    conc_job jobs[NT], serial[NT];
    for (int i = 0; i < NT; i++) {
        params[i] = malloc(sizeof(float) * u->n_params);
        for (size_t j = 0; j < u->n_params; j++) params[i][j] = (float)(0.2 * urand(&rng));
        conc_job j0 = {s.m, s.ds, s.o, i % 2 ? st : NULL, params[i], 0, NULL, 0};
        jobs[i] = serial[i] = j0;
        jobs[i].rank = malloc(sizeof(double) * (size_t)s.ds->n_users);
        serial[i].rank = malloc(sizeof(double) * (size_t)s.ds->n_users);
    }
    for (int i = 0; i < NT; i++) conc_run(&serial[i]);
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) assert_int_equal(pthread_create(&th[i], NULL, conc_run, &jobs[i]), 0);
    for (int i = 0; i < NT; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < NT; i++) {
        assert_int_equal(serial[i].rc, RECSYS_OK);
        assert_int_equal(jobs[i].rc, RECSYS_OK);
        assert_true(fabs(jobs[i].ndcg - serial[i].ndcg) <= 1e-12);
        assert_memory_equal(jobs[i].rank, serial[i].rank, sizeof(double) * (size_t)s.ds->n_users);
        free(jobs[i].rank);
        free(serial[i].rank);
        free(params[i]);
    }
    assert_true(serial[0].ndcg != serial[1].ndcg); /* the store's adapters count */
    recsys_adapter_free(u);
    recsys_adapter_store_close(st);
    unlink(path);
    synth_free(&s);
}

/* recsys_adapter_train_sequence == recsys_adapter_train on the same user
 * with nothing held out (bit for bit); recsys_adapter_inspect(_user) on a
 * file and a store: fields, per-target |ΔW| against an explicit B·A, damage. */
static void sequence_and_inspect(const char *type)
{
    synth s;
    synth_new(&s, type);
    recsys_adapter *a1 = NULL, *a2 = NULL;
    assert_int_equal(recsys_adapter_new(s.ctx, s.m, s.o, RECSYS_ADAPTER_USER, &a1), RECSYS_OK);
    assert_int_equal(recsys_adapter_new(s.ctx, s.m, s.o, RECSYS_ADAPTER_USER, &a2), RECSYS_OK);
    recsys_dataset all = *s.ds;
    all.holdout = 0;
    const int32_t *items;
    const int64_t *times;
    size_t n;
    assert_int_equal(recsys_dataset_user_items(s.ds, 7, &items, &times, &n), RECSYS_OK);
    double l1 = 0, l2 = 0;
    assert_int_equal(recsys_adapter_train(a1, &all, 7, s.o, &l1), RECSYS_OK);
    assert_int_equal(recsys_adapter_train_sequence(a2, items, times, n, s.o, &l2), RECSYS_OK);
    assert_true(l1 == l2 && l1 > 0);
    assert_memory_equal(a1->params, a2->params, sizeof(float) * a1->n_params);
    /* refused: too short, an item out of range, a bank */
    assert_int_equal(recsys_adapter_train_sequence(a2, items, NULL, 1, s.o, NULL), RECSYS_E_INVALID);
    int32_t bad[3] = {1, s.m->cfg.n_items + 1, 2};
    assert_int_equal(recsys_adapter_train_sequence(a2, bad, NULL, 3, s.o, NULL), RECSYS_E_INVALID);
    recsys_adapter *bank = NULL;
    assert_int_equal(recsys_adapter_new(s.ctx, s.m, s.o, RECSYS_ADAPTER_BANK, &bank), RECSYS_OK);
    assert_int_equal(recsys_adapter_train_sequence(bank, items, NULL, n, s.o, NULL), RECSYS_E_INVALID);
    /* a file */
    char path[256], spath[256];
    tmp_path(path, sizeof path, "insp");
    void *buf = NULL;
    size_t len = 0;
    assert_int_equal(recsys_adapter_to_buffer(a2, &buf, &len), RECSYS_OK);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
    recsys_adapter_file_info fi = {.struct_size = sizeof fi};
    assert_int_equal(recsys_adapter_inspect(s.ctx, path, &fi), RECSYS_OK);
    assert_int_equal(fi.is_store, 0);
    assert_int_equal(fi.kind, RECSYS_ADAPTER_USER);
    assert_int_equal(fi.rank, a2->rank);
    assert_int_equal(fi.targets, (int)a2->targets);
    assert_int_equal(fi.n_params, (int64_t)a2->n_params);
    assert_int_equal(fi.file_bytes, (int64_t)len);
    double norms[RECSYS_ADAPTER_N_TARGETS], want[RECSYS_ADAPTER_N_TARGETS] = {0};
    assert_int_equal(recsys_adapter_inspect_user(s.ctx, path, -1, norms, RECSYS_ADAPTER_N_TARGETS),
                     RECSYS_OK);
    for (int i = 0; i < a2->n_sites; i++) {
        const rs_lora_site *st = &a2->sites[i];
        const float *A = a2->params + st->off, *B = A + (size_t)a2->rank * st->in;
        for (int o = 0; o < st->out; o++)
            for (int j = 0; j < st->in; j++) {
                double x = 0;
                for (int c = 0; c < a2->rank; c++)
                    x += (double)B[(size_t)o * a2->rank + c] * A[(size_t)c * st->in + j];
                want[st->target] += (a2->scale * x) * (a2->scale * x);
            }
    }
    for (int t = 0; t < RECSYS_ADAPTER_N_TARGETS; t++) {
        if (!(a2->targets & (1u << t))) {
            assert_true(isnan(norms[t]));
            continue;
        }
        assert_true(sqrt(want[t]) > 0);
        assert_true(fabs(norms[t] - sqrt(want[t])) <= 1e-6 * sqrt(want[t]));
    }
    ((uint8_t *)buf)[len / 2] ^= 4;
    f = fopen(path, "wb");
    fwrite(buf, 1, len, f);
    fclose(f);
    assert_int_equal(recsys_adapter_inspect(s.ctx, path, &fi), RECSYS_E_FORMAT);
    recsys_free(buf);
    /* a store: one user of 10 */
    tmp_path(spath, sizeof spath, "insps");
    recsys_adapter_store *st = NULL;
    assert_int_equal(recsys_adapter_store_create(s.ctx, s.m, s.o, spath, 10), RECSYS_OK);
    assert_int_equal(recsys_adapter_store_open(s.ctx, s.m, spath, 1, s.o, &st), RECSYS_OK);
    assert_int_equal(recsys_adapter_store_put(st, 3, a2, 1), RECSYS_OK);
    recsys_adapter_store_close(st);
    assert_int_equal(recsys_adapter_inspect(s.ctx, spath, &fi), RECSYS_OK);
    assert_int_equal(fi.is_store, 1);
    assert_int_equal(fi.n_users, 10);
    assert_int_equal(fi.users_present, 1);
    assert_int_equal(fi.records, 1);
    double sn[RECSYS_ADAPTER_N_TARGETS];
    assert_int_equal(recsys_adapter_inspect_user(s.ctx, spath, 3, sn, RECSYS_ADAPTER_N_TARGETS),
                     RECSYS_OK);
    for (int t = 0; t < RECSYS_ADAPTER_N_TARGETS; t++)
        assert_true((isnan(sn[t]) && isnan(norms[t])) || sn[t] == norms[t]);
    assert_int_equal(recsys_adapter_inspect_user(s.ctx, spath, 4, sn, RECSYS_ADAPTER_N_TARGETS),
                     RECSYS_E_NOT_FOUND);
    assert_int_equal(recsys_adapter_inspect_user(s.ctx, spath, 10, sn, RECSYS_ADAPTER_N_TARGETS),
                     RECSYS_E_INVALID);
    /* a flipped byte in the record: every CRC is checked */
    f = fopen(spath, "r+b");
    assert_non_null(f);
    fseek(f, -12, SEEK_END);
    int c = fgetc(f);
    fseek(f, -12, SEEK_END);
    fputc(c ^ 1, f);
    fclose(f);
    assert_int_equal(recsys_adapter_inspect(s.ctx, spath, &fi), RECSYS_E_FORMAT);
    assert_int_equal(recsys_adapter_inspect(s.ctx, "/nonexistent/x", &fi), RECSYS_E_IO);
    remove(path);
    remove(spath);
    recsys_adapter_free(bank);
    recsys_adapter_free(a1);
    recsys_adapter_free(a2);
    synth_free(&s);
}

static void test_sequence_and_inspect(void **state)
{
    (void)state;
    sequence_and_inspect("sasrec");
    sequence_and_inspect("hstu");
}

/* A new adapter (B = 0) scores every user exactly as the base, whatever
 * adapter.window says (it cuts training inputs only): shared, bank, user,
 * and a store of new adapters, sampled and full ranking, per-user ranks. */
static void test_zero_adapter_is_base(void **state)
{
    (void)state;
    synth s;
    synth_new(&s, "sasrec");
    assert_int_equal(recsys_opts_set(s.o, "adapter.window", "4"), RECSYS_OK); /* < max_len 16 */
    size_t nu = (size_t)s.ds->n_users;
    double *r0 = malloc(sizeof(double) * nu), *r1 = malloc(sizeof(double) * nu);
    char path[256];
    tmp_path(path, sizeof path, "zero.adapters");
    const char *protocols[2] = {"sampled", "full"};
    for (int p = 0; p < 2; p++) {
        assert_int_equal(recsys_opts_set(s.o, "eval.protocol", protocols[p]), RECSYS_OK);
        recsys_metrics *m0 = NULL;
        assert_int_equal(recsys_evaluate_adapters(s.ctx, s.m, NULL, NULL, s.ds, s.o, r0, &m0),
                         RECSYS_OK);
        for (int kind = 0; kind < 4; kind++) {
            recsys_adapter *a = NULL, *u = NULL;
            recsys_adapter_store *st = NULL;
            int k = kind == 3 ? RECSYS_ADAPTER_BANK : kind;
            assert_int_equal(recsys_adapter_new(s.ctx, s.m, s.o, k, &a), RECSYS_OK);
            assert_int_equal(a->window, 4);
            if (kind == 3) { /* a store of new USER adapters for every other user */
                assert_int_equal(recsys_adapter_store_create(s.ctx, s.m, s.o, path, (int64_t)nu),
                                 RECSYS_OK);
                assert_int_equal(recsys_adapter_store_open(s.ctx, s.m, path, 1, s.o, &st),
                                 RECSYS_OK);
                assert_int_equal(recsys_adapter_new(s.ctx, s.m, s.o, RECSYS_ADAPTER_USER, &u),
                                 RECSYS_OK);
                for (int64_t user = 0; user < (int64_t)nu; user += 2)
                    assert_int_equal(recsys_adapter_store_put(st, user, u, 0), RECSYS_OK);
            }
            recsys_metrics *m1 = NULL;
            assert_int_equal(recsys_evaluate_adapters(s.ctx, s.m, a, st, s.ds, s.o, r1, &m1),
                             RECSYS_OK);
            assert_memory_equal(r0, r1, sizeof(double) * nu);
            assert_true(metric(m0, "NDCG@10") == metric(m1, "NDCG@10"));
            assert_true(metric(m0, "HR@10") == metric(m1, "HR@10"));
            recsys_metrics_free(m1);
            recsys_adapter_store_close(st);
            recsys_adapter_free(u);
            recsys_adapter_free(a);
            unlink(path);
        }
        recsys_metrics_free(m0);
    }
    free(r0);
    free(r1);
    synth_free(&s);
}

/* The bank's gate input: in training it holds no item any scored position
 * has as its target (the cut); in scoring it is the last gw inputs. */
static void test_gate_input_cut(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(1);
    enum { B = 5, L = 10 };
    const int starts[B] = {0, 3, 8, 9, L};
    const int gws[3] = {0, 4, 20};
    for (int gi = 0; gi < 3; gi++)
        for (int train = 0; train < 2; train++) {
            rs_batch_buf bb;
            assert_int_equal(rs_batch_buf_init(ctx, &bb, B, L, 1, 1), RECSYS_OK);
            for (int r = 0; r < B; r++) { /* items 100r+p+1: inputs, targets the next */
                bb.start[r] = starts[r];
                for (int p = 0; p < L; p++) {
                    int in = p >= starts[r];
                    bb.seq[r * L + p] = in ? 100 * r + p + 1 : 0;
                    bb.pos[r * L + p] = in ? 100 * r + p + 2 : 0;
                    bb.times[r * L + p] = in ? 1000 * r + p : 0;
                    bb.next_times[r * L + p] = in ? 1000 * r + p + 1 : 0;
                }
            }
            int32_t gseq[B * L];
            int64_t gt[B * L], gnt[B * L];
            int gstart[B];
            rs_gate_input(&bb, B, gws[gi], train, gseq, gt, gnt, gstart);
            for (int r = 0; r < B; r++) {
                int s0 = starts[r], n_seen = L - gstart[r], scored = 0;
                if (s0 == L) { assert_int_equal(gstart[r], L); continue; }
                assert_true(n_seen >= 1);
                if (gws[gi] > 0) assert_true(n_seen <= gws[gi]);
                for (int p = 0; p < gstart[r]; p++) assert_int_equal(gseq[r * L + p], 0);
                for (int p = gstart[r]; p < L; p++) { /* consecutive inputs, times follow */
                    int32_t it = gseq[r * L + p];
                    assert_true(it > 100 * r);
                    assert_int_equal(gt[r * L + p], 1000 * r + (it - 100 * r - 1));
                    if (p > gstart[r]) assert_int_equal(it, gseq[r * L + p - 1] + 1);
                }
                int32_t last = gseq[r * L + L - 1];
                for (int p = s0; p < L; p++) {
                    int32_t t = bb.pos[r * L + p];
                    if (!t) continue;
                    scored++;
                    if (train) assert_true(t > last); /* scored targets come after the gate */
                }
                assert_true(scored >= 1);
                if (!train) { /* scoring: the last inputs, targets untouched */
                    assert_int_equal(last, 100 * r + L);
                    assert_int_equal(scored, L - s0);
                } else {
                    assert_true(scored >= (L - s0) / 2);
                }
            }
            rs_batch_buf_free(&bb);
        }
    recsys_ctx_free(ctx);
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
        /* the same weights rebuilt load it; other weights of the same shape refuse it */
        recsys_model *same = small_model(ctx, types[ti]), *other = small_model(ctx, types[ti]);
        for (size_t i = 0; i < other->n_params; i += 97) other->params[i] += 0.01f;
        assert_int_equal(recsys_adapter_from_buffer(ctx, same, buf, len, &b), RECSYS_OK);
        recsys_adapter_free(b);
        b = NULL;
        assert_int_equal(recsys_adapter_from_buffer(ctx, other, buf, len, &b), RECSYS_E_INVALID);
        assert_non_null(strstr(recsys_ctx_errmsg(ctx), "another base model"));
        assert_null(b);
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
        recsys_adapter_store *st2 = NULL;
        assert_int_equal(recsys_adapter_store_open(ctx, other, path, 0, o, &st2), RECSYS_E_INVALID);
        assert_null(st2);
        assert_int_equal(recsys_adapter_store_open(ctx, same, path, 0, o, &st2), RECSYS_OK);
        recsys_adapter_store_close(st2);
        recsys_model_free(same);
        recsys_model_free(other);
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
        cmocka_unit_test(test_model_lora_grad_sasrec),
        cmocka_unit_test(test_model_lora_grad_hstu),
        cmocka_unit_test(test_frozen_training_sasrec),
        cmocka_unit_test(test_frozen_training_hstu),
        cmocka_unit_test(test_scoring_equivalence),
        cmocka_unit_test(test_concurrent_scoring),
        cmocka_unit_test(test_sequence_and_inspect),
        cmocka_unit_test(test_zero_adapter_is_base),
        cmocka_unit_test(test_gate_input_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
