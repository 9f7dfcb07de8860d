/* Serving requests with adapters (recsys_request.adapter, lib/serve):
 * scores equal the folded model's, mixed-adapter batches equal one call
 * per request bit for bit, a BANK adapter scores as a USER adapter holding
 * the LoRA its gate mixes, and another model's adapters are refused. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/internal.h"
#include "adapters/adapter.h"
#include "serve/serve.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixture {
    recsys_ctx *ctx;
    recsys_opts *o;
    recsys_dataset *ds;
    recsys_model *m;
    int n_items, L;
} fixture;

static void fx_new(fixture *f, const char *type, int threads)
{
    f->ctx = new_ctx(threads);
    assert_int_equal(recsys_opts_new(f->ctx, &f->o), RECSYS_OK);
    const char *kv[][2] = {{"data.synthetic_users", "40"}, {"data.synthetic_items", "60"},
                           {"data.synthetic_length", "24"}, {"model.type", type},
                           {"model.dim", "16"}, {"model.max_len", "16"}, {"model.heads", "2"},
                           {"adapter.rank", "4"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        assert_int_equal(recsys_opts_set(f->o, kv[i][0], kv[i][1]), RECSYS_OK);
    assert_int_equal(recsys_opts_set(f->o, "adapter.targets",
                                     strcmp(type, "hstu") ? "q,v,o,ffn1" : "u,v,q,o"), RECSYS_OK);
    assert_int_equal(recsys_dataset_synthetic(f->ctx, f->o, &f->ds), RECSYS_OK);
    assert_int_equal(recsys_model_new(f->ctx, f->o, f->ds, &f->m), RECSYS_OK);
    f->n_items = f->m->cfg.n_items;
    f->L = f->m->cfg.max_len;
}

static void fx_free(fixture *f)
{
    recsys_model_free(f->m);
    recsys_dataset_free(f->ds);
    recsys_opts_free(f->o);
    recsys_ctx_free(f->ctx);
}

/* An adapter of kind with random (non-zero B) parameters. */
static recsys_adapter *random_adapter(fixture *f, int kind, rs_rng *rng)
{
    recsys_adapter *a = NULL;
    assert_int_equal(recsys_adapter_new(f->ctx, f->m, f->o, kind, &a), RECSYS_OK);
    int64_t n = 0;
    assert_int_equal(recsys_adapter_info(a, NULL, NULL, &n), RECSYS_OK);
    float *p = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(0.3 * urand(rng));
    assert_int_equal(recsys_adapter_set_params(a, p, (size_t)n), RECSYS_OK);
    free(p);
    return a;
}

static void random_history(rs_rng *rng, int n_items, int32_t *h, int64_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h[i] = 1 + (int32_t)rs_rng_below(rng, (uint64_t)n_items);
        t[i] = 1000 + 60 * (int64_t)i;
    }
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double md = 0;
    for (size_t i = 0; i < n; i++) {
        if (isinf(a[i]) && isinf(b[i])) continue;
        md = fmax(md, fabs((double)a[i] - b[i]));
    }
    return md;
}

/* A request with an adapter scores as the model with the adapter folded
 * into its weights (1e-5), on the last-position forward and the full one;
 * the user vector too; and the adapter changes the scores. */
