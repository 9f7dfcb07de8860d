/* User states with cached keys and values (lib/serve/user_state.c,
 * lib/models/extend.c): for models positioned from the start of the window,
 * re-ranking after an append encodes only the new rows, and must give the
 * scores of the whole history encoded by the model's forward. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "models/model.h"
#include "serve/serve.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_ITEMS 40

/* A blank model positioned from the start. HSTU's relative biases start
 * near zero; they are set to sizeable values so that a wrong position or
 * time bucket moves the scores well beyond the tolerance. */
static recsys_model *make_model(recsys_ctx *ctx, const char *type, const char *norm,
                                const char *time_bias, int heads, int max_len, unsigned seed)
{
    recsys_opts *o;
    assert_int_equal(recsys_opts_new(ctx, &o), RECSYS_OK);
    recsys_opts_set(o, "model.type", type);
    recsys_opts_set(o, "model.norm", norm);
    recsys_opts_set(o, "model.time_bias", time_bias);
    recsys_opts_set(o, "model.positions", "start");
    recsys_opts_set_int(o, "model.heads", heads);
    recsys_opts_set_int(o, "model.dim", 12);
    recsys_opts_set_int(o, "model.max_len", max_len);
    recsys_opts_set_int(o, "model.blocks", 3);
    recsys_model *m;
    assert_int_equal(recsys_model_new_blank(ctx, o, N_ITEMS, &m), RECSYS_OK);
    recsys_opts_free(o);
    const rs_model_config *c = &m->cfg;
    assert_true(c->pos_from_start);
    recsys_model_info info = {.struct_size = sizeof info};
    assert_int_equal(recsys_model_info_get(m, &info), RECSYS_OK);
    assert_int_equal(info.positions_from_start, 1);
    for (size_t i = 0; seed && i < m->n_params; i++) /* another model of the same shape */
        m->params[i] += 0.05f * sinf((float)(i * seed));
    /* rab_pos [blocks x (2L-1)], rab_time [blocks x 129], through the
     * public tensor API (before any session holds the model) */
    int count = 0;
    assert_int_equal(recsys_model_tensor_count(m, &count), RECSYS_OK);
    for (int t = 0; t < count; t++) {
        const char *name;
        int ndim;
        int64_t shape[RECSYS_TENSOR_MAX_DIMS], n;
        assert_int_equal(recsys_model_tensor_info(m, t, &name, &ndim, shape, &n), RECSYS_OK);
        int pos = !strcmp(name, "rab_pos");
        if (!pos && strcmp(name, "rab_time")) continue;
        float *v = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) {
            int k = (int)(i / shape[1]), j = (int)(i % shape[1]);
            v[i] = pos ? 0.4f * sinf(0.7f * (float)(j + k))
                       : 0.5f * cosf(0.3f * (float)(j + 2 * k));
        }
        assert_int_equal(recsys_model_set_tensor(ctx, m, name, v, (size_t)n), RECSYS_OK);
        free(v);
    }
    return m;
}

static int32_t item_of(int e) { return 1 + (e * 17 + e / 3) % N_ITEMS; }
static int64_t time_of(int e) { return 1000 + (int64_t)e * e * 911 + (e % 5) * 37; }

/* max |a - b| / (1 + |b|) over items 1..n. */
static double worst_diff(const float *a, const float *b, int32_t n)
{
    double w = 0;
    for (int32_t i = 1; i <= n; i++) {
        double e = fabs((double)a[i] - (double)b[i]) / (1.0 + fabs((double)b[i]));
        if (e > w) w = e;
    }
    return w;
}

/* The state's scores against the whole history's, after every append,
 * through the window filling up (cached) and sliding (forward). */
