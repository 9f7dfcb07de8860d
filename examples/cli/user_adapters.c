/* Per-request adapters from --adapters (user_adapters.h). */
#include "user_adapters.h"
#include "commands.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int user_adapters_open(recsys_ctx *ctx, recsys_model *m, const char *path,
                       const recsys_dataset *users, user_adapters *u, char *err, size_t en)
{
    memset(u, 0, sizeof *u);
    u->users = users;
    recsys_opts *opts = NULL;
    int bad = recsys_opts_new(ctx, &opts) != RECSYS_OK ||
              cli_load_adapters(ctx, m, path, opts, 0, &u->all, &u->store) != 0;
    recsys_opts_free(opts);
    if (bad) {
        snprintf(err, en, "cannot load the adapters '%s': %s", path, recsys_ctx_errmsg(ctx));
        user_adapters_close(u);
        return 1;
    }
    return 0;
}

void user_adapters_close(user_adapters *u)
{
    recsys_adapter_store_close(u->store);
    recsys_adapter_free(u->all);
    memset(u, 0, sizeof *u);
}

/* The user's id in the store from the "user" JSON text; -1 when none. */
static int64_t user_index(const user_adapters *u, const char *json)
{
    if (!json) return -1;
    char name[128];
    size_t n = strlen(json);
    if (n >= 2 && json[0] == '"' && json[n - 1] == '"') {
        if (n - 2 >= sizeof name || memchr(json + 1, '\\', n - 2)) return -1;
        memcpy(name, json + 1, n - 2);
        name[n - 2] = 0;
    } else {
        if (n >= sizeof name) return -1;
        memcpy(name, json, n + 1);
    }
    if (u->users) {
        int64_t id = -1;
        return recsys_dataset_user_id(u->users, name, &id) == RECSYS_OK ? id : -1;
    }
    char *end;
    errno = 0;
    long long v = strtoll(name, &end, 10);
    return name[0] >= '0' && name[0] <= '9' && !*end && !errno ? (int64_t)v : -1;
}

int user_adapters_for(user_adapters *u, const char *user_json, const recsys_adapter **use,
                      recsys_adapter **owned, char *err, size_t en)
{
    *use = u->all;
    *owned = NULL;
    if (!u->store) return 0;
    int64_t id = user_index(u, user_json);
    int64_t n_users = 0;
    recsys_adapter_store_stats(u->store, &n_users, NULL, NULL, NULL, NULL);
    if (id < 0 || id >= n_users) return 0;
    recsys_status st = recsys_adapter_store_get(u->store, id, owned);
    if (st == RECSYS_E_NOT_FOUND) return 0;
    if (st) {
        snprintf(err, en, "the adapter of user %lld: %s", (long long)id,
                 recsys_status_str(st));
        return 1;
    }
    *use = *owned;
    return 0;
}
