/* recsys_user_state: a user's recent events kept by the server, appended
 * one at a time (docs/SERVING.md, "Incremental scoring").
 *
 * What it holds is the model's input window (the last max_len items and
 * times), not per-block keys and values: both model families place items
 * by their distance from the end of the window (the item at left-padded
 * slot t gets position embedding t + 1, so the newest is always at
 * position max_len), and HSTU's time bias for a position reads the next
 * event's time. Appending an event therefore changes every position's
 * input embedding, and a key/value cache of earlier positions would not
 * give the full recompute's scores. Re-ranking encodes the window again
 * (the serving forward computes only the last position in the last block);
 * what the state saves is re-sending and re-validating the history.
 *
 * The window lives in a buffer of 2 max_len slots: appending writes past
 * the end of the window, and only when the buffer is full is the window
 * moved back to the front (amortised O(1) per event). */
#include "serve/serve.h"

#include <stdlib.h>
#include <string.h>

struct recsys_user_state {
    int32_t n_items;
    int max_len;
    int32_t *items;   /* 2 max_len */
    int64_t *times;   /* 2 max_len */
    int head, n;      /* window = [head, head + n) */
    uint64_t events;  /* appended in all */
};

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
    if (u->n == L) u->head++;
    else u->n++;
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
    *bytes = sizeof *u + 2 * (size_t)u->max_len * (sizeof(int32_t) + sizeof(int64_t));
    return RECSYS_OK;
}

recsys_status recsys_user_state_clear(recsys_user_state *u)
{
    rs_enter(NULL);
    if (!u) return RS_BAD_ARGS();
    u->head = u->n = 0;
    u->events = 0;
    return RECSYS_OK;
}
