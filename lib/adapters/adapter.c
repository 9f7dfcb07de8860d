/* recsys_adapter: shapes, buffers, the store and merging through the public
 * API (docs/ADAPTERS.md). */
#include "adapters/adapter.h"
#include "adapters/merge.h"
#include "adapters/store.h"
#include "checkpoint/checkpoint.h"
#include "models/model_meta.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *TARGET_NAMES[RS_TGT_COUNT] = {"q", "k", "v", "o", "u", "ffn1", "ffn2"};

/* Where target t of block k lives in the model: weight tensor name, first
 * row, in and out (0 when the model family has no such projection). */
int rs_target_geometry(const rs_model_config *c, int t, const char **tensor, int *row0,
                           int *in, int *out)
{
    int d = c->dim;
    *row0 = 0;
    if (c->type == RS_MODEL_SASREC) {
        int F = c->ffn_dim > 0 ? c->ffn_dim : d;
        *in = d;
        *out = d;
        switch (t) {
        case RS_TGT_Q: *tensor = "attn.w_in"; return 1;
        case RS_TGT_K: *tensor = "attn.w_in"; *row0 = d; return 1;
        case RS_TGT_V: *tensor = "attn.w_in"; *row0 = 2 * d; return 1;
        case RS_TGT_O: *tensor = "attn.w_out"; return 1;
        case RS_TGT_FFN1: *tensor = "ffn.w1"; *out = F; return 1;
        case RS_TGT_FFN2: *tensor = "ffn.w2"; *in = F; return 1;
        default: return 0;
        }
    }
    int h = c->heads, dqk = c->dqk > 0 ? c->dqk : d / h, dv = c->dv > 0 ? c->dv : d / h;
    int hdv = h * dv, hqk = h * dqk;
    *in = d;
    *tensor = "uvqk.weight";
    switch (t) {
    case RS_TGT_U: *out = hdv; return 1;
    case RS_TGT_V: *row0 = hdv; *out = hdv; return 1;
    case RS_TGT_Q: *row0 = 2 * hdv; *out = hqk; return 1;
    case RS_TGT_K: *row0 = 2 * hdv + hqk; *out = hqk; return 1;
    case RS_TGT_O: *tensor = "o.weight"; *in = hdv; *out = d; return 1;
    default: return 0;
    }
}

static recsys_status parse_targets(recsys_ctx *ctx, const rs_model_config *c, const char *list,
                                   unsigned *mask)
{
    *mask = 0;
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ", ");
        if (n) {
            int t = -1;
            for (int i = 0; i < RS_TGT_COUNT; i++)
                if (strlen(TARGET_NAMES[i]) == n && !strncmp(p, TARGET_NAMES[i], n)) t = i;
            const char *tn;
            int r0, in, out;
            if (t < 0 || !rs_target_geometry(c, t, &tn, &r0, &in, &out))
                return rs_error(ctx, RECSYS_E_INVALID,
                                "adapter.targets: '%.*s' is not a projection of %s", (int)n, p,
                                c->type == RS_MODEL_SASREC ? "SASRec (q, k, v, o, ffn1, ffn2)"
                                                           : "HSTU (u, v, q, k, o)");
            *mask |= 1u << t;
        }
        p += n;
        while (*p == ',' || *p == ' ') p++;
    }
    if (!*mask) return rs_error(ctx, RECSYS_E_INVALID, "adapter.targets: empty");
    return RECSYS_OK;
}

/* Sites and sizes from rank, targets, K, gate: everything but params. */
static recsys_status layout_sites(recsys_ctx *ctx, recsys_adapter *a)
{
    const rs_model_config *c = &a->model->cfg;
    a->n_sites = 0;
    a->P = 0;
    for (int k = 0; k < c->blocks; k++)
        for (int t = 0; t < RS_TGT_COUNT; t++) {
            if (!(a->targets & (1u << t))) continue;
            const char *tn;
            int r0 = 0, in = 0, out = 0;
            rs_target_geometry(c, t, &tn, &r0, &in, &out);
            if (a->n_sites == RS_ADAPTER_MAX_SITES)
                return rs_error(ctx, RECSYS_E_INVALID, "adapter: more than %d adapted projections",
                                RS_ADAPTER_MAX_SITES);
            rs_lora_site *s = &a->sites[a->n_sites++];
            s->block = k;
            s->target = t;
            s->in = in;
            s->out = out;
            s->off = a->P;
            a->P += (size_t)a->rank * (size_t)(in + out);
        }
    a->scale = a->alpha / (float)a->rank;
    a->n_params = a->kind == RECSYS_ADAPTER_BANK
                      ? (size_t)a->K * a->P + rs_gate_n_params(&a->gate)
                      : a->P;
    return RECSYS_OK;
}