static void cached_case(const char *type, const char *norm, const char *time_bias, int heads)
{
    recsys_ctx *ctx = new_ctx(1);
    int L = 70; /* the first load spans two RS_EXTEND_ROWS chunks */
    recsys_model *m = make_model(ctx, type, norm, time_bias, heads, L, 0);
    recsys_session *s;
    recsys_user_state *u;
    assert_int_equal(recsys_session_new(ctx, m, &s), RECSYS_OK);
    assert_int_equal(recsys_user_state_new(m, &u), RECSYS_OK);
    size_t window_bytes = 0, bytes = 0;
    assert_int_equal(recsys_user_state_bytes(u, &window_bytes), RECSYS_OK);
    float *a = malloc(sizeof(float) * (N_ITEMS + 1)), *b = malloc(sizeof(float) * (N_ITEMS + 1));
    int32_t h[80];
    int64_t ht[80];
    /* a first batch of events encoded at once (several chunks), then one
     * event at a time */
    int first = 67, total = L + 9;
    for (int e = 0; e < total; e++) {
        h[e] = item_of(e);
        ht[e] = time_of(e);
        assert_int_equal(recsys_user_state_append(u, h[e], ht[e]), RECSYS_OK);
        if (e + 1 < first) continue;
        recsys_request q = RECSYS_REQUEST_INIT;
        assert_int_equal(recsys_session_score_state(s, u, &q, a, N_ITEMS + 1), RECSYS_OK);
        recsys_request full = RECSYS_REQUEST_INIT;
        full.history = h;
        full.times = ht;
        full.n_history = (size_t)(e + 1);
        assert_int_equal(recsys_session_score_request(s, &full, b, N_ITEMS + 1), RECSYS_OK);
        double w = worst_diff(a, b, N_ITEMS);
        if (w > 1e-5)
            fail_msg("%s/%s/time %s/heads %d: after %d events the cached state differs by %.3g",
                     type, norm, time_bias, heads, e + 1, w);
        /* the cache is kept while the window fills, dropped once it slides */
        assert_int_equal(recsys_user_state_bytes(u, &bytes), RECSYS_OK);
        if (e + 1 <= L) assert_true(bytes > window_bytes);
        else assert_int_equal(bytes, window_bytes);
        /* top-k through the state: the same items and scores */
        int32_t ia[5], ib[5];
        float sa[5], sb[5];
        size_t na = 0, nb = 0;
        q.k = 5;
        full.k = 5; /* the window is the history until it slides */
        q.exclude_history = full.exclude_history = e + 1 <= L;
        assert_int_equal(recsys_session_topk_state(s, u, &q, ia, sa, &na), RECSYS_OK);
        assert_int_equal(recsys_session_topk_request(s, &full, ib, sb, &nb), RECSYS_OK);
        assert_int_equal(na, nb);
        for (size_t i = 0; i < na; i++)
            assert_true(fabsf(sa[i] - sb[i]) <= 1e-5f * (1 + fabsf(sb[i])));
    }
    free(a);
    free(b);
    recsys_user_state_free(u);
    recsys_session_free(s);
    recsys_model_free(m);
    recsys_ctx_free(ctx);
}

static void test_cached_sasrec(void **state)
{
    (void)state;
    cached_case("sasrec", "original", "off", 1);
    cached_case("sasrec", "post", "off", 2);
    cached_case("sasrec", "pre", "off", 3);
}

static void test_cached_hstu(void **state)
{
    (void)state;
    cached_case("hstu", "original", "on", 1);
    cached_case("hstu", "original", "on", 3);
    cached_case("hstu", "original", "off", 2);
}

/* A state used with a session on another model (a server that reloaded
 * its model) re-encodes its window with the new weights. */
