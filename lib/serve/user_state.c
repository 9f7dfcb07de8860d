/* recsys_user_state: a user's recent events kept by the server, appended
 * one at a time (docs/SERVING.md, "Incremental scoring").
 *
 * It holds the model's input window (the last max_len items and times)
 * and, for models whose positions count from the start of the window
 * (model.positions = start), the per-block keys and values of the window's
 * rows: recsys_session_topk_state then encodes only the rows appended since
 * the last call (lib/models/extend.c). Once the window is full, each
 * append drops its oldest event and so moves every position: the cache is
 * freed and the window is encoded by the model's forward, as it always is
 * for models positioned from the end (the default, where an append shifts
 * every position's embedding).
 *
 * The window lives in a buffer of 2 max_len slots: appending writes past
 * the end of the window, and only when the buffer is full is the window
 * moved back to the front (amortised O(1) per event). */
#include "serve/serve.h"
#include "models/extend.h"

#include <stdlib.h>
#include <string.h>

struct recsys_user_state {
    int32_t n_items;
    int max_len;
    int32_t *items;   /* 2 max_len */
    int64_t *times;   /* 2 max_len */
    int head, n;      /* window = [head, head + n) */
    uint64_t events;  /* appended in all */
    int slid;         /* the window has dropped an event since the last clear */
    /* keys and values of window rows 0..kv_rows-1, computed with kv_model
     * (a reference; NULL: no cache) */
    recsys_model *kv_model;
    float *kv;
    int kv_rows;
};

static void drop_cache(recsys_user_state *u)
{
    recsys_model_free(u->kv_model);
    rs_free(u->kv);
    u->kv_model = NULL;
    u->kv = NULL;
    u->kv_rows = 0;
}

recsys_status recsys_user_state_new(const recsys_model *model, recsys_user_state **out)
{
    rs_enter(NULL);
    if (!model || !out) return RS_BAD_ARGS();
    *out = NULL;
    recsys_user_state *u = calloc(1, sizeof *u);
    int L = model->cfg.max_len;
    if (u) {
        u->items = malloc(sizeof(int32_t) * 2 * (size_t)L);
        u->times = malloc(sizeof(int64_t) * 2 * (size_t)L);
    }
    if (!u || !u->items || !u->times) {
        recsys_user_state_free(u);
        return rs_error(NULL, RECSYS_E_NOMEM, "out of memory for a user state");
    }
    u->n_items = model->cfg.n_items;
    u->max_len = L;
    *out = u;
    return RECSYS_OK;
}

void recsys_user_state_free(recsys_user_state *u)
{
    if (!u) return;
    drop_cache(u);
    free(u->items);
    free(u->times);
    free(u);
}

recsys_status recsys_user_state_append(recsys_user_state *u, int32_t item, int64_t time)
{
    rs_enter(NULL);
    if (!u) return RS_BAD_ARGS();
    if (item < 1 || item > u->n_items)
        return rs_error(NULL, RECSYS_E_NOT_FOUND, "recsys_user_state_append: item %d is not in "
                        "1..%d", item, u->n_items);
    if (u->n > 0 && time < u->times[u->head + u->n - 1])
        return rs_error(NULL, RECSYS_E_INVALID, "recsys_user_state_append: time %lld is before "
                        "the previous event's (%lld)", (long long)time,
                        (long long)u->times[u->head + u->n - 1]);
    int L = u->max_len;
    if (u->head + u->n == 2 * L) { /* buffer full: move the window to the front */
        memmove(u->items, u->items + u->head, sizeof(int32_t) * (size_t)u->n);
        memmove(u->times, u->times + u->head, sizeof(int64_t) * (size_t)u->n);
        u->head = 0;
    }
    u->items[u->head + u->n] = item;
    u->times[u->head + u->n] = time;
    if (u->n == L) { /* the oldest event leaves: every position moves */
        u->head++;
        u->slid = 1;
        drop_cache(u);
    } else {
        u->n++;
    }
    u->events++;
    return RECSYS_OK;
}

recsys_status recsys_user_state_request(const recsys_user_state *u, recsys_request *req)
{
    rs_enter(NULL);
    if (!u || !req || req->struct_size < offsetof(recsys_request, times) + sizeof(req->times))
        return RS_BAD_ARGS();
    req->history = u->items + u->head;
    req->times = u->times + u->head;
    req->n_history = (size_t)u->n;
    return RECSYS_OK;
}

recsys_status recsys_user_state_bytes(const recsys_user_state *u, size_t *bytes)
{
    rs_enter(NULL);
    if (!u || !bytes) return RS_BAD_ARGS();
    *bytes = sizeof *u + 2 * (size_t)u->max_len * (sizeof(int32_t) + sizeof(int64_t)) +
             (u->kv ? rs_kv_floats(&u->kv_model->cfg) * sizeof(float) : 0);
    return RECSYS_OK;
}

recsys_status recsys_user_state_clear(recsys_user_state *u)
{
    rs_enter(NULL);
    if (!u) return RS_BAD_ARGS();
    u->head = u->n = 0;
    u->events = 0;
    u->slid = 0;
    drop_cache(u);
    return RECSYS_OK;
}

recsys_status rs_user_state_encode(recsys_user_state *u, recsys_ctx *ctx, recsys_model *m,
                                   float *scratch, float *out, int *done)
{
    const rs_model_config *c = &m->cfg;
    *done = 0;
    if (!c->pos_from_start || !m->ops->extend || u->slid || u->max_len != c->max_len ||
        u->n_items != c->n_items)
        return RECSYS_OK;
    if (u->kv_model != m) {
        drop_cache(u);
        u->kv = rs_malloc(sizeof(float) * rs_kv_floats(c));
        if (!u->kv) return rs_error(ctx, RECSYS_E_NOMEM, "out of memory for a user's keys and values");
        u->kv_model = rs_model_ref(m);
    }
    int n = u->n;
    if (n == 0) {
        memset(out, 0, sizeof(float) * (size_t)c->dim);
    } else {
        int r0 = u->kv_rows < n ? u->kv_rows : n - 1; /* the last row at least: its output */
        m->ops->extend(ctx, c, m->params, u->kv, u->items + u->head, u->times + u->head, r0, n,
                       scratch, out);
        u->kv_rows = rs_kv_final_rows(c, n);
    }
    *done = 1;
    return RECSYS_OK;
}
