/* JSON requests and responses for recsys recommend / serve (jansson). */
#include "request_json.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_err(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && n) vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

/* ids of a JSON array -> dense ids (unknown ones skipped and counted). */
static int parse_ids(json_t *arr, const char *field, const rj_limits *lim, rj_lookup_fn lookup,
                     void *lu, int32_t **out, size_t *n_out, size_t *unknown, int64_t *keep_pos,
                     char *err, size_t en)
{
    *out = NULL;
    *n_out = 0;
    if (!json_is_array(arr)) {
        set_err(err, en, "\"%s\" must be an array of item ids", field);
        return 1;
    }
    size_t n = json_array_size(arr);
    if (n > lim->max_ids) {
        set_err(err, en, "\"%s\" has %zu ids, more than the limit %zu", field, n, lim->max_ids);
        return 1;
    }
    int32_t *ids = malloc(sizeof *ids * (n ? n : 1));
    if (!ids) {
        set_err(err, en, "out of memory");
        return 1;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        char num[32];
        const char *s;
        if (json_is_string(v)) {
            s = json_string_value(v);
            if (strlen(s) != json_string_length(v)) s = NULL; /* embedded NUL: unknown */
        } else if (json_is_integer(v)) {
            snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            s = num;
        } else {
            free(ids);
            set_err(err, en, "\"%s\"[%zu] must be a string or an integer id", field, i);
            return 1;
        }
        int32_t id = s ? lookup(lu, s) : 0;
        if (id > 0) {
            if (keep_pos) keep_pos[k] = (int64_t)i;
            ids[k++] = id;
        } else {
            (*unknown)++;
        }
    }
    *out = ids;
    *n_out = k;
    return 0;
}

static int parse_one(json_t *o, const rj_limits *lim, rj_lookup_fn lookup, void *lu,
                     rj_request *r, char *err, size_t en)
{
    memset(r, 0, sizeof *r);
    r->k = lim->default_k;
    r->exclude_history = lim->default_exclude_history;
    if (!json_is_object(o)) {
        set_err(err, en, "a request must be a JSON object");
        return 1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (strcmp(key, "user") && strcmp(key, "history") && strcmp(key, "times") &&
            strcmp(key, "k") && strcmp(key, "exclude_history") && strcmp(key, "exclude") &&
            strcmp(key, "candidates")) {
            set_err(err, en, "unknown field \"%.64s\"", key);
            return 1;
        }
    }
    json_t *user = json_object_get(o, "user");
    if (user && !(r->user_json = json_dumps(user, JSON_COMPACT | JSON_ENCODE_ANY))) {
        set_err(err, en, "cannot encode \"user\"");
        return 1;
    }
    json_t *k = json_object_get(o, "k");
    if (k) {
        if (!json_is_integer(k) || json_integer_value(k) < 1 ||
            json_integer_value(k) > lim->max_k) {
            set_err(err, en, "\"k\" must be an integer in 1..%d", lim->max_k);
            return 1;
        }
        r->k = (int)json_integer_value(k);
    }
    json_t *ex = json_object_get(o, "exclude_history");
    if (ex) {
        if (!json_is_boolean(ex)) {
            set_err(err, en, "\"exclude_history\" must be true or false");
            return 1;
        }
        r->exclude_history = json_is_true(ex);
    }
    json_t *hist = json_object_get(o, "history"), *times = json_object_get(o, "times");
    if (!hist) {
        set_err(err, en, "\"history\" is missing");
        return 1;
    }
    size_t nh = json_is_array(hist) ? json_array_size(hist) : 0;
    int64_t *pos = NULL;
    if (times) {
        if (!json_is_array(times) || json_array_size(times) != nh) {
            set_err(err, en, "\"times\" must be an array as long as \"history\"");
            return 1;
        }
        pos = malloc(sizeof *pos * (nh ? nh : 1));
        if (!pos) {
            set_err(err, en, "out of memory");
            return 1;
        }
    }
    int bad = parse_ids(hist, "history", lim, lookup, lu, &r->history, &r->n_history, &r->unknown,
                        pos, err, en);
    if (!bad && times) {
        r->times = malloc(sizeof *r->times * (r->n_history ? r->n_history : 1));
        if (!r->times) {
            set_err(err, en, "out of memory");
            bad = 1;
        }
        int64_t prev = INT64_MIN;
        for (size_t i = 0; !bad && i < nh; i++) {
            json_t *t = json_array_get(times, i);
            if (!json_is_integer(t)) {
                set_err(err, en, "\"times\"[%zu] must be an integer timestamp", i);
                bad = 1;
            } else if (json_integer_value(t) < prev) {
                set_err(err, en, "\"times\" must not decrease (at %zu)", i);
                bad = 1;
            } else {
                prev = json_integer_value(t);
            }
        }
        for (size_t i = 0; !bad && i < r->n_history; i++)
            r->times[i] = json_integer_value(json_array_get(times, (size_t)pos[i]));
    }
    free(pos);
    json_t *exl = json_object_get(o, "exclude"), *cand = json_object_get(o, "candidates");
    size_t ignored = 0;
    if (!bad && exl)
        bad = parse_ids(exl, "exclude", lim, lookup, lu, &r->exclude, &r->n_exclude, &ignored,
                        NULL, err, en);
    if (!bad && cand) {
        bad = parse_ids(cand, "candidates", lim, lookup, lu, &r->candidates, &r->n_candidates,
                        &r->unknown, NULL, err, en);
    }
    if (bad) return 1;
    recsys_request q = RECSYS_REQUEST_INIT;
    q.history = r->history;
    q.n_history = r->n_history;
    q.times = r->times;
    q.k = r->k;
    q.exclude_history = r->exclude_history;
    q.exclude = r->exclude;
    q.n_exclude = r->n_exclude;
    q.candidates = r->candidates;
    q.n_candidates = r->n_candidates;
    if (cand && !r->candidates) { /* every candidate unknown: rank nothing */
        static const int32_t none = 0;
        q.candidates = &none;
    }
    r->req = q;
    return 0;
}

