/* A model's self-description: external item ids (with a name -> id hash
 * index), the training data's fingerprint, the checkpoint sections that
 * carry them (IIDS, META; docs/CHECKPOINT.md) and the public info calls. */
#include "models/model_meta.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define META_VERSION 1u
#define IIDS_VERSION 1u
#define META_LEN 24u /* version 4, flags 4, fingerprint 8, n_users 8 */
#define NAME_MAX_BYTES 65535u

static uint64_t hash_name(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

static void drop_names(rs_model_meta *mm)
{
    free(mm->item_names);
    free(mm->names_blob);
    free(mm->index);
    mm->item_names = NULL;
    mm->names_blob = NULL;
    mm->index = NULL;
    mm->index_cap = 0;
}

void rs_model_meta_free(rs_model_meta *mm)
{
    if (!mm) return;
    drop_names(mm);
    rs_score_table_unref(mm->table);
    pthread_mutex_destroy(&mm->mu);
    free(mm);
}

/* Build item_names + index from n strings given by a getter. Duplicate or
 * empty ids are refused (RECSYS_E_INVALID) since lookups must be exact. */
typedef const char *(*name_at_fn)(const void *src, int32_t i, size_t *len);

static recsys_status set_names(recsys_ctx *ctx, rs_model_meta *mm, name_at_fn at,
                               const void *src, int32_t n)
{
    if (n != mm->n_items)
        return rs_error(ctx, RECSYS_E_INVALID, "%d item ids given for a catalogue of %d", n,
                        mm->n_items);
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t len;
        const char *s = at(src, i, &len);
        if (!s || len == 0 || len > NAME_MAX_BYTES || memchr(s, 0, len))
            return rs_error(ctx, RECSYS_E_INVALID, "item id %d is empty, too long or holds NUL",
                            i + 1);
        total += len + 1;
    }
    size_t cap = 16;
    while (cap < 2 * (size_t)n) cap *= 2;
    char **names = calloc((size_t)n + 1, sizeof *names);
    char *blob = malloc(total ? total : 1);
    int32_t *index = calloc(cap, sizeof *index);
    if (!names || !blob || !index) {
        free(names);
        free(blob);
        free(index);
        return rs_error(ctx, RECSYS_E_NOMEM, "out of memory for %d item ids", n);
    }
    char *w = blob;
    for (int32_t i = 0; i < n; i++) {
        size_t len;
        const char *s = at(src, i, &len);
        memcpy(w, s, len);
        w[len] = 0;
        names[i + 1] = w;
        size_t pos = (size_t)hash_name(w, len) & (cap - 1);
        while (index[pos]) {
            if (!strcmp(names[index[pos]], w)) {
                free(names);
                free(blob);
                free(index);
                return rs_error(ctx, RECSYS_E_INVALID, "item id '%.100s' appears twice", s);
            }
            pos = (pos + 1) & (cap - 1);
        }
        index[pos] = i + 1;
        w += len + 1;
    }
    drop_names(mm);
    mm->ids_known = 1;
    mm->item_names = names;
    mm->names_blob = blob;
    mm->index = index;
    mm->index_cap = cap;
    return RECSYS_OK;
}

static const char *from_decimal(const void *src, int32_t i, size_t *len)
{
    char *buf = (char *)src;
    *len = (size_t)snprintf(buf, 16, "%" PRId32, i + 1);
    return buf;
}

rs_model_meta *rs_model_meta_new(int32_t n_items)
{
    rs_model_meta *mm = calloc(1, sizeof *mm);
    if (!mm) return NULL;
    mm->n_items = n_items;
    mm->n_users = -1;
    pthread_mutex_init(&mm->mu, NULL);
    char buf[16];
    if (set_names(NULL, mm, from_decimal, buf, n_items)) {
        rs_model_meta_free(mm);
        return NULL;
    }
    mm->ids_known = 0;
    return mm;
}

static const char *from_cstrs(const void *src, int32_t i, size_t *len)
{
    const char *s = ((const char *const *)src)[i];
    *len = s ? strlen(s) : 0;
    return s;
}

recsys_status rs_model_meta_set_names(recsys_ctx *ctx, recsys_model *m, const char *const *ids,
                                      int32_t n)
{
    if (!m || !m->meta || !ids) return rs_error(ctx, RECSYS_E_INVALID, "item ids: NULL argument");
    return set_names(ctx, m->meta, from_cstrs, ids, n);
}

