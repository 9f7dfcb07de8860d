/* recsys_adapter_inspect / _inspect_user: describe an adapter file or store
 * without the base model, checking every checksum (docs/ADAPTERS.md,
 * "Inspecting"). Behind `recsys adapters inspect`. */
#include "adapters/adapter.h"
#include "adapters/store.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A read-only mapping of a whole regular file. */
typedef struct mapped {
    const uint8_t *b;
    size_t len;
} mapped;

static recsys_status map_file(recsys_ctx *ctx, const char *path, mapped *m)
{
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rs_error(ctx, RECSYS_E_IO, "adapters '%s': %s", path, strerror(errno));
    struct stat sb;
    recsys_status rc = RECSYS_OK;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode))
        rc = rs_error(ctx, RECSYS_E_IO, "adapters '%s' is not a regular file", path);
    else if (sb.st_size < 8)
        rc = rs_error(ctx, RECSYS_E_FORMAT, "adapters '%s': too short (%lld bytes)", path,
                      (long long)sb.st_size);
    if (!rc) {
        void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) rc = rs_error(ctx, RECSYS_E_IO, "adapters '%s': %s", path, strerror(errno));
        else {
            m->b = p;
            m->len = (size_t)sb.st_size;
        }
    }
    close(fd);
    return rc;
}

static void unmap_file(mapped *m)
{
    if (m->b) munmap((void *)m->b, m->len);
}

/* The shape fields of a CONF text. */
typedef struct conf_shape {
    int kind, rank, blocks, dim, type, window, K;
    int32_t n_items;
    double alpha;
    int targets;               /* bits */
    int in[RS_TGT_COUNT], out[RS_TGT_COUNT]; /* from geometry=; 0 unknown */
    int64_t floats;
} conf_shape;

static int conf_int(const char *conf, size_t len, const char *key, int *v)
{
    char b[64];
    if (!rs_adapter_conf_get(conf, len, key, b, sizeof b)) return 0;
    char *e;
    long x = strtol(b, &e, 10);
    if (e == b || *e || x < 0 || x > 1000000000L) return 0;
    *v = (int)x;
    return 1;
}

static int target_of(const char *s, size_t n)
{
    for (int t = 0; t < RS_TGT_COUNT; t++)
        if (strlen(rs_target_name(t)) == n && !strncmp(rs_target_name(t), s, n)) return t;
    return -1;
}

static recsys_status parse_conf(recsys_ctx *ctx, const char *conf, size_t len, conf_shape *c)
{
    memset(c, 0, sizeof *c);
    char b[256];
    int ok = rs_adapter_conf_get(conf, len, "kind", b, sizeof b);
    c->kind = !ok ? -1 : !strcmp(b, "user") ? RECSYS_ADAPTER_USER
            : !strcmp(b, "shared") ? RECSYS_ADAPTER_SHARED
            : !strcmp(b, "bank") ? RECSYS_ADAPTER_BANK : -1;
    int dummy = 0;
    ok = c->kind >= 0 && conf_int(conf, len, "rank", &c->rank) && c->rank > 0 &&
         conf_int(conf, len, "model.blocks", &c->blocks) && conf_int(conf, len, "model.dim", &c->dim) &&
         conf_int(conf, len, "window", &c->window) && conf_int(conf, len, "bank_size", &c->K) &&
         conf_int(conf, len, "n_items", &dummy);
    c->n_items = dummy;
    if (ok && rs_adapter_conf_get(conf, len, "alpha", b, sizeof b)) c->alpha = strtod(b, NULL);
    else ok = 0;
    if (ok && rs_adapter_conf_get(conf, len, "floats", b, sizeof b)) c->floats = strtoll(b, NULL, 10);
    else ok = 0;
    if (ok && rs_adapter_conf_get(conf, len, "model.type", b, sizeof b))
        c->type = !strcmp(b, "hstu") ? RECSYS_MODEL_HSTU : RECSYS_MODEL_SASREC;
    else ok = 0;
    if (ok && rs_adapter_conf_get(conf, len, "targets", b, sizeof b))
        for (const char *p = b; *p;) {
            size_t n = strcspn(p, ",");
            int t = target_of(p, n);
            if (t < 0) ok = 0;
            else c->targets |= 1 << t;
            p += n + (p[n] == ',');
        }
    else ok = 0;
    /* bounds far above any real adapter keep the size arithmetic in range */
    if (!ok || !c->targets || !(c->alpha > 0) || c->rank > 256 || c->blocks < 1 ||
        c->blocks > 1024 || c->dim > (1 << 20))
        return rs_error(ctx, RECSYS_E_FORMAT, "adapters: the CONF text is incomplete or bad");
    if (c->kind != RECSYS_ADAPTER_BANK) c->K = 1;
    /* geometry=q:50x50,v:50x50 (files from 0.2.1 on) */
    if (rs_adapter_conf_get(conf, len, "geometry", b, sizeof b))
        for (const char *p = b; *p;) {
            size_t n = strcspn(p, ",");
            const char *colon = memchr(p, ':', n);
            int in = 0, out = 0, t = colon ? target_of(p, (size_t)(colon - p)) : -1;
            if (t >= 0 && sscanf(colon + 1, "%dx%d", &in, &out) == 2 && in > 0 && out > 0 &&
                in <= (1 << 20) && out <= (1 << 20)) {
                c->in[t] = in;
                c->out[t] = out;
            }
            p += n + (p[n] == ',');
        }
    return RECSYS_OK;
}