static void request_free(rj_request *r)
{
    free(r->user_json);
    free(r->history);
    free(r->times);
    free(r->exclude);
    free(r->candidates);
}

void rj_batch_free(rj_batch *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->n; i++) request_free(&b->reqs[i]);
    free(b->reqs);
    memset(b, 0, sizeof *b);
}

int rj_parse(const char *buf, size_t len, const rj_limits *lim, rj_lookup_fn lookup,
             void *lookup_user, rj_batch *out, char *err, size_t err_size)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        set_err(err, err_size, "invalid JSON at line %d column %d: %s", je.line, je.column,
                je.text);
        return 1;
    }
    json_t *list = NULL;
    if (json_is_array(root)) list = root;
    else if (json_is_object(root) && json_object_get(root, "requests")) {
        list = json_object_get(root, "requests");
        if (!json_is_array(list) || json_object_size(root) != 1) {
            set_err(err, err_size, "\"requests\" must be the only field and an array");
            json_decref(root);
            return 1;
        }
    }
    size_t n = list ? json_array_size(list) : 1;
    if (list && n > lim->max_requests) {
        set_err(err, err_size, "%zu requests in a batch, more than the limit %zu", n,
                lim->max_requests);
        json_decref(root);
        return 1;
    }
    out->reqs = calloc(n ? n : 1, sizeof *out->reqs);
    if (!out->reqs) {
        set_err(err, err_size, "out of memory");
        json_decref(root);
        return 1;
    }
    out->is_batch = list != NULL;
    for (size_t i = 0; i < n; i++) {
        char e[200];
        int bad = parse_one(list ? json_array_get(list, i) : root, lim, lookup, lookup_user,
                            &out->reqs[i], e, sizeof e);
        out->n = i + 1;
        if (bad) {
            if (list) set_err(err, err_size, "request %zu: %s", i, e);
            else set_err(err, err_size, "%s", e);
            rj_batch_free(out);
            json_decref(root);
            return 1;
        }
    }
    json_decref(root);
    return 0;
}

/* ------------------------------------------------------------- output */

void rj_buf_add(rj_buf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = 2 * (b->len + n + 1) + 256;
        char *p = realloc(b->s, cap);
        if (!p) { b->oom = 1; return; }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void rj_buf_printf(rj_buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) rj_buf_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Length of the well-formed UTF-8 sequence at s (1-4), or 0 when the bytes
 * there are not one (overlong, surrogate, above U+10FFFF, truncated). */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    unsigned min, cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; min = 0x80; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; min = 0x800; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; min = 0x10000; cp = c & 0x07; }
    else return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0; /* also stops at the terminating NUL */
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

/* A JSON string of s: quotes, backslashes and control bytes escaped, and
 * bytes that are not UTF-8 (an id or an error quoting raw input) replaced
 * by U+FFFD, so the output is always valid JSON. */
void rj_buf_json_string(rj_buf *b, const char *s)
{
    rj_buf_add(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        size_t n = utf8_len(p);
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            rj_buf_add(b, e, 2);
        } else if (c < 0x20) {
            rj_buf_printf(b, "\\u%04x", c);
        } else if (n == 0) {
            rj_buf_add(b, "\\ufffd", 6);
            n = 1;
        } else {
            rj_buf_add(b, (const char *)p, n);
        }
        p += n;
    }
    rj_buf_add(b, "\"", 1);
}

void rj_write_result(rj_buf *b, const rj_request *r, const int32_t *items, const float *scores,
                     size_t n, rj_name_fn name, void *name_user)
{
    rj_buf_add(b, "{", 1);
    if (r->user_json) {
        rj_buf_add(b, "\"user\": ", 8);
        rj_buf_add(b, r->user_json, strlen(r->user_json));
        rj_buf_add(b, ", ", 2);
    }
    rj_buf_add(b, "\"items\": [", 10);
    for (size_t i = 0; i < n; i++) {
        if (i) rj_buf_add(b, ", ", 2);
        rj_buf_json_string(b, name(name_user, items[i]));
    }
    rj_buf_add(b, "], \"scores\": [", 14);
    for (size_t i = 0; i < n; i++) {
        float s = scores[i];
        if (isfinite(s)) rj_buf_printf(b, "%s%.7g", i ? ", " : "", (double)s);
        else rj_buf_printf(b, "%snull", i ? ", " : "");
    }
    rj_buf_printf(b, "], \"unknown\": %zu}", r->unknown);
}

void rj_write_error(rj_buf *b, const char *message)
{
    rj_buf_add(b, "{\"error\": ", 10);
    rj_buf_json_string(b, message);
    rj_buf_add(b, "}", 1);
}