uint64_t rs_dataset_fingerprint(const recsys_dataset *ds)
{
    uint64_t h = rs_hash64(0x7265637379730001ULL, (uint64_t)ds->n_users);
    h = rs_hash64(h, (uint64_t)ds->n_items);
    for (int64_t u = 0; ds->offsets && u < ds->n_users; u++) {
        if (ds->user_names && ds->user_names[u])
            h = rs_hash64(h, hash_name(ds->user_names[u], strlen(ds->user_names[u])));
        for (int64_t e = ds->offsets[u]; e < ds->offsets[u + 1]; e++) {
            h = rs_hash64(h, (uint64_t)ds->items[e]);
            if (ds->times) h = rs_hash64(h, (uint64_t)ds->times[e]);
        }
    }
    for (int32_t i = 1; ds->item_names && i <= ds->n_items; i++)
        if (ds->item_names[i]) h = rs_hash64(h, hash_name(ds->item_names[i], strlen(ds->item_names[i])));
    return h ? h : 1;
}

recsys_status rs_model_meta_from_dataset(recsys_ctx *ctx, recsys_model *m,
                                         const recsys_dataset *ds)
{
    if (ds->item_names) {
        recsys_status st = rs_model_meta_set_names(ctx, m,
                                                   (const char *const *)ds->item_names + 1,
                                                   ds->n_items);
        if (st) return st;
    }
    m->meta->fingerprint = rs_dataset_fingerprint(ds);
    m->meta->has_time = ds->times != NULL;
    m->meta->n_users = ds->n_users;
    return RECSYS_OK;
}

/* ------------------------------------------------------------ sections */

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

recsys_status rs_model_meta_encode(const recsys_model *m, void **ids, size_t *ids_len,
                                   void **meta, size_t *meta_len)
{
    *ids = *meta = NULL;
    *ids_len = *meta_len = 0;
    const rs_model_meta *mm = m->meta;
    if (!mm || (!mm->ids_known && !mm->fingerprint && mm->n_users < 0)) return RECSYS_OK;
    unsigned char *b = malloc(META_LEN);
    if (!b) return RECSYS_E_NOMEM;
    put32(b, META_VERSION);
    put32(b + 4, mm->has_time ? 1u : 0u);
    put64(b + 8, mm->fingerprint);
    put64(b + 16, (uint64_t)mm->n_users);
    *meta = b;
    *meta_len = META_LEN;
    if (!mm->ids_known) return RECSYS_OK;
    size_t total = 8;
    for (int32_t i = 1; i <= mm->n_items; i++) total += 2 + strlen(mm->item_names[i]);
    unsigned char *p = malloc(total);
    if (!p) {
        free(b);
        *meta = NULL;
        return RECSYS_E_NOMEM;
    }
    put32(p, IIDS_VERSION);
    put32(p + 4, (uint32_t)mm->n_items);
    size_t o = 8;
    for (int32_t i = 1; i <= mm->n_items; i++) {
        size_t len = strlen(mm->item_names[i]);
        p[o] = (unsigned char)len;
        p[o + 1] = (unsigned char)(len >> 8);
        memcpy(p + o + 2, mm->item_names[i], len);
        o += 2 + len;
    }
    *ids = p;
    *ids_len = total;
    return RECSYS_OK;
}

typedef struct iids_src { const unsigned char *p; const size_t *off; } iids_src;

static const char *from_iids(const void *src, int32_t i, size_t *len)
{
    const iids_src *s = src;
    *len = (size_t)s->p[s->off[i]] | (size_t)s->p[s->off[i] + 1] << 8;
    return (const char *)s->p + s->off[i] + 2;
}

