/* recsys_dataset: building the per-user chronological sequences (CSR) from
 * raw events, and the public load / query functions. */
#include "data/dataset_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void recsys_dataset_free(recsys_dataset *ds)
{
    if (!ds) return;
    free(ds->offsets);
    free(ds->items);
    free(ds->times);
    free(ds->user_names);
    free(ds->item_names);
    free(ds->item_count);
    rs_ds_index *ix = ds->index;
    if (ix) {
        rs_strtab_free(&ix->users);
        rs_strtab_free(&ix->items);
        free(ix);
    }
    free(ds);
}

/* ------------------------------------------------------------ build steps */

/* Dense ids after min-count filtering: keep_item/keep_user map raw ids to
 * dense ids (-1 = dropped); items 1-based. One pass each: items first, then
 * users counted over the events that remain. */
typedef struct remap {
    int64_t *user;  /* raw user -> dense user or -1 */
    int64_t *item;  /* raw item -> dense item (1-based) or -1 */
    int64_t n_users, n_items, n_events;
} remap;

static recsys_status make_remap(recsys_ctx *ctx, const rs_raw *raw, int64_t min_item,
                                int64_t min_user, remap *m)
{
    int64_t nu = raw->users.n, ni = raw->items.n;
    m->user = calloc((size_t)nu + 1, sizeof *m->user);
    m->item = calloc((size_t)ni + 1, sizeof *m->item);
    if (!m->user || !m->item) return rs_error(ctx, RECSYS_E_NOMEM, "dataset: out of memory");
    /* Counts first (reusing the arrays), then dense ids in event order. */
    for (size_t e = 0; e < raw->n; e++) m->item[raw->item[e]]++;
    for (size_t e = 0; e < raw->n; e++)
        if (m->item[raw->item[e]] >= min_item) m->user[raw->user[e]]++;
    for (int64_t i = 0; i < ni; i++) m->item[i] = m->item[i] >= min_item ? 0 : -1;
    for (int64_t u = 0; u < nu; u++) m->user[u] = m->user[u] >= min_user && m->user[u] > 0 ? 0 : -1;
    m->n_users = m->n_items = m->n_events = 0;
    for (size_t e = 0; e < raw->n; e++) {
        int64_t *pu = &m->user[raw->user[e]], *pi = &m->item[raw->item[e]];
        if (*pu < 0 || *pi < 0) continue;
        /* 0 = kept but not yet seen; dense ids are stored +1 until the end. */
        if (*pu == 0) *pu = ++m->n_users;
        if (*pi == 0) *pi = ++m->n_items;
        m->n_events++;
    }
    for (int64_t u = 0; u < nu; u++) m->user[u] = m->user[u] > 0 ? m->user[u] - 1 : -1;
    for (int64_t i = 0; i < ni; i++) m->item[i] = m->item[i] > 0 ? m->item[i] : -1;
    if (m->n_events == 0)
        return rs_error(ctx, RECSYS_E_INVALID,
                        "no events left after filtering (data.min_item_count=%" PRId64
                        ", data.min_user_count=%" PRId64 ")", min_item, min_user);
    if (m->n_items > RS_MAX_ITEMS)
        return rs_error(ctx, RECSYS_E_INVALID, "%" PRId64 " items: at most %" PRId64
                        " are supported", m->n_items, RS_MAX_ITEMS);
    return RECSYS_OK;
}

/* (time, item) pairs of one user, sorted stably by time. */
typedef struct tev { int64_t t; int32_t item; } tev;

static void merge_sort(tev *a, tev *tmp, size_t n)
{
    if (n < 16) { /* insertion sort: stable, fast on short runs */
        for (size_t i = 1; i < n; i++) {
            tev x = a[i];
            size_t j = i;
            while (j > 0 && a[j - 1].t > x.t) { a[j] = a[j - 1]; j--; }
            a[j] = x;
        }
        return;
    }
    size_t h = n / 2;
    merge_sort(a, tmp, h);
    merge_sort(a + h, tmp, n - h);
    if (a[h - 1].t <= a[h].t) return;
    memcpy(tmp, a, h * sizeof *a);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) a[k++] = a[j].t < tmp[i].t ? a[j++] : tmp[i++];
    while (i < h) a[k++] = tmp[i++];
}