/* Sites' in/out known for every target and consistent with the float count
 * of one LoRA vector P? Older files lack geometry=: then try d x d for every
 * target (SASRec q, k, v, o; the defaults elsewhere), checked against P. */
static int geometry_known(conf_shape *c, int64_t P)
{
    for (int pass = 0; pass < 2; pass++) {
        int64_t sum = 0;
        for (int t = 0; t < RS_TGT_COUNT; t++) {
            if (!(c->targets & (1 << t))) continue;
            if (pass == 1 && !c->in[t]) {
                c->in[t] = c->dim;
                c->out[t] = c->dim;
            }
            sum += (int64_t)c->rank * (c->in[t] + c->out[t]);
        }
        if (sum * c->blocks == P) return 1;
    }
    return 0;
}

static recsys_status describe(recsys_ctx *ctx, const mapped *m, const char *path,
                              recsys_adapter_file_info *info, rs_store_view *view,
                              conf_shape *cs, const void **file_params)
{
    recsys_adapter_file_info f;
    memset(&f, 0, sizeof f);
    f.struct_size = info->struct_size;
    f.file_bytes = (int64_t)m->len;
    recsys_status rc;
    if (!memcmp(m->b, RS_STORE_MAGIC, 8)) {
        if ((rc = rs_store_parse(ctx, m->b, m->len, view))) return rc;
        if ((rc = parse_conf(ctx, view->conf, view->conf_len, cs))) return rc;
        f.is_store = 1;
        f.version = (int)view->version;
        f.dtype = (int)view->dtype;
        f.n_params = view->record_floats;
        f.n_users = (int64_t)view->n_users;
        f.records = (int64_t)view->n_records;
        f.bytes_per_user = (int64_t)view->rec_bytes;
    } else {
        const char *conf;
        size_t cl;
        uint64_t nf;
        if ((rc = rs_adapter_buffer_parse(ctx, m->b, m->len, &conf, &cl, &nf, file_params)))
            return rc;
        if ((rc = parse_conf(ctx, conf, cl, cs))) return rc;
        f.version = 1;
        f.n_params = (int64_t)nf;
        f.bytes_per_user = (int64_t)m->len;
    }
    if (cs->floats != f.n_params)
        return rs_error(ctx, RECSYS_E_FORMAT, "adapters '%s': %lld floats, the CONF says %lld",
                        path, (long long)f.n_params, (long long)cs->floats);
    f.kind = cs->kind;
    f.rank = cs->rank;
    f.alpha = cs->alpha;
    f.targets = cs->targets;
    f.window = cs->window;
    f.bank_size = cs->K;
    f.model_type = cs->type;
    f.model_dim = cs->dim;
    f.model_blocks = cs->blocks;
    f.n_items = cs->n_items;
    size_t n = info->struct_size < sizeof f ? info->struct_size : sizeof f;
    memcpy(info, &f, n);
    return RECSYS_OK;
}

