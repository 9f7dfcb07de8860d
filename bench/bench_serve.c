/* Serving latency and throughput at the ML-1M sizes (3,706 items, history
 * 200, d = 50, 2 blocks): top-10 for one user on one core (median, p99),
 * and a batch of 1,024 users against 1,024 single calls on the same
 * threads (fastest of 3 runs each), and appending one event to a user state
 * of 200 then re-ranking. Weights are random (latency does not depend on
 * them). Prints one JSON line per measurement.
 * Usage: bench_serve [sasrec|hstu] [threads] [full|start]
 * "full" makes the session run the full forward (every position in every
 * block, the path before the last-position forward) for a comparison in
 * the same run; it is the only use of an internal call here.
 * "start" makes the model with model.positions = start and adds
 * append_cached: a user state of 150 events gets 50 more one at a time,
 * each followed by recsys_session_topk_state (keys and values cached;
 * histories 151-200), 40 rounds; and cache_fill: the first re-rank of a
 * state loaded with 200 events (every row encoded by the cached path). */
#include <librecsys/recsys.h>

#include "serve/serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_time.h"

#define CHECK(x) do { recsys_status st_ = (x); if (st_) { \
    fprintf(stderr, "%s: %s (%s)\n", #x, recsys_ctx_errmsg(ctx), recsys_status_str(st_)); \
    return 1; } } while (0)