recsys_status rs_adapter_shape(recsys_ctx *ctx, recsys_model *model, const recsys_opts *opts,
                               int kind, recsys_adapter *a)
{
    memset(a, 0, sizeof *a);
    a->ctx = ctx;
    a->model = model;
    a->kind = kind;
    if (kind < RECSYS_ADAPTER_USER || kind > RECSYS_ADAPTER_BANK)
        return rs_error(ctx, RECSYS_E_INVALID, "adapter: unknown kind %d", kind);
    a->rank = (int)rs_opt_int(opts, RS_OPT_ADAPTER_RANK);
    a->alpha = (float)rs_opt_float(opts, RS_OPT_ADAPTER_ALPHA);
    if (a->alpha == 0.0f) a->alpha = 2.0f * (float)a->rank;
    recsys_status rc = parse_targets(ctx, &model->cfg, rs_opt_str(opts, RS_OPT_ADAPTER_TARGETS),
                                     &a->targets);
    if (rc) return rc;
    a->K = kind == RECSYS_ADAPTER_BANK ? (int)rs_opt_int(opts, RS_OPT_ADAPTER_BANK_SIZE) : 1;
    a->gate.d = model->cfg.dim;
    a->gate.hidden = (int)rs_opt_int(opts, RS_OPT_ADAPTER_GATE_HIDDEN);
    a->gate.K = a->K;
    a->gate.tau = (float)rs_opt_float(opts, RS_OPT_ADAPTER_GATE_TAU);
    a->gate.dropout = (float)rs_opt_float(opts, RS_OPT_ADAPTER_GATE_DROPOUT);
    a->gate_window = (int)rs_opt_int(opts, RS_OPT_ADAPTER_GATE_WINDOW);
    a->window = (int)rs_opt_int(opts, RS_OPT_ADAPTER_WINDOW);
    if (a->window == 0 || a->window > model->cfg.max_len) a->window = model->cfg.max_len;
    return layout_sites(ctx, a);
}

char *rs_adapter_conf(const recsys_adapter *a)
{
    const rs_model_config *c = &a->model->cfg;
    char tg[64] = "";
    for (int t = 0; t < RS_TGT_COUNT; t++)
        if (a->targets & (1u << t)) {
            if (tg[0]) strcat(tg, ",");
            strcat(tg, TARGET_NAMES[t]);
        }
    /* in x out of every target: lets tools read a file without the model */
    char geo[256] = "";
    for (int t = 0; t < RS_TGT_COUNT; t++) {
        const char *tn;
        int r0, in, out;
        if (!(a->targets & (1u << t)) || !rs_target_geometry(c, t, &tn, &r0, &in, &out)) continue;
        size_t gl = strlen(geo);
        snprintf(geo + gl, sizeof geo - gl, "%s%s:%dx%d", gl ? "," : "", TARGET_NAMES[t], in, out);
    }
    char *s = malloc(1024);
    if (!s) return NULL;
    snprintf(s, 1024,
             "# librecsys adapter\nkind=%s\nrank=%d\nalpha=%.9g\ntargets=%s\nbank_size=%d\n"
             "gate_hidden=%d\ngate_tau=%.9g\ngate_dropout=%.9g\ngate_window=%d\nwindow=%d\n"
             "model.type=%s\nmodel.dim=%d\nmodel.blocks=%d\nmodel.heads=%d\nn_items=%d\n"
             "floats=%zu\ngeometry=%s\nbase=%016" PRIx64 "\n",
             a->kind == RECSYS_ADAPTER_BANK ? "bank" : a->kind == RECSYS_ADAPTER_SHARED ? "shared" : "user",
             a->rank, (double)a->alpha, tg, a->K, a->gate.hidden, (double)a->gate.tau,
             (double)a->gate.dropout, a->gate_window, a->window,
             c->type == RS_MODEL_SASREC ? "sasrec" : "hstu", c->dim, c->blocks, c->heads,
             c->n_items, a->n_params, geo, rs_model_weights_fingerprint(a->model));
    return s;
}

