/* A server's view of incremental scoring: keep one recsys_user_state per
 * user, append each new event, re-rank with recsys_session_topk_state.
 * The model is trained with model.positions = start, so each re-rank
 * encodes only the new event against the keys and values the state keeps
 * (docs/SERVING.md, "Incremental scoring"). The example also checks every
 * re-rank against a request carrying the user's whole history.
 * Build against an installed library:
 *     cc incremental.c $(pkg-config --cflags --libs librecsys) -lm -o incremental */
#include <librecsys/recsys.h>

#include <math.h>
#include <stdio.h>

#define CHECK(call)                                                              \
    do {                                                                         \
        recsys_status st_ = (call);                                              \
        if (st_ != RECSYS_OK) {                                                  \
            fprintf(stderr, "%s failed: %s (%s)\n", #call, recsys_ctx_errmsg(ctx), \
                    recsys_status_str(st_));                                     \
            return 1;                                                            \
        }                                                                        \
    } while (0)

enum { USERS = 3, K = 5 };

int main(void)
{
    recsys_ctx *ctx = NULL;
    recsys_opts *opts;
    recsys_dataset *ds;
    recsys_model *model;
    recsys_trainer *trainer;
    recsys_session *session;
    recsys_user_state *state[USERS];
    if (recsys_ctx_new_with_threads(1, &ctx) != RECSYS_OK) return 1;
    CHECK(recsys_opts_new(ctx, &opts));
    CHECK(recsys_opts_set(opts, "data.synthetic_users", "300"));
    CHECK(recsys_opts_set(opts, "model.max_len", "50"));
    CHECK(recsys_opts_set(opts, "model.dim", "16"));
    CHECK(recsys_opts_set(opts, "model.positions", "start"));
    CHECK(recsys_dataset_synthetic(ctx, opts, &ds));
    CHECK(recsys_model_new(ctx, opts, ds, &model));
    CHECK(recsys_trainer_new(ctx, model, ds, opts, &trainer));
    CHECK(recsys_trainer_run_epoch(trainer, NULL));
    CHECK(recsys_session_new(ctx, model, &session));
    for (int u = 0; u < USERS; u++) CHECK(recsys_user_state_new(model, &state[u]));

    /* Replay the first 30 events of each user as they would arrive. */
    double worst = 0;
    for (int e = 0; e < 30; e++) {
        for (int u = 0; u < USERS; u++) {
            const int32_t *items;
            const int64_t *times;
            size_t n;
            CHECK(recsys_dataset_user_items(ds, u, &items, &times, &n));
            if ((size_t)e >= n) continue;
            CHECK(recsys_user_state_append(state[u], items[e], times ? times[e] : 0));
            recsys_request q = RECSYS_REQUEST_INIT; /* no history: the state has it */
            q.k = K;
            q.exclude_history = 1;
            int32_t top[K], ref_top[K];
            float scores[K], ref_scores[K];
            size_t got = 0, ref_got = 0;
            CHECK(recsys_session_topk_state(session, state[u], &q, top, scores, &got));
            /* the same ranking from the whole history, sent as a request */
            q.history = items;
            q.times = times;
            q.n_history = (size_t)e + 1;
            CHECK(recsys_session_topk_request(session, &q, ref_top, ref_scores, &ref_got));
            for (size_t i = 0; i < got && i < ref_got; i++) {
                double d = fabs((double)scores[i] - ref_scores[i]);
                if (d > worst) worst = d;
            }
            if (e == 29) {
                printf("user %d after %d events:", u, e + 1);
                for (size_t i = 0; i < got; i++) printf(" %d (%.3f)", top[i], scores[i]);
                printf("\n");
            }
        }
    }
    size_t bytes = 0;
    CHECK(recsys_user_state_bytes(state[0], &bytes));
    printf("state of one user: %zu bytes; largest score difference to the full history: %.2g\n",
           bytes, worst);

    for (int u = 0; u < USERS; u++) recsys_user_state_free(state[u]);
    recsys_session_free(session);
    recsys_trainer_free(trainer);
    recsys_model_free(model);
    recsys_dataset_free(ds);
    recsys_opts_free(opts);
    recsys_ctx_free(ctx);
    return worst <= 1e-4 ? 0 : 1;
}