static recsys_status sort_by_time(recsys_ctx *ctx, recsys_dataset *ds)
{
    int64_t max_len = 0;
    for (int64_t u = 0; u < ds->n_users; u++)
        if (rs_user_len(ds, u) > max_len) max_len = rs_user_len(ds, u);
    tev *buf = malloc((size_t)max_len * 2 * sizeof *buf);
    if (!buf) return rs_error(ctx, RECSYS_E_NOMEM, "dataset: out of memory");
    for (int64_t u = 0; u < ds->n_users; u++) {
        int64_t o = ds->offsets[u], n = rs_user_len(ds, u), k;
        for (k = 1; k < n && ds->times[o + k - 1] <= ds->times[o + k]; k++) {}
        if (k >= n) continue; /* already in order: the usual case */
        for (k = 0; k < n; k++) buf[k] = (tev){ds->times[o + k], ds->items[o + k]};
        merge_sort(buf, buf + max_len, (size_t)n);
        for (k = 0; k < n; k++) {
            ds->times[o + k] = buf[k].t;
            ds->items[o + k] = buf[k].item;
        }
    }
    free(buf);
    return RECSYS_OK;
}

/* CSR arrays: events grouped per dense user, file order inside a user. */
static recsys_status fill_csr(recsys_ctx *ctx, const rs_raw *raw, const remap *m,
                              recsys_dataset *ds)
{
    ds->offsets = calloc((size_t)m->n_users + 1, sizeof *ds->offsets);
    ds->items = malloc((size_t)m->n_events * sizeof *ds->items);
    if (raw->time) ds->times = malloc((size_t)m->n_events * sizeof *ds->times);
    if (!ds->offsets || !ds->items || (raw->time && !ds->times))
        return rs_error(ctx, RECSYS_E_NOMEM, "dataset: out of memory");
    for (size_t e = 0; e < raw->n; e++) {
        int64_t u = m->user[raw->user[e]];
        if (u >= 0 && m->item[raw->item[e]] > 0) ds->offsets[u + 1]++;
    }
    for (int64_t u = 0; u < m->n_users; u++) ds->offsets[u + 1] += ds->offsets[u];
    int64_t *pos = malloc((size_t)m->n_users * sizeof *pos);
    if (!pos) return rs_error(ctx, RECSYS_E_NOMEM, "dataset: out of memory");
    memcpy(pos, ds->offsets, (size_t)m->n_users * sizeof *pos);
    for (size_t e = 0; e < raw->n; e++) {
        int64_t u = m->user[raw->user[e]], i = m->item[raw->item[e]];
        if (u < 0 || i < 0) continue;
        int64_t p = pos[u]++;
        ds->items[p] = (int32_t)i;
        if (ds->times) ds->times[p] = raw->time[e];
    }
    free(pos);
    return ds->times ? sort_by_time(ctx, ds) : RECSYS_OK;
}

/* Final name tables (in dense order) and the names arrays pointing in them. */
static recsys_status fill_names(recsys_ctx *ctx, const rs_raw *raw, const remap *m,
                                recsys_dataset *ds)
{
    rs_ds_index *ix = calloc(1, sizeof *ix);
    if (!ix) return rs_error(ctx, RECSYS_E_NOMEM, "dataset: out of memory");
    ds->index = ix;
    rs_strtab_init(&ix->users);
    rs_strtab_init(&ix->items);
    int64_t *order = malloc(((size_t)(m->n_users > m->n_items ? m->n_users : m->n_items) + 1) *
                            sizeof *order);
    if (!order) return rs_error(ctx, RECSYS_E_NOMEM, "dataset: out of memory");
    /* order[dense] = raw id, then intern in dense order so table ids match. */
    for (int64_t u = 0; u < raw->users.n; u++)
        if (m->user[u] >= 0) order[m->user[u]] = u;
    for (int64_t u = 0; u < m->n_users; u++) {
        const char *s = rs_strtab_name(&raw->users, order[u]);
        if (rs_strtab_intern(&ix->users, s, strlen(s)) != u) goto nomem;
    }
    for (int64_t i = 0; i < raw->items.n; i++)
        if (m->item[i] > 0) order[m->item[i] - 1] = i;
    for (int64_t i = 0; i < m->n_items; i++) {
        const char *s = rs_strtab_name(&raw->items, order[i]);
        if (rs_strtab_intern(&ix->items, s, strlen(s)) != i) goto nomem;
    }
    free(order);
    ds->user_names = malloc((size_t)m->n_users * sizeof *ds->user_names);
    ds->item_names = malloc(((size_t)m->n_items + 1) * sizeof *ds->item_names);
    if (!ds->user_names || !ds->item_names)
        return rs_error(ctx, RECSYS_E_NOMEM, "dataset: out of memory");
    for (int64_t u = 0; u < m->n_users; u++)
        ds->user_names[u] = (char *)rs_strtab_name(&ix->users, u);
    ds->item_names[0] = NULL;
    for (int64_t i = 0; i < m->n_items; i++)
        ds->item_names[i + 1] = (char *)rs_strtab_name(&ix->items, i);
    return RECSYS_OK;
nomem:
    free(order);
    return rs_error(ctx, RECSYS_E_NOMEM, "dataset: out of memory");
}

