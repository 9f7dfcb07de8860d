/* Allocation-failure injection (built with -Dfault_injection=true only): for
 * every N, the N-th allocation of a scenario fails -- load a data file and a
 * config, build a model and a trainer, train an epoch, save and load a model
 * and a training checkpoint, evaluate under both protocols, score through a
 * session and through a user state whose keys and values are cached (the
 * model counts positions from the start). Each call must return RECSYS_E_NOMEM or complete; after a
 * failure the same call, retried with allocations working, must succeed
 * (objects stay usable); at the end everything is freed (ASan's leak check
 * runs at exit). */
#include "core/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void rs_fi_fail_at(long n);
int rs_fi_triggered(void);
long rs_fi_count(void);

static char dir[64], data_path[128], yaml_path[128], model_path[128], ck_path[128];
static long failures, calls_failed;
static int hit; /* the injected failure happened in this run */

/* Run one call: when it fails, it must be RECSYS_E_NOMEM, and it is retried
 * once with injection off. Aborts the program on a violation. */
#define STEP(call)                                                                         \
    do {                                                                                   \
        recsys_status st_ = (call);                                                        \
        if (st_ != RECSYS_OK) {                                                            \
            if (st_ != RECSYS_E_NOMEM || !rs_fi_triggered()) {                             \
                fprintf(stderr, "N=%ld: %s returned %s (%s)\n", n, #call,                  \
                        recsys_status_str(st_), ctx ? recsys_ctx_errmsg(ctx) : "");        \
                exit(1);                                                                   \
            }                                                                              \
            calls_failed++;                                                                \
            hit = 1;                                                                       \
            rs_fi_fail_at(0);                                                              \
            st_ = (call);                                                                  \
            if (st_ != RECSYS_OK) {                                                        \
                fprintf(stderr, "N=%ld: %s failed again after NOMEM: %s (%s)\n", n, #call, \
                        recsys_status_str(st_), ctx ? recsys_ctx_errmsg(ctx) : "");        \
                exit(1);                                                                   \
            }                                                                              \
        }                                                                                  \
    } while (0)

/* One run of the scenario with the n-th allocation failing; returns 1 when
 * the failure never happened (n is past the last allocation). */
static int scenario(long n)
{
    recsys_ctx *ctx = NULL;
    recsys_opts *o = NULL;
    recsys_dataset *ds = NULL;
    recsys_model *m = NULL, *loaded = NULL;
    recsys_trainer *t = NULL;
    recsys_metrics *met = NULL;
    recsys_session *s = NULL;
    recsys_user_state *u = NULL;
    hit = 0;
    rs_fi_fail_at(n);
    if (recsys_ctx_new(&ctx) != RECSYS_OK) {
        if (!rs_fi_triggered()) exit(1);
        hit = 1;
        rs_fi_fail_at(0);
        if (recsys_ctx_new(&ctx)) exit(1);
    }
    STEP(recsys_ctx_set_threads(ctx, 2));
    STEP(recsys_opts_new(ctx, &o));
    STEP(recsys_opts_load_yaml(o, yaml_path));
    STEP(recsys_dataset_open(ctx, data_path, o, &ds));
    STEP(recsys_model_new(ctx, o, ds, &m));
    STEP(recsys_trainer_new(ctx, m, ds, o, &t));
    STEP(recsys_trainer_run_epoch(t, NULL));
    STEP(recsys_trainer_save_checkpoint(t, ck_path));
    STEP(recsys_trainer_resume(t, ck_path));
    STEP(recsys_model_save(ctx, m, model_path));
    STEP(recsys_model_load(ctx, model_path, &loaded));
    STEP(recsys_opts_set(o, "eval.protocol", "sampled"));
    STEP(recsys_evaluate(ctx, loaded, ds, o, &met));
    recsys_metrics_free(met);
    met = NULL;
    STEP(recsys_opts_set(o, "eval.protocol", "full"));
    STEP(recsys_evaluate(ctx, loaded, ds, o, &met));
    recsys_metrics_free(met);
    met = NULL;
    STEP(recsys_evaluate_popularity(ctx, ds, o, &met));
    recsys_metrics_free(met);
    STEP(recsys_session_new(ctx, loaded, &s));
    int32_t hist[3] = {1, 2, 3}, items[4];
    float scores[64];
    STEP(recsys_session_score(s, hist, 3, scores, 64));
    STEP(recsys_session_topk(s, hist, 3, 4, 1, items, scores));
    STEP(recsys_user_state_new(loaded, &u));
    for (int i = 0; i < 3; i++) STEP(recsys_user_state_append(u, hist[i], i));
    recsys_request q = RECSYS_REQUEST_INIT;
    q.k = 4;
    STEP(recsys_session_topk_state(s, u, &q, items, scores, NULL));
    STEP(recsys_user_state_append(u, 5, 9));
    STEP(recsys_session_score_state(s, u, &q, scores, 64));
    int done = !hit && !rs_fi_triggered();
    failures += !done;
    recsys_user_state_free(u);
    recsys_session_free(s);
    recsys_trainer_free(t);
    recsys_model_free(loaded);
    recsys_model_free(m);
    recsys_dataset_free(ds);
    recsys_opts_free(o);
    recsys_ctx_free(ctx);
    rs_fi_fail_at(0);
    return done;
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/rs_fault_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    snprintf(data_path, sizeof data_path, "%s/data.txt", dir);
    snprintf(yaml_path, sizeof yaml_path, "%s/c.yaml", dir);
    snprintf(model_path, sizeof model_path, "%s/m.rsm", dir);
    snprintf(ck_path, sizeof ck_path, "%s/ck.rsm", dir);
    FILE *f = fopen(data_path, "w");
    for (int u = 0; u < 30; u++)
        for (int k = 0; k < 8; k++) fprintf(f, "u%d i%d %d\n", u, (u * 7 + k * 3) % 40, k);
    fclose(f);
    f = fopen(yaml_path, "w");
    fprintf(f, "model:\n  dim: 8\n  max_len: 6\n  blocks: 1\n  positions: start\n"
               "trainer:\n  batch_size: 8\n"
               "eval:\n  negatives: 10\n  batch_size: 7\n");
    fclose(f);
    long n = 1, limit = 100000;
    while (n < limit && !scenario(n)) n++;
    printf("fault injection: %ld runs, the N-th allocation failing for N = 1..%ld; %ld calls "
           "returned RECSYS_E_NOMEM and succeeded when retried\n", n, n - 1, calls_failed);
    unlink(data_path);
    unlink(yaml_path);
    unlink(model_path);
    unlink(ck_path);
    rmdir(dir);
    return n < limit ? 0 : 1;
}
