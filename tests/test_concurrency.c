/* Concurrency: one shared model served from several threads, each with its
 * own ctx and session, while other threads evaluate it in parallel (each
 * with its own ctx, and a worker pool of two) and one scores batches on a
 * pool of two (the batch's lanes, lib/serve/session.c) and two more keep
 * user states whose keys and values are cached (the model counts positions
 * from the start). Results must equal the single-threaded ones (the cached
 * states' within float rounding, as everywhere). The suite runs this under ThreadSanitizer too
 * (tools/test.sh, build-tsan). */
#include "librecsys/recsys.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_SERVERS 3
#define N_EVALUATORS 2
#define N_STATES 2
#define ROUNDS 20

static recsys_model *model;
static recsys_dataset *ds;
static recsys_opts *eval_opts;
static float expected[64][41];
static double expected_ndcg;
static int n_items;
enum { TOPK = 5 };
static int32_t expected_items[64][TOPK];
static float expected_top[64][TOPK];

static void history_of(int h, int32_t *hist)
{
    hist[0] = 1 + h % n_items;
    hist[1] = 1 + (h * 3) % n_items;
    hist[2] = 1 + (h * 5) % n_items;
}

static void *serve(void *arg)
{
    long id = (long)arg;
    recsys_ctx *ctx;
    recsys_session *s;
    if (recsys_ctx_new(&ctx) || recsys_ctx_set_threads(ctx, 1) ||
        recsys_session_new(ctx, model, &s))
        return (void *)1;
    void *bad = NULL;
    float scores[41];
    for (int r = 0; r < ROUNDS && !bad; r++) {
        int h = (int)((id * 7 + r) % 64);
        int32_t hist[3];
        history_of(h, hist);
        if (recsys_session_score(s, hist, 3, scores, (size_t)n_items + 1) ||
            memcmp(scores + 1, expected[h] + 1, sizeof(float) * (size_t)n_items))
            bad = (void *)1;
    }
    recsys_session_free(s);
    recsys_ctx_free(ctx);
    return bad;
}

/* Appends the events of a history one at a time to a user state and
 * re-ranks after each through its cache; after the third, the scores must
 * be the history's. */
static void *state_thread(void *arg)
{
    long id = (long)arg;
    recsys_ctx *ctx;
    recsys_session *s;
    recsys_user_state *u;
    if (recsys_ctx_new(&ctx) || recsys_ctx_set_threads(ctx, 1) ||
        recsys_session_new(ctx, model, &s) || recsys_user_state_new(model, &u))
        return (void *)1;
    void *bad = NULL;
    float scores[41];
    for (int r = 0; r < ROUNDS && !bad; r++) {
        int h = (int)((id * 11 + r) % 64);
        int32_t hist[3];
        history_of(h, hist);
        recsys_request q = RECSYS_REQUEST_INIT;
        if (recsys_user_state_clear(u)) bad = (void *)1;
        for (int e = 0; e < 3 && !bad; e++)
            if (recsys_user_state_append(u, hist[e], 0) ||
                recsys_session_score_state(s, u, &q, scores, (size_t)n_items + 1))
                bad = (void *)1;
        for (int i = 1; i <= n_items && !bad; i++)
            if (!(fabsf(scores[i] - expected[h][i]) <= 1e-5f * (1.0f + fabsf(expected[h][i]))))
                bad = (void *)1;
    }
    recsys_user_state_free(u);
    recsys_session_free(s);
    recsys_ctx_free(ctx);
    return bad;
}

static void *batch(void *arg)
{
    (void)arg;
    recsys_ctx *ctx;
    recsys_session *s;
    if (recsys_ctx_new(&ctx) || recsys_ctx_set_threads(ctx, 2) ||
        recsys_session_new(ctx, model, &s))
        return (void *)1;
    static int32_t hist[64][3], items[64][TOPK];
    static float scores[64][TOPK];
    recsys_request reqs[64];
    const recsys_request *ptrs[64];
    for (int h = 0; h < 64; h++) {
        history_of(h, hist[h]);
        recsys_request q = RECSYS_REQUEST_INIT;
        q.history = hist[h];
        q.n_history = 3;
        q.k = TOPK;
        reqs[h] = q;
        ptrs[h] = &reqs[h];
    }
    void *bad = NULL;
    for (int r = 0; r < ROUNDS / 4 && !bad; r++)
        if (recsys_session_topk_batch(s, ptrs, 64, TOPK, &items[0][0], &scores[0][0], NULL) ||
            memcmp(items, expected_items, sizeof items) || memcmp(scores, expected_top, sizeof scores))
            bad = (void *)1;
    recsys_session_free(s);
    recsys_ctx_free(ctx);
    return bad;
}