const char *rs_target_name(int t)
{
    return t >= 0 && t < RS_TGT_COUNT ? TARGET_NAMES[t] : NULL;
}

/* Value of key in a conf text, copied into buf. */
int rs_adapter_conf_get(const char *conf, size_t len, const char *key, char *buf, size_t n)
{
    size_t kl = strlen(key);
    const char *p = conf, *end = conf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if ((size_t)(le - p) > kl && !strncmp(p, key, kl) && p[kl] == '=') {
            size_t vl = (size_t)(le - p) - kl - 1;
            if (vl >= n) vl = n - 1;
            memcpy(buf, p + kl + 1, vl);
            buf[vl] = 0;
            return 1;
        }
        p = le + 1;
    }
    return 0;
}

recsys_status rs_adapter_from_conf(recsys_ctx *ctx, recsys_model *model, const char *conf,
                                   size_t len, recsys_adapter *a)
{
    char v[128];
    recsys_opts *o = NULL;
    recsys_status rc = recsys_opts_new(NULL, &o);
    if (rc) return rs_error(ctx, RECSYS_E_NOMEM, "adapter: out of memory");
    static const struct { const char *conf; rs_opt_id id; } KEYS[] = {
        {"rank", RS_OPT_ADAPTER_RANK},           {"alpha", RS_OPT_ADAPTER_ALPHA},
        {"targets", RS_OPT_ADAPTER_TARGETS},     {"bank_size", RS_OPT_ADAPTER_BANK_SIZE},
        {"gate_hidden", RS_OPT_ADAPTER_GATE_HIDDEN}, {"gate_tau", RS_OPT_ADAPTER_GATE_TAU},
        {"gate_dropout", RS_OPT_ADAPTER_GATE_DROPOUT}, {"gate_window", RS_OPT_ADAPTER_GATE_WINDOW},
        {"window", RS_OPT_ADAPTER_WINDOW},
    };
    for (size_t i = 0; i < sizeof KEYS / sizeof KEYS[0] && !rc; i++) {
        if (!rs_adapter_conf_get(conf, len, KEYS[i].conf, v, sizeof v))
            rc = rs_error(ctx, RECSYS_E_FORMAT, "adapter: CONF lacks '%s'", KEYS[i].conf);
        else if (rs_opt_set(o, KEYS[i].id, v))
            rc = rs_error(ctx, RECSYS_E_FORMAT, "adapter: CONF has a bad %s '%s'", KEYS[i].conf, v);
    }
    int kind = -1;
    if (!rc && rs_adapter_conf_get(conf, len, "kind", v, sizeof v))
        kind = !strcmp(v, "bank") ? RECSYS_ADAPTER_BANK
             : !strcmp(v, "shared") ? RECSYS_ADAPTER_SHARED
             : !strcmp(v, "user") ? RECSYS_ADAPTER_USER : -1;
    if (!rc && kind < 0) rc = rs_error(ctx, RECSYS_E_FORMAT, "adapter: CONF has no valid kind");
    if (!rc) rc = rs_adapter_shape(ctx, model, o, kind, a);
    recsys_opts_free(o);
    if (rc) return rc == RECSYS_E_INVALID ? RECSYS_E_FORMAT : rc;
    /* the adapter must fit this model */
    const rs_model_config *c = &model->cfg;
    char want[64];
    snprintf(want, sizeof want, "%d", c->dim);
    if (!rs_adapter_conf_get(conf, len, "model.dim", v, sizeof v) || strcmp(v, want) ||
        !rs_adapter_conf_get(conf, len, "model.blocks", v, sizeof v) || atoi(v) != c->blocks ||
        !rs_adapter_conf_get(conf, len, "model.type", v, sizeof v) ||
        strcmp(v, c->type == RS_MODEL_SASREC ? "sasrec" : "hstu") ||
        !rs_adapter_conf_get(conf, len, "floats", v, sizeof v) || strtoull(v, NULL, 10) != a->n_params)
        return rs_error(ctx, RECSYS_E_INVALID,
                        "adapter: made for another model (type, dim, blocks or size differ)");
    /* same shape, other weights: LoRA factors learned on one base mean
     * nothing on another (files without the line predate it) */
    if (rs_adapter_conf_get(conf, len, "base", v, sizeof v)) {
        uint64_t want_fp = rs_model_weights_fingerprint(model);
        if (strtoull(v, NULL, 16) != want_fp)
            return rs_error(ctx, RECSYS_E_INVALID,
                            "adapter: made for another base model of the same shape (its weights "
                            "fingerprint %s, this model's %016" PRIx64 ")", v, want_fp);
    }
    return RECSYS_OK;
}