/* Popularity counts over each user's training part (data.split aware). */
static recsys_status fill_counts(recsys_ctx *ctx, recsys_dataset *ds)
{
    ds->item_count = calloc((size_t)ds->n_items + 1, sizeof *ds->item_count);
    if (!ds->item_count) return rs_error(ctx, RECSYS_E_NOMEM, "dataset: out of memory");
    for (int64_t u = 0; u < ds->n_users; u++) {
        const int32_t *it = ds->items + ds->offsets[u];
        int64_t n = rs_user_train_len(ds, u);
        for (int64_t k = 0; k < n; k++) ds->item_count[it[k]]++;
    }
    return RECSYS_OK;
}

recsys_status rs_dataset_build(recsys_ctx *ctx, rs_raw *raw, const recsys_opts *opts,
                               recsys_dataset **out)
{
    *out = NULL;
    remap m = {0};
    recsys_dataset *ds = calloc(1, sizeof *ds);
    recsys_status st = ds ? RECSYS_OK : rs_error(ctx, RECSYS_E_NOMEM, "dataset: out of memory");
    if (!st) {
        ds->ctx = ctx;
        ds->holdout = rs_opt_is(opts, RS_OPT_DATA_SPLIT, "last") ? 1 : 2;
        st = make_remap(ctx, raw, rs_opt_int(opts, RS_OPT_DATA_MIN_ITEM_COUNT),
                        rs_opt_int(opts, RS_OPT_DATA_MIN_USER_COUNT), &m);
    }
    if (!st) {
        ds->n_users = m.n_users;
        ds->n_items = (int32_t)m.n_items;
        ds->n_events = m.n_events;
        st = fill_csr(ctx, raw, &m, ds);
    }
    if (!st) st = fill_names(ctx, raw, &m, ds);
    if (!st) st = fill_counts(ctx, ds);
    free(m.user);
    free(m.item);
    rs_raw_free(raw);
    if (st) {
        recsys_dataset_free(ds);
        return st;
    }
    *out = ds;
    return RECSYS_OK;
}

/* ------------------------------------------------------------ loaders */

/* Log lines for a freshly built dataset: its size, and data that will not
 * do what the caller may expect (repeated events, users too short to be
 * evaluated). Counted only when a log callback is set. */
static void log_loaded(recsys_ctx *ctx, const recsys_dataset *ds, const char *source)
{
    if (!ctx || !ctx->log_fn || !ds) return;
    rs_log(ctx, RECSYS_LOG_INFO, "data %s: %lld users, %d items, %lld events%s", source,
           (long long)ds->n_users, ds->n_items, (long long)ds->n_events,
           ds->times ? ", timestamps" : "");
    int64_t repeats = 0, short_users = 0;
    for (int64_t u = 0; u < ds->n_users; u++) {
        const int32_t *it = ds->items + ds->offsets[u];
        for (int64_t k = 1; k < rs_user_len(ds, u); k++) repeats += it[k] == it[k - 1];
        short_users += !rs_user_evaluated(ds, u);
    }
    if (repeats)
        rs_log(ctx, RECSYS_LOG_WARN,
               "data %s: %lld repeated events (a user's item equal to the one before it)",
               source, (long long)repeats);
    if (short_users)
        rs_log(ctx, RECSYS_LOG_WARN,
               "data %s: %lld of %lld users have fewer than %d events and are not evaluated",
               source, (long long)short_users, (long long)ds->n_users, ds->holdout == 1 ? 3 : 4);
}

static recsys_status build_logged(recsys_ctx *ctx, rs_raw *raw, const recsys_opts *opts,
                                  const char *source, recsys_dataset **out)
{
    recsys_status st = rs_dataset_build(ctx, raw, opts, out);
    if (!st) log_loaded(ctx, *out, source);
    return st;
}

int rs_opts_header(const recsys_opts *opts)
{
    const char *h = rs_opt_enum(opts, RS_OPT_DATA_HEADER);
    return !strcmp(h, "true") ? 1 : !strcmp(h, "false") ? 0 : RS_HEADER_AUTO;
}