static void *evaluate(void *arg)
{
    (void)arg;
    recsys_ctx *ctx;
    recsys_metrics *m;
    if (recsys_ctx_new(&ctx) || recsys_ctx_set_threads(ctx, 2)) return (void *)1;
    void *bad = NULL;
    for (int r = 0; r < 2 && !bad; r++) {
        double v = -1;
        if (recsys_evaluate(ctx, model, ds, eval_opts, &m) ||
            recsys_metrics_get(m, "NDCG@10", &v) || v != expected_ndcg)
            bad = (void *)1;
        recsys_metrics_free(m);
    }
    recsys_ctx_free(ctx);
    return bad;
}

int main(void)
{
    recsys_ctx *ctx;
    recsys_opts *o;
    recsys_trainer *t;
    if (recsys_ctx_new(&ctx) || recsys_ctx_set_threads(ctx, 2) || recsys_opts_new(ctx, &o))
        return 1;
    const char *kv[][2] = {{"data.synthetic_users", "80"}, {"data.synthetic_items", "40"},
                           {"data.synthetic_length", "10"}, {"model.max_len", "8"},
                           {"model.dim", "8"}, {"model.blocks", "1"}, {"model.heads", "2"},
                           {"eval.negatives", "20"}, {"model.positions", "start"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (recsys_opts_set(o, kv[i][0], kv[i][1])) return 1;
    if (recsys_dataset_synthetic(ctx, o, &ds) || recsys_model_new(ctx, o, ds, &model) ||
        recsys_trainer_new(ctx, model, ds, o, &t) || recsys_trainer_run_epoch(t, NULL))
        return 1;
    recsys_trainer_free(t);
    eval_opts = o;
    double v;
    recsys_dataset_stat(ds, RECSYS_STAT_ITEMS, &v);
    n_items = (int)v;
    /* Serial references. */
    recsys_session *s;
    recsys_ctx *one;
    if (recsys_ctx_new(&one) || recsys_ctx_set_threads(one, 1) || recsys_session_new(one, model, &s))
        return 1;
    for (int h = 0; h < 64; h++) {
        int32_t hist[3];
        history_of(h, hist);
        if (recsys_session_score(s, hist, 3, expected[h], (size_t)n_items + 1)) return 1;
        recsys_request q = RECSYS_REQUEST_INIT;
        q.history = hist;
        q.n_history = 3;
        q.k = TOPK;
        if (recsys_session_topk_request(s, &q, expected_items[h], expected_top[h], NULL)) return 1;
    }
    recsys_session_free(s);
    recsys_ctx_free(one);
    recsys_metrics *m;
    if (recsys_evaluate(ctx, model, ds, o, &m) || recsys_metrics_get(m, "NDCG@10", &expected_ndcg))
        return 1;
    recsys_metrics_free(m);

    pthread_t th[N_SERVERS + N_EVALUATORS + 1 + N_STATES];
    for (long i = 0; i < N_SERVERS; i++) pthread_create(&th[i], NULL, serve, (void *)i);
    for (long i = 0; i < N_EVALUATORS; i++)
        pthread_create(&th[N_SERVERS + i], NULL, evaluate, NULL);
    pthread_create(&th[N_SERVERS + N_EVALUATORS], NULL, batch, NULL);
    for (long i = 0; i < N_STATES; i++)
        pthread_create(&th[N_SERVERS + N_EVALUATORS + 1 + i], NULL, state_thread, (void *)i);
    int bad = 0;
    for (int i = 0; i < N_SERVERS + N_EVALUATORS + 1 + N_STATES; i++) {
        void *r;
        pthread_join(th[i], &r);
        bad |= r != NULL;
    }
    /* The model outlives the ctx that made it; drop it last. */
    recsys_model_free(model);
    recsys_dataset_free(ds);
    recsys_opts_free(o);
    recsys_ctx_free(ctx);
    printf("concurrency: %d serving threads x %d scores, %d evaluating threads, batches on 2 lanes, "
           "%d threads of cached user states: %s\n", N_SERVERS, ROUNDS, N_EVALUATORS, N_STATES,
           bad ? "MISMATCH" : "identical to serial");
    return bad;
}