/* ------------------------------------------------------------ public API */

static void init_params(recsys_adapter *a, uint64_t seed)
{
    rs_rng rng;
    rs_rng_seed(&rng, seed);
    for (int k = 0; k < a->K; k++) {
        float *v = a->params + (size_t)k * a->P;
        for (int s = 0; s < a->n_sites; s++) {
            const rs_lora_site *st = &a->sites[s];
            /* A: Kaiming-uniform (bound 1/sqrt(in), torch's a = sqrt(5)); B: zero */
            float bound = 1.0f / sqrtf((float)st->in);
            float *A = v + st->off, *B = A + (size_t)a->rank * st->in;
            for (size_t i = 0; i < (size_t)a->rank * st->in; i++)
                A[i] = (float)((2.0 * rs_rng_uniform(&rng) - 1.0) * bound);
            memset(B, 0, sizeof(float) * (size_t)st->out * a->rank);
        }
    }
    if (a->kind == RECSYS_ADAPTER_BANK)
        rs_gate_init(&a->gate, a->params + (size_t)a->K * a->P, &rng);
}

static recsys_status adapter_alloc(recsys_ctx *ctx, const recsys_adapter *shape,
                                   recsys_adapter **out)
{
    recsys_adapter *a = malloc(sizeof *a);
    if (!a) return rs_error(ctx, RECSYS_E_NOMEM, "adapter: out of memory");
    *a = *shape;
    a->params = rs_calloc(a->n_params ? a->n_params : 1, sizeof(float));
    if (!a->params) {
        free(a);
        return rs_error(ctx, RECSYS_E_NOMEM, "adapter: out of memory (%zu floats)", shape->n_params);
    }
    a->model = rs_model_ref(shape->model);
    *out = a;
    return RECSYS_OK;
}

recsys_status recsys_adapter_new(recsys_ctx *ctx, recsys_model *model, const recsys_opts *opts,
                                 int kind, recsys_adapter **out)
{
    rs_enter(ctx);
    if (!model || !out) return RS_BAD_ARGS();
    *out = NULL;
    recsys_status whole = rs_model_whole(ctx, model, "recsys_adapter_new");
    if (whole) return whole;
    recsys_adapter shape;
    recsys_status rc = rs_adapter_shape(ctx, model, opts, kind, &shape);
    if (rc) return rc;
    if ((rc = adapter_alloc(ctx, &shape, out))) return rc;
    init_params(*out, (uint64_t)rs_opt_int(opts, RS_OPT_TRAINER_SEED) ^ 0xada97e5ull);
    return RECSYS_OK;
}

void recsys_adapter_free(recsys_adapter *a)
{
    if (!a) return;
    rs_free(a->params);
    recsys_model_free(a->model);
    free(a);
}

recsys_status recsys_adapter_info(const recsys_adapter *a, int *kind, int *rank,
                                  int64_t *n_params)
{
    rs_enter(NULL);
    if (!a) return RS_BAD_ARGS();
    if (kind) *kind = a->kind;
    if (rank) *rank = a->rank;
    if (n_params) *n_params = (int64_t)a->n_params;
    return RECSYS_OK;
}