int main(int argc, char **argv)
{
    const char *type = argc > 1 ? argv[1] : "sasrec";
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    recsys_ctx *ctx;
    recsys_opts *o;
    recsys_dataset *ds;
    recsys_model *m;
    recsys_session *s;
    if (recsys_ctx_new_with_threads(threads, &ctx)) return 1;
    CHECK(recsys_opts_new(ctx, &o));
    CHECK(recsys_opts_set(o, "data.synthetic_users", "1100"));
    CHECK(recsys_opts_set(o, "data.synthetic_items", "3706"));
    CHECK(recsys_opts_set(o, "data.synthetic_length", "205"));
    CHECK(recsys_opts_set(o, "model.type", type));
    CHECK(recsys_opts_set(o, "model.max_len", "200"));
    CHECK(recsys_opts_set(o, "model.dim", "50"));
    CHECK(recsys_opts_set(o, "model.blocks", "2"));
    CHECK(recsys_opts_set(o, "model.heads", "1"));
    int start = argc > 3 && !strcmp(argv[3], "start");
    if (start) CHECK(recsys_opts_set(o, "model.positions", "start"));
    CHECK(recsys_dataset_synthetic(ctx, o, &ds));
    CHECK(recsys_model_new(ctx, o, ds, &m));
    CHECK(recsys_session_new(ctx, m, &s));
    int full = argc > 3 && !strcmp(argv[3], "full");
    if (full) rs_session_set_last_only(s, 0);
    recsys_model_info info = {.struct_size = sizeof info};
    recsys_model_info_get(m, &info);
    enum { NU = 1024, K = 10 };
    static recsys_request reqs[NU];
    static const recsys_request *ptrs[NU];
    for (int u = 0; u < NU; u++) {
        const int32_t *items;
        const int64_t *times;
        size_t n;
        CHECK(recsys_dataset_user_items(ds, u, &items, &times, &n));
        recsys_request q = RECSYS_REQUEST_INIT;
        q.history = items;
        q.times = times;
        q.n_history = n > 200 ? 200 : n;
        q.k = K;
        q.exclude_history = 1;
        reqs[u] = q;
        ptrs[u] = &reqs[u];
    }
    int32_t items[K];
    float scores[K];
    size_t got;
    /* single-user latency */
    int reps = 2000;
    double *lat = malloc(sizeof *lat * (size_t)reps);
    for (int i = 0; i < 50; i++) CHECK(recsys_session_topk_request(s, &reqs[i], items, scores, &got));
    for (int i = 0; i < reps; i++) {
        double t0 = bench_now();
        CHECK(recsys_session_topk_request(s, &reqs[i % NU], items, scores, &got));
        lat[i] = bench_now() - t0;
    }
    qsort(lat, (size_t)reps, sizeof *lat, bench_cmp_double);
    printf("{\"bench\": \"topk_single\", \"model\": \"%s\", \"threads\": %d, \"n_items\": %d, "
           "\"history\": 200, \"median_us\": %.1f, \"p99_us\": %.1f, \"time_bias\": %d, "
           "\"forward\": \"%s\", \"positions\": \"%s\"}\n",
           type, threads, (int)info.n_items, 1e6 * lat[reps / 2], 1e6 * lat[reps * 99 / 100],
           info.time_bias, full ? "full" : "last", start ? "start" : "end");
    if (start) { /* append with cached keys and values, histories 151-200 */
        recsys_user_state *us;
        CHECK(recsys_user_state_new(m, &us));
        const recsys_request *r0 = &reqs[0];
        recsys_request q = RECSYS_REQUEST_INIT;
        q.k = K;
        q.exclude_history = 1;
        int n = 0;
        double *fill = malloc(sizeof *fill * 40);
        for (int round = 0; round < 40; round++) {
            CHECK(recsys_user_state_clear(us));
            for (size_t i = 0; i < r0->n_history; i++) /* 200 events, then one re-rank */
                CHECK(recsys_user_state_append(us, r0->history[i], r0->times ? r0->times[i] : 0));
            double t0 = bench_now();
            CHECK(recsys_session_topk_state(s, us, &q, items, scores, &got));
            fill[round] = bench_now() - t0;
            CHECK(recsys_user_state_clear(us));
            for (size_t i = 0; i < 150; i++)
                CHECK(recsys_user_state_append(us, r0->history[i], r0->times ? r0->times[i] : 0));
            CHECK(recsys_session_topk_state(s, us, &q, items, scores, &got));
            for (size_t i = 150; i < 200; i++) {
                t0 = bench_now();
                CHECK(recsys_user_state_append(us, r0->history[i], r0->times ? r0->times[i] : 0));
                CHECK(recsys_session_topk_state(s, us, &q, items, scores, &got));
                lat[n++] = bench_now() - t0;
            }
        }
        qsort(lat, (size_t)n, sizeof *lat, bench_cmp_double);
        qsort(fill, 40, sizeof *fill, bench_cmp_double);
        size_t bytes = 0;
        recsys_user_state_bytes(us, &bytes);
        printf("{\"bench\": \"append_cached\", \"model\": \"%s\", \"threads\": %d, "
               "\"history\": \"151-200\", \"median_us\": %.1f, \"p99_us\": %.1f, "
               "\"state_bytes\": %zu, \"cache_fill_200_median_us\": %.1f}\n",
               type, threads, 1e6 * lat[n / 2], 1e6 * lat[n * 99 / 100], bytes,
               1e6 * fill[20]);
        free(fill);
        recsys_user_state_free(us);
    }
    /* incremental: append one event to a user state holding 200, re-rank */
    {
        recsys_user_state *us;
        CHECK(recsys_user_state_new(m, &us));
        const recsys_request *r0 = &reqs[0];
        int64_t t = 0;
        for (size_t i = 0; i < r0->n_history; i++) {
            t = r0->times ? r0->times[i] : 0;
            CHECK(recsys_user_state_append(us, r0->history[i], t));
        }
        for (int i = 0; i < reps; i++) {
            double t0 = bench_now();
            CHECK(recsys_user_state_append(us, 1 + (int32_t)(i * 7919) % info.n_items, ++t));
            recsys_request q = RECSYS_REQUEST_INIT;
            q.k = K;
            q.exclude_history = 1;
            CHECK(recsys_user_state_request(us, &q));
            CHECK(recsys_session_topk_request(s, &q, items, scores, &got));
            lat[i] = bench_now() - t0;
        }
        qsort(lat, (size_t)reps, sizeof *lat, bench_cmp_double);
        size_t bytes = 0;
        recsys_user_state_bytes(us, &bytes);
        printf("{\"bench\": \"append_rerank\", \"model\": \"%s\", \"threads\": %d, "
               "\"history\": 200, \"median_us\": %.1f, \"p99_us\": %.1f, \"state_bytes\": %zu}\n",
               type, threads, 1e6 * lat[reps / 2], 1e6 * lat[reps * 99 / 100], bytes);
        recsys_user_state_free(us);
    }
    /* 1,024 single calls vs one batch call */
    /* Each side is timed 3 times and the fastest run kept: on a shared
     * machine the minimum is the least disturbed run. */
    double single = 1e30, t0;
    for (int r = 0; r < 3; r++) {
        t0 = bench_now();
        for (int u = 0; u < NU; u++)
            CHECK(recsys_session_topk_request(s, &reqs[u], items, scores, &got));
        double el = bench_now() - t0;
        if (el < single) single = el;
    }
    int32_t *bi = malloc(sizeof *bi * NU * K);
    float *bs = malloc(sizeof *bs * NU * K);
    size_t *bn = malloc(sizeof *bn * NU);
    CHECK(recsys_session_topk_batch(s, ptrs, NU, K, bi, bs, bn)); /* warm-up */
    double batch = 1e30;
    for (int r = 0; r < 3; r++) {
        t0 = bench_now();
        CHECK(recsys_session_topk_batch(s, ptrs, NU, K, bi, bs, bn));
        double el = bench_now() - t0;
        if (el < batch) batch = el;
    }
    printf("{\"bench\": \"batch_vs_single\", \"model\": \"%s\", \"threads\": %d, \"users\": %d, "
           "\"single_users_per_s\": %.0f, \"batch_users_per_s\": %.0f, \"ratio\": %.2f}\n",
           type, threads, NU, NU / single, NU / batch, single / batch);
    free(lat);
    free(bi);
    free(bs);
    free(bn);
    recsys_session_free(s);
    recsys_model_free(m);
    recsys_dataset_free(ds);
    recsys_opts_free(o);
    recsys_ctx_free(ctx);
    return 0;
}
