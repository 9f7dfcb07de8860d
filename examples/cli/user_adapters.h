/* Per-request adapters for recsys recommend / recsys serve (--adapters):
 * a request's "user" picks that user's LoRA from an adapter store (the
 * store's LRU cache, adapter.cache_mb, keeps hot users decoded), or one
 * adapter file applies to every request. Users without an adapter get the
 * base model.
 *
 * "user" is the store's dense user id (what `recsys adapt --mode per-user`
 * writes: the 0-based id of the training data, users in order of their
 * first event), as an integer or a decimal string; with --data it is the
 * data's external user id instead, mapped through that data set. */
#ifndef RECSYS_CLI_USER_ADAPTERS_H
#define RECSYS_CLI_USER_ADAPTERS_H

#include <librecsys/recsys.h>
#include <stddef.h>

typedef struct user_adapters {
    recsys_adapter_store *store;  /* per-user adapters, or NULL */
    recsys_adapter *all;          /* one adapter for every request, or NULL */
    const recsys_dataset *users;  /* external user ids (borrowed), or NULL: dense ids */
} user_adapters;

/* Open ADAPTERS (a store or one adapter file) for model m; errors go to
 * ctx, which must outlive u. Returns 0, or 1 with err set. */
int user_adapters_open(recsys_ctx *ctx, recsys_model *m, const char *path,
                       const recsys_dataset *users, user_adapters *u, char *err, size_t en);
void user_adapters_close(user_adapters *u);

/* The adapter for a request whose "user" is user_json (compact JSON, may be
 * NULL): *use (NULL: the base model); *owned is what the caller frees after
 * scoring (NULL when nothing). Returns 0, or 1 with err set (a damaged
 * store record). */
int user_adapters_for(user_adapters *u, const char *user_json, const recsys_adapter **use,
                      recsys_adapter **owned, char *err, size_t en);

#endif