recsys_status recsys_adapter_get_params(const recsys_adapter *a, float *out, size_t n)
{
    rs_enter(a ? a->ctx : NULL);
    if (!a || !out || n != a->n_params) return RS_BAD_ARGS();
    memcpy(out, a->params, sizeof(float) * n);
    return RECSYS_OK;
}

recsys_status recsys_adapter_set_params(recsys_adapter *a, const float *in, size_t n)
{
    rs_enter(a ? a->ctx : NULL);
    if (!a || !in || n != a->n_params) return RS_BAD_ARGS();
    for (size_t i = 0; i < n; i++)
        if (!isfinite(in[i]))
            return rs_error(a->ctx, RECSYS_E_NUMERIC, "adapter: parameter %zu is not finite", i);
    memcpy(a->params, in, sizeof(float) * n);
    return RECSYS_OK;
}

/* Memory buffer: "RSLORA01", u32 version 1, u32 conf_len, conf, u64 floats,
 * floats (f32 LE), u32 CRC-32C of everything before it. */
#define BUF_MAGIC "RSLORA01"

recsys_status recsys_adapter_to_buffer(const recsys_adapter *a, void **buf, size_t *len)
{
    rs_enter(a ? a->ctx : NULL);
    if (!a || !buf || !len) return RS_BAD_ARGS();
    *buf = NULL;
    *len = 0;
    char *conf = rs_adapter_conf(a);
    if (!conf) return rs_error(a->ctx, RECSYS_E_NOMEM, "adapter: out of memory");
    size_t cl = strlen(conf), n = 16 + cl + 8 + 4 * a->n_params + 4;
    uint8_t *b = malloc(n);
    if (!b) {
        free(conf);
        return rs_error(a->ctx, RECSYS_E_NOMEM, "adapter: out of memory");
    }
    memcpy(b, BUF_MAGIC, 8);
    uint32_t ver = 1, c32 = (uint32_t)cl;
    uint64_t nf = a->n_params;
    memcpy(b + 8, &ver, 4);
    memcpy(b + 12, &c32, 4);
    memcpy(b + 16, conf, cl);
    memcpy(b + 16 + cl, &nf, 8);
    memcpy(b + 24 + cl, a->params, 4 * a->n_params);
    uint32_t crc = rs_crc32c(0, b, n - 4);
    memcpy(b + n - 4, &crc, 4);
    free(conf);
    *buf = b;
    *len = n;
    return RECSYS_OK;
}

recsys_status recsys_adapter_from_buffer(recsys_ctx *ctx, recsys_model *model, const void *buf,
                                         size_t len, recsys_adapter **out)
{
    rs_enter(ctx);
    if (!model || !out || (!buf && len)) return RS_BAD_ARGS();
    *out = NULL;
    const char *conf;
    size_t cl;
    uint64_t nf;
    const void *params;
    recsys_status rc = rs_adapter_buffer_parse(ctx, buf, len, &conf, &cl, &nf, &params);
    if (rc) return rc;
    recsys_adapter shape;
    if ((rc = rs_adapter_from_conf(ctx, model, conf, cl, &shape))) return rc;
    shape.ctx = ctx;
    if (shape.n_params != nf)
        return rs_error(ctx, RECSYS_E_FORMAT, "adapter buffer: %llu floats, the shape needs %zu",
                        (unsigned long long)nf, shape.n_params);
    if ((rc = adapter_alloc(ctx, &shape, out))) return rc;
    memcpy((*out)->params, params, 4 * nf);
    return RECSYS_OK;
}