static void request_equals_fold(const char *type)
{
    fixture f;
    fx_new(&f, type, 1);
    rs_rng rng;
    rs_rng_seed(&rng, 5);
    int kinds[2] = {RECSYS_ADAPTER_USER, RECSYS_ADAPTER_SHARED};
    size_t N1 = (size_t)f.n_items + 1, d = (size_t)f.m->cfg.dim;
    float *with = malloc(sizeof(float) * N1), *folded = malloc(sizeof(float) * N1);
    float *base = malloc(sizeof(float) * N1), *full = malloc(sizeof(float) * N1);
    float *v1 = malloc(sizeof(float) * d), *v2 = malloc(sizeof(float) * d);
    int32_t hist[40];
    int64_t times[40];
    size_t lens[3] = {3, 16, 40}; /* shorter than, equal to and longer than max_len */
    recsys_session *s = NULL;
    assert_int_equal(recsys_session_new(f.ctx, f.m, &s), RECSYS_OK);
    for (int ki = 0; ki < 2; ki++) {
        recsys_adapter *a = random_adapter(&f, kinds[ki], &rng);
        recsys_model *fm = NULL;
        assert_int_equal(recsys_adapter_fold(a, &fm), RECSYS_OK);
        recsys_session *sf = NULL;
        assert_int_equal(recsys_session_new(f.ctx, fm, &sf), RECSYS_OK);
        for (int li = 0; li < 3; li++) {
            random_history(&rng, f.n_items, hist, times, lens[li]);
            recsys_request r = RECSYS_REQUEST_INIT;
            r.history = hist;
            r.n_history = lens[li];
            r.times = times;
            r.exclude_history = li == 1;
            assert_int_equal(recsys_session_score_request(sf, &r, folded, N1), RECSYS_OK);
            assert_int_equal(recsys_session_score_request(s, &r, base, N1), RECSYS_OK);
            r.adapter = a;
            assert_int_equal(recsys_session_score_request(s, &r, with, N1), RECSYS_OK);
            double md = max_diff(with, folded, N1);
            if (md > 1e-5) fail_msg("%s kind %d len %zu: request vs folded %.3g", type, kinds[ki],
                                    lens[li], md);
            assert_true(max_diff(with, base, N1) > 1e-3); /* the adapter counts */
            rs_session_set_last_only(s, 0);
            assert_int_equal(recsys_session_score_request(s, &r, full, N1), RECSYS_OK);
            rs_session_set_last_only(s, 1);
            md = max_diff(with, full, N1);
            if (md > 1e-5) fail_msg("%s: last-position vs full forward %.3g", type, md);
            assert_int_equal(recsys_session_user_vector(s, &r, v1, d), RECSYS_OK);
            r.adapter = NULL;
            assert_int_equal(recsys_session_user_vector(sf, &r, v2, d), RECSYS_OK);
            assert_true(max_diff(v1, v2, d) <= 1e-5);
        }
        recsys_session_free(sf);
        recsys_model_free(fm);
        recsys_adapter_free(a);
    }
    recsys_session_free(s);
    free(with);
    free(folded);
    free(base);
    free(full);
    free(v1);
    free(v2);
    fx_free(&f);
}

static void test_request_equals_fold_sasrec(void **state)
{
    (void)state;
    request_equals_fold("sasrec");
}

static void test_request_equals_fold_hstu(void **state)
{
    (void)state;
    request_equals_fold("hstu");
}

/* adapter.window: an adapter request encodes only the last window events,
 * and still excludes the whole history. */
static void test_adapter_window(void **state)
{
    (void)state;
    fixture f;
    fx_new(&f, "sasrec", 1);
    assert_int_equal(recsys_opts_set(f.o, "adapter.window", "5"), RECSYS_OK);
    rs_rng rng;
    rs_rng_seed(&rng, 9);
    recsys_adapter *a = random_adapter(&f, RECSYS_ADAPTER_USER, &rng);
    recsys_session *s = NULL;
    assert_int_equal(recsys_session_new(f.ctx, f.m, &s), RECSYS_OK);
    int32_t hist[12];
    int64_t times[12];
    random_history(&rng, f.n_items, hist, times, 12);
    size_t N1 = (size_t)f.n_items + 1;
    float *all = malloc(sizeof(float) * N1), *tail = malloc(sizeof(float) * N1);
    recsys_request r = RECSYS_REQUEST_INIT;
    r.history = hist;
    r.n_history = 12;
    r.adapter = a;
    r.exclude_history = 1;
    assert_int_equal(recsys_session_score_request(s, &r, all, N1), RECSYS_OK);
    r.history = hist + 7;
    r.n_history = 5;
    r.exclude_history = 0;
    assert_int_equal(recsys_session_score_request(s, &r, tail, N1), RECSYS_OK);
    for (size_t i = 0; i < 12; i++) tail[hist[i]] = -INFINITY;
    assert_memory_equal(all, tail, sizeof(float) * N1);
    free(all);
    free(tail);
    recsys_session_free(s);
    recsys_adapter_free(a);
    fx_free(&f);
}

/* A BANK adapter in a request == a USER adapter holding the LoRA the
 * bank's gate mixes from the base state over the last gate_window events,
 * bit for bit; with the gate window shorter than the history. */