recsys_status recsys_adapter_inspect(recsys_ctx *ctx, const char *path,
                                     recsys_adapter_file_info *info)
{
    rs_enter(ctx);
    if (!path || !info) return RS_BAD_ARGS();
    if (info->struct_size < offsetof(recsys_adapter_file_info, file_bytes) + sizeof(int64_t))
        return rs_error(ctx, RECSYS_E_INVALID, "recsys_adapter_inspect: struct_size too small");
    mapped m;
    recsys_status rc = map_file(ctx, path, &m);
    if (rc) return rc;
    rs_store_view v;
    conf_shape cs;
    const void *params = NULL;
    rc = describe(ctx, &m, path, info, &v, &cs, &params);
    if (!rc && info->is_store) {
        /* every record a user points at: magic, user id and CRC-32C */
        float *tmp = malloc(sizeof(float) * (v.record_floats ? v.record_floats : 1));
        if (!tmp) rc = rs_error(ctx, RECSYS_E_NOMEM, "adapters: out of memory");
        for (uint64_t u = 0; !rc && u < v.n_users; u++) {
            recsys_status r1 = rs_store_view_read(ctx, &v, u, tmp, NULL);
            if (r1 == RECSYS_OK) info->users_present++;
            else if (r1 != RECSYS_E_NOT_FOUND) rc = r1;
        }
        free(tmp);
    }
    unmap_file(&m);
    return rc;
}

/* ||B·A||_F² = <BᵀB, AAᵀ> (r x r Gram matrices), in double. */
static double lora_norm2(const float *A, const float *B, int r, int in, int out)
{
    double *ga = calloc((size_t)r * r, sizeof(double)), *gb = calloc((size_t)r * r, sizeof(double));
    double s = 0;
    if (!ga || !gb) {
        free(ga);
        free(gb);
        return NAN;
    }
    for (int i = 0; i < r; i++)
        for (int j = 0; j < r; j++) {
            double x = 0, y = 0;
            for (int k = 0; k < in; k++) x += (double)A[(size_t)i * in + k] * A[(size_t)j * in + k];
            for (int k = 0; k < out; k++) y += (double)B[(size_t)k * r + i] * B[(size_t)k * r + j];
            ga[i * r + j] = x;
            gb[i * r + j] = y;
        }
    for (int i = 0; i < r * r; i++) s += ga[i] * gb[i];
    free(ga);
    free(gb);
    return s > 0 ? s : 0;
}

recsys_status recsys_adapter_inspect_user(recsys_ctx *ctx, const char *path, int64_t user,
                                          double *norms, size_t n)
{
    rs_enter(ctx);
    if (!path || !norms || n < RECSYS_ADAPTER_N_TARGETS) return RS_BAD_ARGS();
    mapped m;
    recsys_status rc = map_file(ctx, path, &m);
    if (rc) return rc;
    recsys_adapter_file_info info = {.struct_size = sizeof info};
    rs_store_view v;
    conf_shape cs;
    const void *params = NULL;
    float *vec = NULL;
    rc = describe(ctx, &m, path, &info, &v, &cs, &params);
    if (!rc && info.kind == RECSYS_ADAPTER_BANK)
        rc = rs_error(ctx, RECSYS_E_INVALID, "adapters '%s': a bank has no single delta W", path);
    if (!rc && info.is_store != (user >= 0))
        rc = rs_error(ctx, RECSYS_E_INVALID, info.is_store ? "adapters '%s': a store needs a user"
                                                           : "adapters '%s': a file has no users",
                      path);
    if (!rc && !geometry_known(&cs, info.n_params))
        rc = rs_error(ctx, RECSYS_E_INVALID,
                      "adapters '%s': the file does not say its projections' sizes (made "
                      "before geometry= was written)", path);
    if (!rc && !(vec = malloc(sizeof(float) * (size_t)(info.n_params ? info.n_params : 1))))
        rc = rs_error(ctx, RECSYS_E_NOMEM, "adapters: out of memory");
    if (!rc) {
        if (info.is_store) rc = rs_store_view_read(ctx, &v, (uint64_t)user, vec, NULL);
        else memcpy(vec, params, sizeof(float) * (size_t)info.n_params);
    }
    if (!rc) {
        double sum[RS_TGT_COUNT] = {0};
        size_t off = 0;
        float scale = (float)cs.alpha / (float)cs.rank;
        for (int k = 0; k < cs.blocks; k++)
            for (int t = 0; t < RS_TGT_COUNT; t++) {
                if (!(cs.targets & (1 << t))) continue;
                const float *A = vec + off, *B = A + (size_t)cs.rank * cs.in[t];
                sum[t] += (double)scale * scale * lora_norm2(A, B, cs.rank, cs.in[t], cs.out[t]);
                off += (size_t)cs.rank * (cs.in[t] + cs.out[t]);
            }
        for (int t = 0; t < RECSYS_ADAPTER_N_TARGETS; t++)
            norms[t] = t < RS_TGT_COUNT && (cs.targets & (1 << t)) ? sqrt(sum[t]) : NAN;
    }
    free(vec);
    unmap_file(&m);
    return rc;
}