static void test_cache_follows_the_model(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(1);
    recsys_model *m1 = make_model(ctx, "hstu", "original", "on", 2, 16, 1);
    recsys_model *m2 = make_model(ctx, "hstu", "original", "on", 2, 16, 2);
    recsys_session *s1, *s2;
    recsys_user_state *u;
    assert_int_equal(recsys_session_new(ctx, m1, &s1), RECSYS_OK);
    assert_int_equal(recsys_session_new(ctx, m2, &s2), RECSYS_OK);
    assert_int_equal(recsys_user_state_new(m1, &u), RECSYS_OK);
    float *a = malloc(sizeof(float) * (N_ITEMS + 1)), *b = malloc(sizeof(float) * (N_ITEMS + 1));
    int32_t h[16];
    int64_t ht[16];
    recsys_request q = RECSYS_REQUEST_INIT;
    for (int e = 0; e < 12; e++) {
        h[e] = item_of(e);
        ht[e] = time_of(e);
        assert_int_equal(recsys_user_state_append(u, h[e], ht[e]), RECSYS_OK);
        assert_int_equal(recsys_session_score_state(e < 6 ? s1 : s2, u, &q, a, N_ITEMS + 1),
                         RECSYS_OK);
    }
    recsys_request full = RECSYS_REQUEST_INIT;
    full.history = h;
    full.times = ht;
    full.n_history = 12;
    assert_int_equal(recsys_session_score_request(s2, &full, b, N_ITEMS + 1), RECSYS_OK);
    assert_true(worst_diff(a, b, N_ITEMS) <= 1e-5);
    assert_int_equal(recsys_session_score_request(s1, &full, b, N_ITEMS + 1), RECSYS_OK);
    assert_true(worst_diff(a, b, N_ITEMS) > 1e-3); /* the models do differ */
    /* clear: the cache goes with the events */
    assert_int_equal(recsys_user_state_clear(u), RECSYS_OK);
    assert_int_equal(recsys_user_state_append(u, 3, 5), RECSYS_OK);
    assert_int_equal(recsys_session_score_state(s2, u, &q, a, N_ITEMS + 1), RECSYS_OK);
    full.n_history = 1;
    h[0] = 3;
    ht[0] = 5;
    assert_int_equal(recsys_session_score_request(s2, &full, b, N_ITEMS + 1), RECSYS_OK);
    assert_true(worst_diff(a, b, N_ITEMS) <= 1e-5);
    free(a);
    free(b);
    recsys_user_state_free(u);
    recsys_session_free(s1);
    recsys_session_free(s2);
    recsys_model_free(m1);
    recsys_model_free(m2);
    recsys_ctx_free(ctx);
}

/* Misuse is an error, not a crash: a request with its own history, NULL
 * handles, an empty state (scores of the empty history, as a request). */
static void test_state_errors(void **state)
{
    (void)state;
    recsys_ctx *ctx = new_ctx(1);
    recsys_model *m = make_model(ctx, "sasrec", "original", "off", 1, 8, 3);
    recsys_session *s;
    recsys_user_state *u;
    assert_int_equal(recsys_session_new(ctx, m, &s), RECSYS_OK);
    assert_int_equal(recsys_user_state_new(m, &u), RECSYS_OK);
    float a[N_ITEMS + 1], b[N_ITEMS + 1];
    int32_t items[3];
    recsys_request q = RECSYS_REQUEST_INIT;
    assert_int_equal(recsys_session_score_state(s, u, &q, a, N_ITEMS + 1), RECSYS_OK);
    assert_int_equal(recsys_session_score_request(s, &q, b, N_ITEMS + 1), RECSYS_OK);
    assert_true(worst_diff(a, b, N_ITEMS) <= 1e-6);
    int32_t own = 4;
    q.history = &own;
    q.n_history = 1;
    assert_int_equal(recsys_session_topk_state(s, u, &q, items, NULL, NULL), RECSYS_E_INVALID);
    q.history = NULL;
    q.n_history = 0;
    assert_int_equal(recsys_session_topk_state(s, NULL, &q, items, NULL, NULL), RECSYS_E_INVALID);
    assert_int_equal(recsys_session_topk_state(s, u, NULL, items, NULL, NULL), RECSYS_E_INVALID);
    assert_int_equal(recsys_session_topk_state(s, u, &q, NULL, NULL, NULL), RECSYS_E_INVALID);
    assert_int_equal(recsys_session_topk_state(NULL, u, &q, items, NULL, NULL), RECSYS_E_INVALID);
    q.k = 0;
    assert_int_equal(recsys_session_topk_state(s, u, &q, items, NULL, NULL), RECSYS_E_INVALID);
    q.k = 3;
    assert_int_equal(recsys_session_topk_state(s, u, &q, items, NULL, NULL), RECSYS_OK);
    recsys_user_state_free(u);
    recsys_session_free(s);
    recsys_model_free(m);
    recsys_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cached_sasrec),
        cmocka_unit_test(test_cached_hstu),
        cmocka_unit_test(test_cache_follows_the_model),
        cmocka_unit_test(test_state_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