recsys_status rs_adapter_buffer_parse(recsys_ctx *ctx, const void *buf, size_t len,
                                      const char **conf, size_t *conf_len, uint64_t *n_floats,
                                      const void **params)
{
    const uint8_t *b = buf;
    uint32_t ver, cl;
    uint64_t nf;
    if (!b || len < 16 + 8 + 4 || memcmp(b, BUF_MAGIC, 8))
        return rs_error(ctx, RECSYS_E_FORMAT, "adapter buffer: not an adapter (%zu bytes)", len);
    memcpy(&ver, b + 8, 4);
    memcpy(&cl, b + 12, 4);
    if (ver != 1) return rs_error(ctx, RECSYS_E_FORMAT, "adapter buffer: unknown version %u", ver);
    if (cl > len - 28) return rs_error(ctx, RECSYS_E_FORMAT, "adapter buffer: truncated");
    memcpy(&nf, b + 16 + cl, 8);
    if (nf > (len - 28 - cl) / 4 || 28 + cl + 4 * nf != len)
        return rs_error(ctx, RECSYS_E_FORMAT, "adapter buffer: truncated or oversized");
    uint32_t crc;
    memcpy(&crc, b + len - 4, 4);
    if (rs_crc32c(0, b, len - 4) != crc)
        return rs_error(ctx, RECSYS_E_FORMAT, "adapter buffer: checksum mismatch");
    *conf = (const char *)b + 16;
    *conf_len = cl;
    *n_floats = nf;
    *params = b + 24 + cl; /* f32 little-endian, maybe unaligned: memcpy it */
    return RECSYS_OK;
}

/* ----------------------------------------------------------------- store */


recsys_status recsys_adapter_store_create(recsys_ctx *ctx, recsys_model *model,
                                          const recsys_opts *opts, const char *path,
                                          int64_t n_users)
{
    rs_enter(ctx);
    if (!model || !path || n_users < 0) return RS_BAD_ARGS();
    recsys_adapter shape;
    recsys_status rc = rs_adapter_shape(ctx, model, opts, RECSYS_ADAPTER_USER, &shape);
    if (rc) return rc;
    char *conf = rs_adapter_conf(&shape);
    if (!conf) return rs_error(ctx, RECSYS_E_NOMEM, "adapter store: out of memory");
    uint32_t dt = rs_opt_is(opts, RS_OPT_ADAPTER_STORE_DTYPE, "bf16") ? RS_STORE_BF16 : RS_STORE_F32;
    rc = rs_store_create(ctx, path, conf, (uint64_t)n_users, (uint32_t)shape.P, dt);
    free(conf);
    return rc;
}

static recsys_status store_wrap(recsys_ctx *ctx, recsys_model *model, rs_store *st,
                                recsys_adapter_store **out)
{
    const rs_store_view *v = rs_store_info(st);
    recsys_adapter_store *s = calloc(1, sizeof *s);
    if (!s) {
        rs_store_close(st);
        return rs_error(ctx, RECSYS_E_NOMEM, "adapter store: out of memory");
    }
    recsys_status rc = rs_adapter_from_conf(ctx, model, v->conf, v->conf_len, &s->shape);
    if (!rc && (s->shape.kind != RECSYS_ADAPTER_USER || s->shape.P != v->record_floats))
        rc = rs_error(ctx, RECSYS_E_FORMAT, "adapter store: records do not match the CONF shape");
    if (rc) {
        rs_store_close(st);
        free(s);
        return rc;
    }
    s->ctx = ctx;
    s->shape.ctx = ctx;
    s->model = rs_model_ref(model);
    s->st = st;
    *out = s;
    return RECSYS_OK;
}

recsys_status recsys_adapter_store_open(recsys_ctx *ctx, recsys_model *model, const char *path,
                                        int writable, const recsys_opts *opts,
                                        recsys_adapter_store **out)
{
    rs_enter(ctx);
    if (!model || !path || !out) return RS_BAD_ARGS();
    *out = NULL;
    rs_store *st = NULL;
    size_t cache = (size_t)rs_opt_int(opts, RS_OPT_ADAPTER_CACHE_MB) << 20;
    recsys_status rc = rs_store_open(ctx, path, writable, cache, &st);
    if (rc) return rc;
    return store_wrap(ctx, model, st, out);
}

recsys_status recsys_adapter_store_open_buffer(recsys_ctx *ctx, recsys_model *model,
                                               const void *buf, size_t len,
                                               const recsys_opts *opts,
                                               recsys_adapter_store **out)
{
    rs_enter(ctx);
    if (!model || !out || (!buf && len)) return RS_BAD_ARGS();
    *out = NULL;
    rs_store *st = NULL;
    size_t cache = (size_t)rs_opt_int(opts, RS_OPT_ADAPTER_CACHE_MB) << 20;
    recsys_status rc = rs_store_open_memory(ctx, buf, len, cache, &st);
    if (rc) return rc;
    return store_wrap(ctx, model, st, out);
}