static void test_bank_request(void **state)
{
    (void)state;
    fixture f;
    fx_new(&f, "sasrec", 1);
    assert_int_equal(recsys_opts_set(f.o, "adapter.gate_window", "6"), RECSYS_OK);
    rs_rng rng;
    rs_rng_seed(&rng, 31);
    recsys_adapter *bank = NULL, *user = NULL;
    assert_int_equal(recsys_adapter_new(f.ctx, f.m, f.o, RECSYS_ADAPTER_BANK, &bank), RECSYS_OK);
    for (size_t i = 0; i < bank->n_params; i++) bank->params[i] = (float)(0.3 * urand(&rng));
    user = random_adapter(&f, RECSYS_ADAPTER_USER, &rng);
    assert_int_equal(bank->P, user->P);
    recsys_session *s = NULL;
    assert_int_equal(recsys_session_new(f.ctx, f.m, &s), RECSYS_OK);
    int32_t hist[11];
    int64_t times[11];
    random_history(&rng, f.n_items, hist, times, 11);
    size_t d = (size_t)f.m->cfg.dim, N1 = (size_t)f.n_items + 1;
    /* the gate's input: the base user vector over the last 6 events */
    float *h = malloc(sizeof(float) * d), *alpha = malloc(sizeof(float) * (size_t)bank->K);
    recsys_request g = RECSYS_REQUEST_INIT;
    g.history = hist + 5;
    g.n_history = 6;
    assert_int_equal(recsys_session_user_vector(s, &g, h, d), RECSYS_OK);
    rs_gate_ws gw;
    assert_int_equal(rs_gate_ws_init(&gw, &bank->gate, 1), RECSYS_OK);
    rs_gate_fwd(f.ctx, &bank->gate, bank->params + (size_t)bank->K * bank->P, &gw, 1, h, (int)d,
                0, 0, NULL, alpha);
    rs_bank_mix(f.ctx, 1, bank->K, bank->P, alpha, bank->params, user->params);
    rs_gate_ws_release(&gw);
    float *sb = malloc(sizeof(float) * N1), *su = malloc(sizeof(float) * N1);
    float *base = malloc(sizeof(float) * N1);
    recsys_request r = RECSYS_REQUEST_INIT;
    r.history = hist;
    r.n_history = 11;
    assert_int_equal(recsys_session_score_request(s, &r, base, N1), RECSYS_OK);
    r.adapter = bank;
    assert_int_equal(recsys_session_score_request(s, &r, sb, N1), RECSYS_OK);
    r.adapter = user;
    assert_int_equal(recsys_session_score_request(s, &r, su, N1), RECSYS_OK);
    assert_memory_equal(sb, su, sizeof(float) * N1);
    assert_true(max_diff(sb, base, N1) > 1e-3);
    free(sb);
    free(su);
    free(base);
    free(h);
    free(alpha);
    recsys_session_free(s);
    recsys_adapter_free(bank);
    recsys_adapter_free(user);
    fx_free(&f);
}

/* 150 requests (more than one encode batch), each with its own USER
 * adapter, a SHARED one, a BANK, none, or one of another rank (a shape
 * change splits the batch): topk_batch on two threads == one topk_request
 * each, bit for bit. */
static void test_mixed_batch_bitwise(void **state)
{
    (void)state;
    enum { NR = 150, K = 7, NA = 40 };
    fixture f;
    fx_new(&f, "sasrec", 2);
    rs_rng rng;
    rs_rng_seed(&rng, 17);
    recsys_adapter *ad[NA + 3];
    for (int i = 0; i < NA; i++) ad[i] = random_adapter(&f, RECSYS_ADAPTER_USER, &rng);
    ad[NA] = random_adapter(&f, RECSYS_ADAPTER_SHARED, &rng);
    ad[NA + 2] = random_adapter(&f, RECSYS_ADAPTER_BANK, &rng);
    assert_int_equal(recsys_opts_set(f.o, "adapter.rank", "2"), RECSYS_OK);
    ad[NA + 1] = random_adapter(&f, RECSYS_ADAPTER_USER, &rng);
    int32_t *hist = malloc(sizeof(int32_t) * NR * 30);
    int64_t *times = malloc(sizeof(int64_t) * NR * 30);
    recsys_request reqs[NR];
    const recsys_request *ptrs[NR];
    for (int i = 0; i < NR; i++) {
        size_t n = 1 + rs_rng_below(&rng, 29);
        random_history(&rng, f.n_items, hist + i * 30, times + i * 30, n);
        recsys_request r = RECSYS_REQUEST_INIT;
        r.history = hist + i * 30;
        r.times = times + i * 30;
        r.n_history = n;
        r.k = 1 + i % K;
        r.exclude_history = i % 2;
        int pick = i % 11;
        r.adapter = pick == 0 ? NULL : pick == 1 ? ad[NA] : pick == 2 ? ad[NA + 1]
                  : pick == 3 ? ad[NA + 2] : ad[rs_rng_below(&rng, NA)];
        if (i >= 20 && i < 30) r.adapter = ad[3]; /* a run of one adapter: one segment */
        reqs[i] = r;
        ptrs[i] = &reqs[i];
    }
    recsys_session *s = NULL;
    assert_int_equal(recsys_session_new(f.ctx, f.m, &s), RECSYS_OK);
    int32_t items[NR * K], one_items[K];
    float scores[NR * K], one_scores[K];
    size_t got[NR], one_got;
    assert_int_equal(recsys_session_topk_batch(s, ptrs, NR, K, items, scores, got), RECSYS_OK);
    int differs = 0;
    for (int i = 0; i < NR; i++) {
        assert_int_equal(recsys_session_topk_request(s, &reqs[i], one_items, one_scores, &one_got),
                         RECSYS_OK);
        assert_int_equal(one_got, got[i]);
        assert_memory_equal(one_items, items + i * K, sizeof(int32_t) * got[i]);
        assert_memory_equal(one_scores, scores + i * K, sizeof(float) * got[i]);
        if (reqs[i].adapter) { /* and the adapter changed this request's ranking */
            recsys_request b = reqs[i];
            b.adapter = NULL;
            assert_int_equal(recsys_session_topk_request(s, &b, one_items, one_scores, &one_got),
                             RECSYS_OK);
            differs += memcmp(one_scores, scores + i * K, sizeof(float) * got[i]) != 0;
        }
    }
    assert_true(differs > NR / 2);
    recsys_session_free(s);
    for (int i = 0; i < NA + 3; i++) recsys_adapter_free(ad[i]);
    free(hist);
    free(times);
    fx_free(&f);
}

