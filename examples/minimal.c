/* The smallest complete use of librecsys: train SASRec on the embedded
 * synthetic data, evaluate it, and recommend for one user.
 * Build against an installed library:
 *     cc minimal.c $(pkg-config --cflags --libs librecsys) -o minimal */
#include <librecsys/recsys.h>
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

int main(void)
{
    recsys_ctx *ctx = NULL;
    recsys_opts *opts;
    recsys_dataset *ds;
    recsys_model *model;
    recsys_trainer *trainer;
    recsys_metrics *metrics;
    recsys_session *session;
    if (recsys_ctx_new(&ctx) != RECSYS_OK) return 1;
    CHECK(recsys_opts_new(ctx, &opts));
    CHECK(recsys_opts_set(opts, "data.synthetic_users", "500"));
    CHECK(recsys_opts_set(opts, "model.max_len", "20"));
    CHECK(recsys_opts_set(opts, "model.dim", "16"));
    CHECK(recsys_dataset_synthetic(ctx, opts, &ds));
    CHECK(recsys_model_new(ctx, opts, ds, &model));
    CHECK(recsys_trainer_new(ctx, model, ds, opts, &trainer));
    for (int epoch = 1; epoch <= 3; epoch++) {
        double loss;
        CHECK(recsys_trainer_run_epoch(trainer, &loss));
        printf("epoch %d loss %.4f\n", epoch, loss);
    }
    CHECK(recsys_evaluate(ctx, model, ds, opts, &metrics));
    double hr, ndcg;
    CHECK(recsys_metrics_get(metrics, "HR@10", &hr));
    CHECK(recsys_metrics_get(metrics, "NDCG@10", &ndcg));
    printf("validation HR@10 %.3f NDCG@10 %.3f\n", hr, ndcg);

    const int32_t *items;
    size_t n;
    CHECK(recsys_dataset_user_items(ds, 0, &items, NULL, &n));
    int32_t top[5];
    float scores[5];
    CHECK(recsys_session_new(ctx, model, &session));
    CHECK(recsys_session_topk(session, items, n, 5, 1, top, scores));
    printf("top 5 for user 0:");
    for (int i = 0; i < 5; i++) printf(" %d (%.2f)", top[i], scores[i]);
    printf("\n");

    recsys_session_free(session);
    recsys_metrics_free(metrics);
    recsys_trainer_free(trainer);
    recsys_model_free(model);
    recsys_dataset_free(ds);
    recsys_opts_free(opts);
    recsys_ctx_free(ctx);
    return 0;
}