void recsys_adapter_store_close(recsys_adapter_store *s)
{
    if (!s) return;
    rs_store_close(s->st);
    recsys_model_free(s->model);
    free(s);
}

recsys_status recsys_adapter_store_get(recsys_adapter_store *s, int64_t user,
                                       recsys_adapter **out)
{
    rs_enter(s ? s->ctx : NULL);
    if (!s || !out || user < 0) return RS_BAD_ARGS();
    *out = NULL;
    recsys_adapter *a;
    recsys_status rc = adapter_alloc(s->ctx, &s->shape, &a);
    if (rc) return rc;
    if ((rc = rs_store_get(s->ctx, s->st, (uint64_t)user, a->params))) {
        recsys_adapter_free(a);
        return rc;
    }
    *out = a;
    return RECSYS_OK;
}

recsys_status recsys_adapter_store_put(recsys_adapter_store *s, int64_t user,
                                       const recsys_adapter *a, int sync)
{
    rs_enter(s ? s->ctx : NULL);
    if (!s || !a || user < 0) return RS_BAD_ARGS();
    if (a->kind == RECSYS_ADAPTER_BANK || a->n_params != s->shape.P || a->rank != s->shape.rank ||
        a->targets != s->shape.targets)
        return rs_error(s->ctx, RECSYS_E_INVALID,
                        "adapter store: the adapter's shape differs from the store's");
    return rs_store_put(s->ctx, s->st, (uint64_t)user, a->params, sync);
}

recsys_status recsys_adapter_store_pin(recsys_adapter_store *s, int64_t user, int pin)
{
    rs_enter(s ? s->ctx : NULL);
    if (!s || user < 0) return RS_BAD_ARGS();
    return rs_store_pin(s->ctx, s->st, (uint64_t)user, pin != 0);
}

recsys_status recsys_adapter_store_stats(recsys_adapter_store *s, int64_t *n_users,
                                         int64_t *cached, int64_t *cache_bytes, int64_t *hits,
                                         int64_t *misses)
{
    rs_enter(s ? s->ctx : NULL);
    if (!s) return RS_BAD_ARGS();
    rs_store_stats st;
    rs_store_get_stats(s->st, &st);
    if (n_users) *n_users = (int64_t)rs_store_info(s->st)->n_users;
    if (cached) *cached = (int64_t)st.cached;
    if (cache_bytes) *cache_bytes = (int64_t)st.cache_bytes;
    if (hits) *hits = (int64_t)st.hits;
    if (misses) *misses = (int64_t)st.misses;
    return RECSYS_OK;
}

/* ----------------------------------------------------------------- merge */