/* Another model's adapter (a plain or a BANK one): RECSYS_E_INVALID
 * naming the request, nothing written. A caller built before the adapter field (a
 * smaller struct_size) gets the base model whatever follows its struct. */
static void test_adapter_rejected(void **state)
{
    (void)state;
    fixture f, g;
    fx_new(&f, "sasrec", 1);
    fx_new(&g, "sasrec", 1); /* same shape and data, another model object */
    rs_rng rng;
    rs_rng_seed(&rng, 23);
    recsys_adapter *other = random_adapter(&g, RECSYS_ADAPTER_USER, &rng);
    recsys_adapter *bank = NULL;
    assert_int_equal(recsys_adapter_new(g.ctx, g.m, g.o, RECSYS_ADAPTER_BANK, &bank), RECSYS_OK);
    recsys_session *s = NULL;
    assert_int_equal(recsys_session_new(f.ctx, f.m, &s), RECSYS_OK);
    int32_t hist[4] = {1, 2, 3, 4};
    recsys_request good = RECSYS_REQUEST_INIT, bad = RECSYS_REQUEST_INIT;
    good.history = bad.history = hist;
    good.n_history = bad.n_history = 4;
    good.k = bad.k = 3;
    bad.adapter = other;
    const recsys_request *ptrs[2] = {&good, &bad};
    int32_t items[6] = {-1, -1, -1, -1, -1, -1};
    size_t N1 = (size_t)f.n_items + 1;
    float *sc = malloc(sizeof(float) * N1), *sc2 = malloc(sizeof(float) * N1);
    assert_int_equal(recsys_session_topk_batch(s, ptrs, 2, 3, items, NULL, NULL), RECSYS_E_INVALID);
    assert_non_null(strstr(recsys_last_errmsg(), "request 1"));
    assert_non_null(strstr(recsys_last_errmsg(), "another model"));
    assert_int_equal(items[0], -1);
    assert_int_equal(recsys_session_score_request(s, &bad, sc, N1), RECSYS_E_INVALID);
    assert_int_equal(recsys_session_user_vector(s, &bad, sc, N1), RECSYS_E_INVALID);
    bad.adapter = bank;
    assert_int_equal(recsys_session_topk_request(s, &bad, items, NULL, NULL), RECSYS_E_INVALID);
    assert_non_null(strstr(recsys_last_errmsg(), "another model"));
    /* an old caller's struct ends before .adapter: the field is not read */
    bad.adapter = (const recsys_adapter *)(uintptr_t)0x1; /* would crash if read */
    bad.struct_size = offsetof(recsys_request, adapter);
    assert_int_equal(recsys_session_score_request(s, &bad, sc, N1), RECSYS_OK);
    assert_int_equal(recsys_session_score_request(s, &good, sc2, N1), RECSYS_OK);
    assert_memory_equal(sc, sc2, sizeof(float) * N1);
    free(sc);
    free(sc2);
    recsys_session_free(s);
    recsys_adapter_free(other);
    recsys_adapter_free(bank);
    fx_free(&g);
    fx_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_equals_fold_sasrec),
        cmocka_unit_test(test_request_equals_fold_hstu),
        cmocka_unit_test(test_adapter_window),
        cmocka_unit_test(test_bank_request),
        cmocka_unit_test(test_mixed_batch_bitwise),
        cmocka_unit_test(test_adapter_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
