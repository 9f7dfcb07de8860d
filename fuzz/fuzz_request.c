/* The JSON requests of `recsys recommend` and `recsys serve`
 * (examples/cli/request_json.c): parse any bytes with a fake catalogue of
 * ids "1".."100", check what a parsed request promises (ids in range,
 * times matching the history, k within the limit, the recsys_request view
 * pointing at the arrays), then write a response from it and require that
 * the response is valid JSON. */
#include "request_json.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { N_ITEMS = 100 };

static int32_t lookup(void *user, const char *id)
{
    (void)user;
    char *end;
    long v = strtol(id, &end, 10);
    return (*id && !*end && v >= 1 && v <= N_ITEMS) ? (int32_t)v : 0;
}

static const char *name(void *user, int32_t item)
{
    static const char *const names[] = {"a\"b", "c\\d", "e\nf", "plain"};
    (void)user;
    return names[item & 3];
}

static int ids_ok(const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 1 || ids[i] > N_ITEMS) return 0;
    return 1;
}

static void check(const rj_request *r, const rj_limits *lim)
{
    const recsys_request *q = &r->req;
    if (q->struct_size != sizeof *q || q->history != r->history || q->n_history != r->n_history)
        abort();
    if (q->times != r->times || q->k != r->k || r->k < 1 || r->k > lim->max_k) abort();
    if (!ids_ok(r->history, r->n_history) || !ids_ok(r->exclude, r->n_exclude)) abort();
    if (r->candidates && !ids_ok(r->candidates, r->n_candidates)) abort();
    if (r->n_history > lim->max_ids || r->n_exclude > lim->max_ids) abort();
    for (size_t i = 1; r->times && i < r->n_history; i++)
        (void)r->times[i]; /* readable: ASan checks the length */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const rj_limits lim = {10, 50, 0, 16, 256};
    rj_batch b;
    char err[256];
    rj_buf out = {0};
    if (rj_parse((const char *)data, size, &lim, lookup, NULL, &b, err, sizeof err)) {
        if (!err[0]) abort(); /* every refusal says why */
        rj_write_error(&out, err);
    } else {
        if (b.n > lim.max_requests || (!b.is_batch && b.n != 1)) abort(); /* [] is an empty batch */
        for (size_t i = 0; i < b.n; i++) {
            const rj_request *r = &b.reqs[i];
            check(r, &lim);
            float scores[3] = {1.5f, -1.0f / 0.0f, 0.0f / 0.0f};
            size_t n = r->n_history < 3 ? r->n_history : 3;
            rj_write_result(&out, r, r->history, scores, n, name, NULL);
        }
        rj_batch_free(&b);
    }
    if (out.oom) abort();
    /* Each response written above is one JSON value; together they must
     * parse as a stream of values. */
    json_error_t je;
    size_t off = 0;
    while (off < out.len) {
        json_t *v = json_loadb(out.s + off, out.len - off, JSON_DISABLE_EOF_CHECK, &je);
        if (!v) abort();
        json_decref(v);
        if (je.position <= 0) abort();
        off += (size_t)je.position;
    }
    free(out.s);
    return 0;
}