recsys_status recsys_dataset_load(recsys_ctx *ctx, const char *path, const recsys_opts *opts,
                                  recsys_dataset **out)
{
    rs_enter(ctx);
    if (out) *out = NULL;
    if (!ctx || !path || !out)
        return rs_error(ctx, RECSYS_E_INVALID, "recsys_dataset_load: NULL argument");
    rs_clear_error(ctx);
    rs_raw raw;
    rs_raw_init(&raw);
    recsys_status st = rs_parse_interactions(ctx, path, rs_opts_header(opts), &raw);
    if (st) {
        rs_raw_free(&raw);
        return st;
    }
    return build_logged(ctx, &raw, opts, path, out);
}

recsys_status recsys_dataset_load_sequences(recsys_ctx *ctx, const char *path,
                                            const char *times_path, const recsys_opts *opts,
                                            recsys_dataset **out)
{
    rs_enter(ctx);
    if (out) *out = NULL;
    if (!ctx || !path || !out)
        return rs_error(ctx, RECSYS_E_INVALID, "recsys_dataset_load_sequences: NULL argument");
    rs_clear_error(ctx);
    rs_raw raw;
    rs_raw_init(&raw);
    recsys_status st = rs_parse_sequences(ctx, path, times_path, rs_opts_header(opts), &raw);
    if (st) {
        rs_raw_free(&raw);
        return st;
    }
    return build_logged(ctx, &raw, opts, path, out);
}

recsys_status recsys_dataset_synthetic(recsys_ctx *ctx, const recsys_opts *opts,
                                       recsys_dataset **out)
{
    rs_enter(ctx);
    if (out) *out = NULL;
    if (!ctx || !out) return rs_error(ctx, RECSYS_E_INVALID, "recsys_dataset_synthetic: NULL argument");
    rs_raw raw;
    rs_raw_init(&raw);
    recsys_status st = rs_synthetic_generate(ctx, opts, &raw);
    if (st) {
        rs_raw_free(&raw);
        return st;
    }
    return build_logged(ctx, &raw, opts, "synthetic", out);
}

/* Intern a numeric external id as its decimal text. */
static int64_t intern_number(rs_strtab *t, int64_t v)
{
    char s[24];
    int len = snprintf(s, sizeof s, "%" PRId64, v);
    return rs_strtab_intern(t, s, (size_t)len);
}

recsys_status recsys_dataset_from_arrays(recsys_ctx *ctx, size_t n, const int64_t *users,
                                         const int64_t *items, const int64_t *times,
                                         const recsys_opts *opts, recsys_dataset **out)
{
    rs_enter(ctx);
    if (out) *out = NULL;
    if (!ctx || !users || !items || !out)
        return rs_error(ctx, RECSYS_E_INVALID, "recsys_dataset_from_arrays: NULL argument");
    if (n == 0) return rs_error(ctx, RECSYS_E_INVALID, "recsys_dataset_from_arrays: no events");
    rs_clear_error(ctx);
    rs_raw raw;
    rs_raw_init(&raw);
    for (size_t e = 0; e < n; e++) {
        int64_t u = intern_number(&raw.users, users[e]);
        int64_t i = intern_number(&raw.items, items[e]);
        if (u < 0 || i < 0 || rs_raw_push(&raw, u, i, times != NULL, times ? times[e] : 0)) {
            rs_raw_free(&raw);
            return rs_error(ctx, RECSYS_E_NOMEM, "recsys_dataset_from_arrays: out of memory");
        }
    }
    return build_logged(ctx, &raw, opts, "arrays", out);
}

recsys_status recsys_dataset_open(recsys_ctx *ctx, const char *path, const recsys_opts *opts,
                                  recsys_dataset **out)
{
    rs_enter(ctx);
    if (out) *out = NULL;
    if (!ctx || !path || !out)
        return rs_error(ctx, RECSYS_E_INVALID, "recsys_dataset_open: NULL argument");
    if (!strcmp(path, "synthetic")) return recsys_dataset_synthetic(ctx, opts, out);
    const char *times = rs_opt_str(opts, RS_OPT_DATA_TIMES_PATH);
    int seq = rs_opt_is(opts, RS_OPT_DATA_FORMAT, "sequences");
    if (rs_opt_is(opts, RS_OPT_DATA_FORMAT, "auto")) {
        /* A times file only makes sense for sequences. */
        if (*times) seq = 1;
        recsys_status st = seq ? RECSYS_OK
                               : rs_detect_sequences(ctx, path, rs_opts_header(opts), &seq);
        if (st) return st;
    }
    if (seq) return recsys_dataset_load_sequences(ctx, path, *times ? times : NULL, opts, out);
    return recsys_dataset_load(ctx, path, opts, out);
}

/* ------------------------------------------------------------ queries */

