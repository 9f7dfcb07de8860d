/* The C-ABI error model, through the public header and the shared library
 * only: messages are cleared when a call starts, ctx-less getters report
 * through the thread's last error, the copy-into-buffer call truncates like
 * snprintf, the version check, and that the last error is per thread. */
#include <librecsys/recsys.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static int failures;
#define EXPECT(cond)                                                          \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                       \
        }                                                                     \
    } while (0)

static void *other_thread(void *arg)
{
    int *ok = arg;
    /* A fresh thread has no error, whatever the main thread did. */
    *ok = recsys_last_error() == RECSYS_OK && recsys_last_errmsg()[0] == 0;
    double v;
    *ok = *ok && recsys_dataset_stat(NULL, 0, &v) == RECSYS_E_INVALID &&
          recsys_last_error() == RECSYS_E_INVALID && strstr(recsys_last_errmsg(), "recsys_dataset_stat");
    return NULL;
}

int main(void)
{
    EXPECT(RECSYS_CHECK_VERSION() == RECSYS_OK);
    EXPECT(recsys_check_version(RECSYS_VERSION_NUMBER + 10000) == RECSYS_E_UNSUPPORTED);
    EXPECT(strstr(recsys_last_errmsg(), "major") != NULL);
    EXPECT(recsys_check_version(RECSYS_VERSION_NUMBER + 1) == RECSYS_E_UNSUPPORTED);
    EXPECT(recsys_check_version(0) == RECSYS_OK || RECSYS_VERSION_MAJOR != 0);
    EXPECT(recsys_last_error() == RECSYS_OK && recsys_last_errmsg()[0] == 0);

    recsys_ctx *ctx;
    EXPECT(recsys_ctx_new(&ctx) == RECSYS_OK);
    recsys_opts *o;
    EXPECT(recsys_opts_new(ctx, &o) == RECSYS_OK);
    EXPECT(recsys_opts_set(o, "model.no_such_key", "1") == RECSYS_E_NOT_FOUND);
    EXPECT(strstr(recsys_ctx_errmsg(ctx), "no_such_key") != NULL);
    EXPECT(strcmp(recsys_ctx_errmsg(ctx), recsys_last_errmsg()) == 0);
    EXPECT(recsys_last_error() == RECSYS_E_NOT_FOUND);

    /* Copy into a buffer: full length returned, truncated, NUL-terminated. */
    char small[8], big[512];
    size_t n = recsys_errmsg_copy(ctx, small, sizeof small);
    EXPECT(n == strlen(recsys_ctx_errmsg(ctx)) && n > 7);
    EXPECT(strlen(small) == 7 && strncmp(small, recsys_ctx_errmsg(ctx), 7) == 0);
    EXPECT(recsys_errmsg_copy(NULL, big, sizeof big) == strlen(recsys_last_errmsg()));
    EXPECT(strcmp(big, recsys_last_errmsg()) == 0);
    EXPECT(recsys_errmsg_copy(ctx, NULL, 0) == n);

    /* Success clears both messages. */
    EXPECT(recsys_opts_set(o, "model.dim", "16") == RECSYS_OK);
    EXPECT(recsys_ctx_errmsg(ctx)[0] == 0);
    EXPECT(recsys_last_error() == RECSYS_OK && recsys_last_errmsg()[0] == 0);

    /* Ctx-less getters fail with a message. */
    recsys_dataset *ds;
    EXPECT(recsys_opts_set(o, "data.synthetic_users", "50") == RECSYS_OK);
    EXPECT(recsys_dataset_synthetic(ctx, o, &ds) == RECSYS_OK);
    double v;
    EXPECT(recsys_dataset_stat(ds, 99, &v) == RECSYS_E_INVALID);
    EXPECT(strstr(recsys_last_errmsg(), "statistic") != NULL);
    int32_t item;
    EXPECT(recsys_dataset_item_id(ds, "no-such-item", &item) == RECSYS_E_NOT_FOUND);
    EXPECT(strstr(recsys_last_errmsg(), "no-such-item") != NULL);
    EXPECT(recsys_dataset_stat(ds, RECSYS_STAT_USERS, &v) == RECSYS_OK && v == 50);
    EXPECT(recsys_last_errmsg()[0] == 0);
    recsys_model *m;
    EXPECT(recsys_model_new(ctx, o, ds, &m) == RECSYS_OK);
    const char *val;
    EXPECT(recsys_model_get(m, "trainer.lr", &val) == RECSYS_E_NOT_FOUND);
    EXPECT(strstr(recsys_last_errmsg(), "trainer.lr") != NULL);
    EXPECT(recsys_model_get(m, "model.nope", &val) == RECSYS_E_NOT_FOUND);
    EXPECT(strstr(recsys_last_errmsg(), "model.nope") != NULL);
    EXPECT(recsys_model_get(m, "model.dim", &val) == RECSYS_OK && strcmp(val, "16") == 0);

    /* A model and a dataset may outlive their ctx. */
    recsys_opts_free(o);
    recsys_ctx_free(ctx);
    int64_t np;
    EXPECT(recsys_model_n_params(m, &np) == RECSYS_OK && np > 0);

    /* The last error is per thread. */
    EXPECT(recsys_dataset_item_id(ds, "x", &item) == RECSYS_E_NOT_FOUND);
    pthread_t th;
    int ok = 0;
    pthread_create(&th, NULL, other_thread, &ok);
    pthread_join(th, NULL);
    EXPECT(ok);
    EXPECT(recsys_last_error() == RECSYS_E_NOT_FOUND);
    EXPECT(strstr(recsys_last_errmsg(), "'x'") != NULL);

    recsys_model_free(m);
    recsys_dataset_free(ds);
    if (failures) {
        printf("0 passed, 1 failed (%d checks)\n", failures);
        return 1;
    }
    printf("1 passed, 0 failed\n");
    return 0;
}
