/* Helper of tests/crash_test.py. Modes:
 *   loop PATH KIND     save versions 0, 1, 2, ... of a small model to PATH
 *                      without end (KIND model: recsys_model_save; train:
 *                      the trainer's checkpoint); prints "ready" after
 *                      version 0 is in place
 *   once PATH KIND     save one version (1000000)
 *   big PATH           save a large model (about 1 MB); exit 0 or 3 (E_IO)
 *   check PATH         load PATH; print its version; exit 1 if it fails */
#include "checkpoint/checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static recsys_model *make(recsys_ctx *ctx, int dim, int items)
{
    recsys_opts *o;
    recsys_dataset *ds;
    recsys_model *m;
    if (recsys_opts_new(ctx, &o)) exit(2);
    recsys_opts_set_int(o, "model.dim", dim);
    recsys_opts_set(o, "model.max_len", "8");
    recsys_opts_set(o, "model.blocks", "1");
    recsys_opts_set_int(o, "data.synthetic_items", items);
    recsys_opts_set(o, "data.synthetic_users", "20");
    if (recsys_dataset_synthetic(ctx, o, &ds) || recsys_model_new(ctx, o, ds, &m)) exit(2);
    recsys_dataset_free(ds);
    recsys_opts_free(o);
    return m;
}

static recsys_status save(recsys_ctx *ctx, recsys_model *m, const char *path, const char *kind,
                          float version, float *mv)
{
    m->params[0] = version;
    if (strcmp(kind, "train")) return recsys_model_save(ctx, m, path);
    rs_train_state s = {.epoch = 1, .step = 2, .m = mv, .v = mv};
    return rs_checkpoint_save_train(ctx, m, path, &s);
}

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    recsys_ctx *ctx;
    if (recsys_ctx_new(&ctx)) return 2;
    recsys_ctx_set_threads(ctx, 1);
    const char *mode = argv[1], *path = argv[2], *kind = argc > 3 ? argv[3] : "model";
    if (!strcmp(mode, "check")) {
        recsys_model *m;
        recsys_status st = recsys_model_load(ctx, path, &m);
        if (st) fprintf(stderr, "%s\n", recsys_ctx_errmsg(ctx));
        else printf("%.1f\n", m->params[0]);
        recsys_model_free(st ? NULL : m);
        recsys_ctx_free(ctx);
        return st ? 1 : 0;
    }
    recsys_model *m = make(ctx, !strcmp(mode, "big") ? 64 : 16, !strcmp(mode, "big") ? 4000 : 100);
    float *mv = calloc(m->n_params, sizeof(float));
    recsys_status st = RECSYS_OK;
    if (!strcmp(mode, "loop")) {
        for (long v = 0;; v++) {
            if ((st = save(ctx, m, path, kind, (float)v, mv))) break;
            if (v == 0) {
                printf("ready\n");
                fflush(stdout);
            }
        }
    } else if (!strcmp(mode, "once")) {
        st = save(ctx, m, path, kind, 1000000.0f, mv);
    } else if (!strcmp(mode, "big")) {
        st = save(ctx, m, path, "model", 2000000.0f, mv);
    }
    if (st) fprintf(stderr, "%s\n", recsys_ctx_errmsg(ctx));
    free(mv);
    recsys_model_free(m);
    recsys_ctx_free(ctx);
    return st == RECSYS_OK ? 0 : st == RECSYS_E_IO ? 3 : 1;
}