recsys_status recsys_dataset_stat(const recsys_dataset *ds, int stat, double *value)
{
    rs_enter(NULL);
    if (!ds || !value) return RS_BAD_ARGS();
    int64_t min_len = INT64_MAX, max_len = 0, evaluated = 0;
    switch (stat) {
    case RECSYS_STAT_USERS: *value = (double)ds->n_users; return RECSYS_OK;
    case RECSYS_STAT_ITEMS: *value = (double)ds->n_items; return RECSYS_OK;
    case RECSYS_STAT_EVENTS: *value = (double)ds->n_events; return RECSYS_OK;
    case RECSYS_STAT_HAS_TIME: *value = ds->times ? 1.0 : 0.0; return RECSYS_OK;
    case RECSYS_STAT_MEAN_LEN: *value = (double)ds->n_events / (double)ds->n_users; return RECSYS_OK;
    case RECSYS_STAT_DENSITY:
        *value = (double)ds->n_events / ((double)ds->n_users * (double)ds->n_items);
        return RECSYS_OK;
    case RECSYS_STAT_MIN_LEN:
    case RECSYS_STAT_MAX_LEN:
    case RECSYS_STAT_EVAL_USERS:
        for (int64_t u = 0; u < ds->n_users; u++) {
            int64_t n = rs_user_len(ds, u);
            if (n < min_len) min_len = n;
            if (n > max_len) max_len = n;
            evaluated += rs_user_evaluated(ds, u);
        }
        *value = (double)(stat == RECSYS_STAT_MIN_LEN ? min_len
                          : stat == RECSYS_STAT_MAX_LEN ? max_len : evaluated);
        return RECSYS_OK;
    default:
        return rs_error(NULL, RECSYS_E_INVALID, "recsys_dataset_stat: unknown statistic id %d "
                        "(0..%d)", stat, RECSYS_STAT_COUNT - 1);
    }
}

recsys_status recsys_dataset_user_items(const recsys_dataset *ds, int64_t user,
                                        const int32_t **items, const int64_t **times, size_t *n)
{
    rs_enter(NULL);
    if (!ds || !items || !n) return RS_BAD_ARGS();
    if (user < 0 || user >= ds->n_users)
        return rs_error(NULL, RECSYS_E_INVALID, "user %lld out of range (0..%lld)",
                        (long long)user, (long long)ds->n_users - 1);
    int64_t o = ds->offsets[user];
    *items = ds->items + o;
    if (times) *times = ds->times ? ds->times + o : NULL;
    *n = (size_t)rs_user_len(ds, user);
    return RECSYS_OK;
}

recsys_status recsys_dataset_user_name(const recsys_dataset *ds, int64_t user,
                                       const char **name)
{
    rs_enter(NULL);
    if (!ds || !name) return RS_BAD_ARGS();
    if (user < 0 || user >= ds->n_users)
        return rs_error(NULL, RECSYS_E_INVALID, "user %lld out of range (0..%lld)",
                        (long long)user, (long long)ds->n_users - 1);
    *name = ds->user_names[user];
    return RECSYS_OK;
}

recsys_status recsys_dataset_item_name(const recsys_dataset *ds, int32_t item,
                                       const char **name)
{
    rs_enter(NULL);
    if (!ds || !name) return RS_BAD_ARGS();
    if (item < 1 || item > ds->n_items)
        return rs_error(NULL, RECSYS_E_INVALID, "item %d out of range (1..%d)", (int)item,
                        (int)ds->n_items);
    *name = ds->item_names[item];
    return RECSYS_OK;
}

recsys_status recsys_dataset_item_id(const recsys_dataset *ds, const char *name, int32_t *item)
{
    rs_enter(NULL);
    if (!ds || !name || !item) return RS_BAD_ARGS();
    const rs_ds_index *ix = ds->index;
    int64_t id = rs_strtab_find(&ix->items, name, strlen(name));
    if (id < 0) return rs_error(NULL, RECSYS_E_NOT_FOUND, "unknown item '%s'", name);
    *item = (int32_t)(id + 1);
    return RECSYS_OK;
}

recsys_status recsys_dataset_user_id(const recsys_dataset *ds, const char *name, int64_t *user)
{
    rs_enter(NULL);
    if (!ds || !name || !user) return RS_BAD_ARGS();
    const rs_ds_index *ix = ds->index;
    int64_t id = rs_strtab_find(&ix->users, name, strlen(name));
    if (id < 0) return rs_error(NULL, RECSYS_E_NOT_FOUND, "unknown user '%s'", name);
    *user = id;
    return RECSYS_OK;
}