recsys_status rs_model_meta_decode(recsys_ctx *ctx, recsys_model *m, const char *tag,
                                   const unsigned char *p, size_t len)
{
    rs_model_meta *mm = m->meta;
    if (!mm) return rs_error(ctx, RECSYS_E_INTERNAL, "model without meta");
    if (!memcmp(tag, RS_CK_TAG_META, 4)) {
        if (len != META_LEN || get32(p) != META_VERSION || (get32(p + 4) & ~1u))
            return rs_error(ctx, RECSYS_E_FORMAT, "the META section has an unknown layout");
        mm->has_time = get32(p + 4) & 1u;
        mm->fingerprint = get64(p + 8);
        mm->n_users = (int64_t)get64(p + 16);
        return RECSYS_OK;
    }
    if (len < 8 || get32(p) != IIDS_VERSION || get32(p + 4) != (uint32_t)mm->n_items)
        return rs_error(ctx, RECSYS_E_FORMAT,
                        "the IIDS section has an unknown version or does not list %d items",
                        mm->n_items);
    size_t *off = malloc(sizeof *off * ((size_t)mm->n_items + 1));
    if (!off) return rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
    size_t o = 8;
    recsys_status st = RECSYS_OK;
    for (int32_t i = 0; i < mm->n_items; i++) {
        if (len - o < 2) { st = RECSYS_E_FORMAT; break; }
        size_t nl = (size_t)p[o] | (size_t)p[o + 1] << 8;
        if (len - o - 2 < nl) { st = RECSYS_E_FORMAT; break; }
        off[i] = o;
        o += 2 + nl;
    }
    if (!st && o != len) st = RECSYS_E_FORMAT;
    if (st) {
        free(off);
        return rs_error(ctx, st, "the IIDS section is malformed");
    }
    iids_src src = {p, off};
    st = set_names(ctx, mm, from_iids, &src, mm->n_items);
    free(off);
    if (st == RECSYS_E_INVALID)
        return rs_error(ctx, RECSYS_E_FORMAT, "the IIDS section is invalid: %s",
                        recsys_ctx_errmsg(ctx));
    return st;
}

/* --------------------------------------------------------- score table */

void rs_score_table_unref(rs_score_table *t)
{
    if (t && atomic_fetch_sub(&t->refs, 1) == 1) {
        rs_free(t->owned);
        rs_free(t->panels);
        free(t);
    }
}

void rs_normalise_rows(float *dst, const float *src, size_t n, int d)
{
    for (size_t i = 0; i < n; i++, src += d, dst += d) {
        double ss = 0;
        for (int c = 0; c < d; c++) ss += (double)src[c] * src[c];
        float inv = (float)(1.0 / fmax(sqrt(ss), 1e-6));
        for (int c = 0; c < d; c++) dst[c] = src[c] * inv;
    }
}

float *rs_normalised_table(const float *table, int32_t n_items, int d)
{
    float *t = rs_calloc((size_t)n_items + 1, (size_t)d * sizeof(float));
    if (!t) return NULL;
    rs_normalise_rows(t + d, table + d, (size_t)n_items, d);
    return t;
}

uint64_t rs_model_weights_fingerprint(const recsys_model *m)
{
    uint64_t h = rs_hash64(0x6261736577656967ULL, (uint64_t)m->n_params);
    h = rs_hash64(h, (uint64_t)m->cfg.type << 32 | (uint64_t)m->cfg.dim);
    size_t step = m->n_params / 8192 + 1;
    for (size_t i = 0; i < m->n_params; i += step) {
        uint32_t u;
        memcpy(&u, m->params + i, 4);
        h = rs_hash64(h, u);
    }
    return h ? h : 1;
}

/* A sample of the raw table: when training moves the weights, the cached
 * normalised copy is rebuilt. */
static uint64_t table_probe(const recsys_model *m)
{
    const float *t = rs_model_items(m);
    size_t n = ((size_t)m->cfg.n_items + 1) * (size_t)m->cfg.dim;
    uint64_t h = (uint64_t)(uintptr_t)t;
    size_t step = n / 509 + 1;
    for (size_t i = 0; i < n; i += step) {
        uint32_t u;
        memcpy(&u, t + i, 4);
        h = rs_hash64(h, u);
    }
    return h;
}

recsys_status rs_score_table_get(recsys_ctx *ctx, recsys_model *m, rs_score_table **out)
{
    recsys_status whole = rs_model_whole(ctx, m, "scoring");
    if (whole) return whole;
    rs_model_meta *mm = m->meta;
    uint64_t probe = table_probe(m);
    pthread_mutex_lock(&mm->mu);
    rs_score_table *t = mm->table;
    if (!t || t->probe != probe) {
        rs_score_table *nt = calloc(1, sizeof *nt);
        if (nt && m->cfg.l2norm)
            nt->owned = rs_normalised_table(rs_model_items(m), m->cfg.n_items, m->cfg.dim);
        if (!nt || (m->cfg.l2norm && !nt->owned)) {
            pthread_mutex_unlock(&mm->mu);
            free(nt);
            return rs_error(ctx, RECSYS_E_NOMEM, "out of memory for the item scoring table");
        }
        atomic_init(&nt->refs, 1);
        nt->rows = nt->owned ? nt->owned : rs_model_items(m);
        size_t n = (size_t)m->cfg.n_items, d = (size_t)m->cfg.dim;
        if (d <= RS_PANEL_MAX_D && n * d * sizeof(float) <= RS_SCORE_PANELS_MAX_BYTES &&
            (nt->panels = rs_malloc(sizeof(float) * rs_panels_floats(n, (int)d))))
            rs_pack_panels(n, (int)d, nt->rows + d, d, nt->panels); /* no panels: GEMM */
        nt->probe = probe;
        rs_score_table_unref(mm->table);
        mm->table = t = nt;
    }
    atomic_fetch_add(&t->refs, 1);
    pthread_mutex_unlock(&mm->mu);
    *out = t;
    return RECSYS_OK;
}

