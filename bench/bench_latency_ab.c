/* Single-request latency through the public API only, so that one binary
 * can time two builds of the library in turn (LD_LIBRARY_PATH picks the
 * librecsys.so.0 it loads): on a machine whose speed drifts, alternating
 * old and new runs is the fair comparison (docs/BENCHMARKS.md, "Serving").
 *
 * Usage: bench_latency_ab sasrec|hstu single|append [reps]
 *   single: top-10 of a history of 200 (the ML-1M sizes of bench_serve,
 *           positions from the end), history excluded;
 *   append: a model positioned from the start, a user state of 199 events
 *           re-ranked by recsys_session_topk_state again and again: each
 *           call re-encodes the newest row against the cached keys and
 *           values, the work of an append (HSTU with the time bias
 *           re-encodes two rows per real append: a lower bound there;
 *           bench_serve's append_cached appends for real).
 * Prints the median in µs. */
#include <librecsys/recsys.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_time.h"

#define CHECK(x) do { recsys_status st_ = (x); if (st_) { \
    fprintf(stderr, "%s: %s (%s)\n", #x, recsys_ctx_errmsg(ctx), recsys_status_str(st_)); \
    return 1; } } while (0)

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_latency_ab sasrec|hstu single|append [reps]\n");
        return 2;
    }
    int append = !strcmp(argv[2], "append"), reps = argc > 3 ? atoi(argv[3]) : 3000;
    if (reps < 1) reps = 1;
    recsys_ctx *ctx;
    recsys_opts *o;
    recsys_dataset *ds;
    recsys_model *m;
    recsys_session *s;
    recsys_user_state *u;
    if (recsys_ctx_new_with_threads(1, &ctx)) return 1;
    CHECK(recsys_opts_new(ctx, &o));
    CHECK(recsys_opts_set(o, "data.synthetic_users", "200"));
    CHECK(recsys_opts_set(o, "data.synthetic_items", "3706"));
    CHECK(recsys_opts_set(o, "data.synthetic_length", "205"));
    CHECK(recsys_opts_set(o, "model.type", argv[1]));
    CHECK(recsys_opts_set(o, "model.max_len", "200"));
    CHECK(recsys_opts_set(o, "model.dim", "50"));
    if (append) CHECK(recsys_opts_set(o, "model.positions", "start"));
    CHECK(recsys_dataset_synthetic(ctx, o, &ds));
    CHECK(recsys_model_new(ctx, o, ds, &m));
    CHECK(recsys_session_new(ctx, m, &s));
    CHECK(recsys_user_state_new(m, &u));
    const int32_t *items;
    const int64_t *times;
    size_t n;
    CHECK(recsys_dataset_user_items(ds, 0, &items, &times, &n));
    if (n < 200) {
        fprintf(stderr, "user 0 has %zu events, 200 needed\n", n);
        return 1;
    }
    for (int i = 0; i < 199; i++) CHECK(recsys_user_state_append(u, items[i], times ? times[i] : 0));
    recsys_request q = RECSYS_REQUEST_INIT;
    q.k = 10;
    q.exclude_history = 1;
    recsys_request full = q;
    full.history = items;
    full.times = times;
    full.n_history = 200;
    int32_t top[10];
    float sc[10];
    size_t got;
    double *lat = malloc(sizeof *lat * (size_t)reps);
    for (int i = -50; i < reps; i++) { /* 50 warm-up calls */
        double t0 = bench_now();
        if (append) CHECK(recsys_session_topk_state(s, u, &q, top, sc, &got));
        else CHECK(recsys_session_topk_request(s, &full, top, sc, &got));
        if (i >= 0) lat[i] = bench_now() - t0;
    }
    qsort(lat, (size_t)reps, sizeof *lat, bench_cmp_double);
    printf("%.1f\n", 1e6 * lat[reps / 2]);
    free(lat);
    recsys_user_state_free(u);
    recsys_session_free(s);
    recsys_model_free(m);
    recsys_dataset_free(ds);
    recsys_opts_free(o);
    recsys_ctx_free(ctx);
    return 0;
}