recsys_status recsys_adapter_merge(recsys_ctx *ctx, const recsys_adapter *const *adapters,
                                   const float *weights, size_t n, const recsys_opts *opts,
                                   recsys_adapter **out)
{
    rs_enter(ctx);
    if (!adapters || !weights || !n || !out) return RS_BAD_ARGS();
    *out = NULL;
    const recsys_adapter *a0 = adapters[0];
    for (size_t i = 0; i < n; i++)
        if (!adapters[i] || adapters[i]->kind == RECSYS_ADAPTER_BANK ||
            adapters[i]->model != a0->model || adapters[i]->P != a0->P ||
            adapters[i]->targets != a0->targets || adapters[i]->rank != a0->rank ||
            adapters[i]->scale != a0->scale)
            return rs_error(ctx, RECSYS_E_INVALID,
                            "adapter merge: adapter %zu is a bank or of another shape", i);
    int mode = rs_opt_is(opts, RS_OPT_ADAPTER_MERGE, "ties") ? RS_MERGE_TIES : RS_MERGE_LINEAR;
    float density = (float)rs_opt_float(opts, RS_OPT_ADAPTER_TIES_DENSITY);
    /* the output's shape: the inputs' one, or another rank with the same
     * scale alpha/r (the re-factorisation keeps the delta, not alpha) */
    recsys_adapter shape = *a0;
    int r_out = (int)rs_opt_int(opts, RS_OPT_ADAPTER_MERGE_RANK);
    if (r_out > 0 && r_out != a0->rank) {
        shape.kind = RECSYS_ADAPTER_USER;
        shape.K = 1;
        shape.rank = r_out;
        shape.alpha = a0->scale * (float)r_out;
        recsys_status rs = layout_sites(ctx, &shape);
        if (rs) return rs;
        shape.scale = a0->scale;
    }
    recsys_status rc = adapter_alloc(ctx, &shape, out);
    if (rc) return rc;
    (*out)->ctx = ctx;
    (*out)->kind = RECSYS_ADAPTER_USER;
    const float **A = malloc(sizeof(float *) * n), **B = malloc(sizeof(float *) * n);
    if (!A || !B) rc = rs_error(ctx, RECSYS_E_NOMEM, "adapter merge: out of memory");
    for (int s = 0; !rc && s < a0->n_sites; s++) {
        const rs_lora_site *st = &a0->sites[s];
        for (size_t i = 0; i < n; i++) {
            A[i] = adapters[i]->params + st->off;
            B[i] = A[i] + (size_t)a0->rank * st->in;
        }
        const rs_lora_site *so = &(*out)->sites[s];
        float *Ao = (*out)->params + so->off, *Bo = Ao + (size_t)shape.rank * so->in;
        rc = rs_lora_merge(ctx, (int)n, A, B, weights, st->in, st->out, a0->rank, a0->scale, mode,
                           density, shape.rank, Ao, Bo);
    }
    free(A);
    free(B);
    if (rc) {
        recsys_adapter_free(*out);
        *out = NULL;
    }
    return rc;
}

static recsys_status rs_model_clone(recsys_ctx *ctx, const recsys_model *m, recsys_model **out)
{
    recsys_status rc = rs_model_create(ctx, &m->cfg, NULL, out);
    if (!rc) memcpy((*out)->params, m->params, sizeof(float) * m->n_params);
    return rc;
}

/* Fold a (USER or SHARED) adapter into a copy of its model. */
recsys_status recsys_adapter_fold(const recsys_adapter *a, recsys_model **out)
{
    rs_enter(a ? a->ctx : NULL);
    if (!a || !out) return RS_BAD_ARGS();
    *out = NULL;
    recsys_ctx *ctx = a->ctx;
    if (a->kind == RECSYS_ADAPTER_BANK)
        return rs_error(ctx, RECSYS_E_INVALID, "adapter fold: a bank has no single delta W "
                                               "(mix one user's adapter first)");
    const recsys_model *m = a->model;
    recsys_model *c = NULL;
    recsys_status rc = rs_model_clone(ctx, m, &c);
    if (rc) return rc;
    int nt = m->ops->tensors(&m->cfg, NULL, NULL, NULL);
    const char **names = malloc(sizeof(char *) * (size_t)nt);
    size_t *offs = malloc(sizeof(size_t) * (size_t)nt), *sizes = malloc(sizeof(size_t) * (size_t)nt);
    if (!names || !offs || !sizes) rc = rs_error(ctx, RECSYS_E_NOMEM, "adapter fold: out of memory");
    if (!rc) m->ops->tensors(&m->cfg, names, offs, sizes);
    for (int s = 0; !rc && s < a->n_sites; s++) {
        const rs_lora_site *st = &a->sites[s];
        const char *tn;
        int r0, in, outd;
        rs_target_geometry(&m->cfg, st->target, &tn, &r0, &in, &outd);
        int ti = -1;
        for (int i = 0; i < nt; i++)
            if (!strcmp(names[i], tn)) ti = i;
        if (ti < 0) {
            rc = rs_error(ctx, RECSYS_E_INTERNAL, "adapter fold: no tensor %s", tn);
            break;
        }
        size_t per_block = sizes[ti] / (size_t)m->cfg.blocks;
        float *W = c->params + offs[ti] + (size_t)st->block * per_block + (size_t)r0 * in;
        const float *A = a->params + st->off, *B = A + (size_t)a->rank * st->in;
        rs_lora_fold(ctx, st->in, st->out, a->rank, a->scale, A, B, W, st->in);
    }
    free(names);
    free(offs);
    free(sizes);
    if (rc) recsys_model_free(c);
    else *out = c;
    return rc;
}