/* --------------------------------------------------------------- public */

recsys_status recsys_model_info_get(const recsys_model *m, recsys_model_info *info)
{
    rs_enter(NULL);
    if (!m || !info || info->struct_size < sizeof(size_t)) return RS_BAD_ARGS();
    recsys_model_info v;
    memset(&v, 0, sizeof v);
    v.struct_size = info->struct_size < sizeof v ? info->struct_size : sizeof v;
    v.type = m->cfg.type == RS_MODEL_HSTU ? RECSYS_MODEL_HSTU : RECSYS_MODEL_SASREC;
    v.n_items = m->cfg.n_items;
    v.max_len = m->cfg.max_len;
    v.dim = m->cfg.dim;
    v.blocks = m->cfg.blocks;
    v.heads = m->cfg.heads;
    v.time_bias = m->cfg.time_bias;
    v.l2norm = m->cfg.l2norm;
    v.has_item_ids = m->meta && m->meta->ids_known;
    v.data_has_time = m->meta ? m->meta->has_time : 0;
    v.n_params = (int64_t)m->n_params;
    v.n_users = m->meta ? m->meta->n_users : -1;
    v.data_fingerprint = m->meta ? m->meta->fingerprint : 0;
    v.positions_from_start = m->cfg.pos_from_start;
    memcpy(info, &v, v.struct_size);
    return RECSYS_OK;
}

/* Without stored ids (version 1 checkpoints, imports without an id list)
 * the external id of item i is i in decimal. */
recsys_status recsys_model_item_id(const recsys_model *m, const char *external_id, int32_t *item)
{
    rs_enter(NULL);
    if (!m || !external_id || !item || !m->meta) return RS_BAD_ARGS();
    const rs_model_meta *mm = m->meta;
    size_t len = strlen(external_id);
    size_t pos = (size_t)hash_name(external_id, len) & (mm->index_cap - 1);
    while (mm->index[pos]) {
        if (!strcmp(mm->item_names[mm->index[pos]], external_id)) {
            *item = mm->index[pos];
            return RECSYS_OK;
        }
        pos = (pos + 1) & (mm->index_cap - 1);
    }
    return RECSYS_E_NOT_FOUND;
}

recsys_status recsys_model_item_name(const recsys_model *m, int32_t item, const char **name)
{
    rs_enter(NULL);
    if (!m || !name || !m->meta || item < 1 || item > m->cfg.n_items) return RS_BAD_ARGS();
    *name = m->meta->item_names[item];
    return RECSYS_OK;
}

recsys_status recsys_model_item_table(const recsys_model *m, const float **table,
                                      int32_t *n_rows, int *dim)
{
    rs_enter(NULL);
    if (!m || !table) return RS_BAD_ARGS();
    if (m->sharded) return rs_model_whole(NULL, m, "recsys_model_item_table");
    *table = rs_model_items(m);
    if (n_rows) *n_rows = m->cfg.n_items + 1;
    if (dim) *dim = m->cfg.dim;
    return RECSYS_OK;
}

recsys_status recsys_model_item_vectors(recsys_model *m, const float **vectors, int32_t *n_rows,
                                        int *dim)
{
    rs_enter(NULL);
    if (!m || !vectors) return RS_BAD_ARGS();
    rs_score_table *t;
    recsys_status st = rs_score_table_get(NULL, m, &t);
    if (st) return st;
    *vectors = t->rows; /* the model keeps its reference to this table */
    rs_score_table_unref(t);
    if (n_rows) *n_rows = m->cfg.n_items + 1;
    if (dim) *dim = m->cfg.dim;
    return RECSYS_OK;
}
