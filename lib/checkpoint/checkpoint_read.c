/* Reading model checkpoints (format in docs/CHECKPOINT.md), defensively:
 * the file is streamed once, every length is checked against the bytes that
 * remain before anything is allocated, every section's CRC is checked
 * before its payload is used, and the END section's whole-file CRC and
 * length catch anything else. Any damage is RECSYS_E_FORMAT naming the
 * file, the section and the offset. */
#include "checkpoint/checkpoint_format.h"
#include "models/model_meta.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------- reading */

typedef struct ck_reader {
    recsys_ctx *ctx;
    const char *path;
    FILE *f;
    uint64_t size, pos;
    uint32_t file_crc, sec_crc;
} ck_reader;

static recsys_status bad(ck_reader *r, const char *fmt, ...) RS_PRINTF(2, 3);

static recsys_status bad(ck_reader *r, const char *fmt, ...)
{
    char msg[RS_ERRMSG_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rs_error_at(r->ctx, RECSYS_E_FORMAT, r->path, 0, 0, "%s", msg);
}

/* Exactly n bytes into dst (updating both CRCs). */
static recsys_status r_read(ck_reader *r, void *dst, size_t n)
{
    if (n > r->size - r->pos) return bad(r, "truncated at byte %" PRIu64, r->size);
    if (n && fread(dst, 1, n, r->f) != n) {
        if (ferror(r->f))
            return rs_error(r->ctx, RECSYS_E_IO, "cannot read checkpoint '%s': %s", r->path,
                            strerror(errno ? errno : EIO));
        return bad(r, "truncated at byte %" PRIu64 " (the file shrank while being read)",
                   r->pos);
    }
    r->file_crc = rs_crc32c(r->file_crc, dst, n);
    r->sec_crc = rs_crc32c(r->sec_crc, dst, n);
    r->pos += n;
    return RECSYS_OK;
}

/* Read n payload bytes and drop them (unwanted extra sections). */
static recsys_status r_skip(ck_reader *r, uint64_t n)
{
    unsigned char buf[4096];
    while (n) {
        size_t k = n < sizeof buf ? (size_t)n : sizeof buf;
        recsys_status st = r_read(r, buf, k);
        if (st) return st;
        n -= k;
    }
    return RECSYS_OK;
}

/* The 4-byte CRC after a payload, compared with the running section CRC. */
static recsys_status r_check_crc(ck_reader *r, const char *tag, uint64_t start)
{
    uint32_t want = r->sec_crc;
    unsigned char b[4];
    recsys_status st = r_read(r, b, 4);
    if (st) return st;
    if (get_u32(b) != want)
        return bad(r, "section '%.4s' at byte %" PRIu64 " is corrupted (CRC-32C 0x%08" PRIx32
                      " stored, 0x%08" PRIx32 " computed)",
                   tag, start, get_u32(b), want);
    return RECSYS_OK;
}

static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

/* CONF text -> a validated model config. */
static recsys_status parse_conf(ck_reader *r, char *text, rs_model_config *cfg)
{
    recsys_opts *o;
    recsys_status st = recsys_opts_new(NULL, &o);
    if (st) return rs_error(r->ctx, st, "out of memory");
    long long n_items = -1;
    int line = 0;
    for (char *s = text, *next; s && *s && !st; s = next) {
        line++;
        next = strchr(s, '\n');
        if (next) *next++ = 0;
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            st = bad(r, "config line %d is not key=value", line);
            break;
        }
        *eq = 0;
        if (!strcmp(s, "n_items")) {
            if (n_items >= 0 || !parse_int(eq + 1, 1, INT32_MAX - 1, &n_items))
                st = bad(r, "config line %d: bad or repeated n_items '%.40s'", line, eq + 1);
        } else if (strncmp(s, "model.", 6)) {
            st = bad(r, "config line %d: unknown key '%.60s'", line, s);
        } else {
            recsys_status set = recsys_opts_set(o, s, eq + 1);
            if (set == RECSYS_E_NOMEM) st = rs_error(r->ctx, set, "out of memory");
            else if (set == RECSYS_E_NOT_FOUND)
                st = bad(r, "config line %d: unknown key '%.60s' (written by a newer librecsys?)",
                         line, s);
            else if (set)
                st = bad(r, "config line %d: bad value '%.60s' for '%.60s'", line, eq + 1, s);
        }
    }
    if (!st && n_items < 0) st = bad(r, "the config has no n_items line");
    if (!st) {
        /* The file holds resolved values (time_bias on|off), so has_time is moot. */
        st = rs_model_config_from_opts(r->ctx, o, (int)n_items, 0, cfg);
        if (st == RECSYS_E_INVALID)
            st = bad(r, "the config is not valid: %s", recsys_ctx_errmsg(r->ctx));
    }
    recsys_opts_free(o);
    return st;
}

/* TENS payload must describe exactly the layout this library uses. */
static recsys_status check_tensors(ck_reader *r, const unsigned char *p, size_t len,
                                   const recsys_model *m)
{
    tensor_dir t;
    if (tensor_dir_of(m, &t)) return rs_error(r->ctx, RECSYS_E_NOMEM, "out of memory");
    recsys_status st = RECSYS_OK;
    size_t off = 4;
    uint32_t n = len >= 4 ? get_u32(p) : 0;
    if (len < 4 || n != (uint32_t)t.n) {
        st = bad(r, "the tensor directory lists %" PRIu32 " tensors; the config needs %d", n,
                 t.n);
    }
    for (uint32_t i = 0; !st && i < n; i++) {
        size_t nl = len - off >= 2 ? (size_t)p[off] | (size_t)p[off + 1] << 8 : SIZE_MAX;
        if (nl == SIZE_MAX || nl > CK_NAME_MAX || len - off - 2 < nl + 16) {
            st = bad(r, "the tensor directory is malformed at entry %" PRIu32, i);
            break;
        }
        const char *name = (const char *)p + off + 2;
        uint64_t o = get_u64(p + off + 2 + nl), sz = get_u64(p + off + 2 + nl + 8);
        if (nl != strlen(t.names[i]) || memcmp(name, t.names[i], nl) || o != t.offsets[i] ||
            sz != t.sizes[i])
            st = bad(r, "tensor %" PRIu32 " is '%.*s' at %" PRIu64 " (+%" PRIu64
                        ") but this librecsys expects '%s' at %zu (+%zu)",
                     i, (int)nl, name, o, sz, t.names[i], t.offsets[i], t.sizes[i]);
        off += 2 + nl + 16;
    }
    if (!st && off != len) st = bad(r, "the tensor directory has %zu stray bytes", len - off);
    tensor_dir_free(&t);
    return st;
}

/* Every weight finite; names the tensor of the first bad one. */
static recsys_status check_finite(ck_reader *r, const recsys_model *m)
{
    for (size_t i = 0; i < m->n_params; i++) {
        if (isfinite(m->params[i])) continue;
        tensor_dir t;
        const char *name = "?";
        if (!tensor_dir_of(m, &t))
            for (int k = 0; k < t.n; k++)
                if (i >= t.offsets[k] && i - t.offsets[k] < t.sizes[k]) name = t.names[k];
        char where[128];
        snprintf(where, sizeof where, "%s", name);
        tensor_dir_free(&t);
        return bad(r, "weight %zu (tensor '%s') is %s", i, where,
                   isnan(m->params[i]) ? "NaN" : "infinite");
    }
    return RECSYS_OK;
}

typedef struct load_out {
    recsys_model *model;
    rs_ck_section *extra;
    int n_extra;
    int meta_seen; /* bits: 1 META, 2 IIDS */
} load_out;

static void load_out_free(load_out *o)
{
    recsys_model_free(o->model);
    rs_ck_sections_free(o->extra, o->n_extra);
    memset(o, 0, sizeof *o);
}

void rs_ck_sections_free(rs_ck_section *s, int n)
{
    if (!s) return;
    for (int i = 0; i < n; i++) free(s[i].data);
    free(s);
}

/* One section after CONF/TENS/WGHT: kept (keep) or checked and dropped. */
static recsys_status read_extra(ck_reader *r, load_out *o, const char *tag, uint64_t len,
                                uint64_t start, int keep)
{
    for (int i = 0; i < o->n_extra; i++)
        if (!memcmp(o->extra[i].tag, tag, 4))
            return bad(r, "section '%.4s' appears twice (second at byte %" PRIu64 ")", tag,
                       start);
    if (!keep) {
        recsys_status st = r_skip(r, len);
        return st ? st : r_check_crc(r, tag, start);
    }
    rs_ck_section *grown = realloc(o->extra, (size_t)(o->n_extra + 1) * sizeof *grown);
    if (!grown) return rs_error(r->ctx, RECSYS_E_NOMEM, "out of memory");
    o->extra = grown;
    rs_ck_section *s = &o->extra[o->n_extra++];
    memcpy(s->tag, tag, 4);
    s->tag[4] = 0;
    s->size = (size_t)len;
    s->data = malloc(len ? (size_t)len : 1); /* len is bounded by the file size */
    if (!s->data) return rs_error(r->ctx, RECSYS_E_NOMEM, "out of memory for section '%s'", s->tag);
    recsys_status st = r_read(r, s->data, (size_t)len);
    return st ? st : r_check_crc(r, tag, start);
}

/* IIDS / META (version 2): the model's external item ids and data
 * description, decoded into the model (each at most once). */
static recsys_status read_model_meta(ck_reader *r, load_out *o, const char *tag, uint64_t len,
                                     uint64_t start)
{
    int bit = !strcmp(tag, RS_CK_TAG_META) ? 1 : 2;
    if (o->meta_seen & bit)
        return bad(r, "section '%.4s' appears twice (second at byte %" PRIu64 ")", tag, start);
    o->meta_seen |= bit;
    unsigned char *p = malloc(len ? (size_t)len : 1); /* len is bounded by the file size */
    if (!p) return rs_error(r->ctx, RECSYS_E_NOMEM, "out of memory for section '%s'", tag);
    recsys_status st = r_read(r, p, (size_t)len);
    if (!st) st = r_check_crc(r, tag, start);
    if (!st) {
        st = rs_model_meta_decode(r->ctx, o->model, tag, p, (size_t)len);
        if (st == RECSYS_E_FORMAT) st = bad(r, "%s", recsys_ctx_errmsg(r->ctx));
    }
    free(p);
    return st;
}

static recsys_status read_sections(ck_reader *r, load_out *o, int keep_extra)
{
    static const char *order[] = {"CONF", "TENS", "WGHT"};
    unsigned char *tens = NULL;
    size_t tens_len = 0;
    recsys_status st = RECSYS_OK;
    int seen = 0;       /* how many of CONF, TENS, WGHT have been read */
    int repeated = 0;   /* set when a CONF, TENS or WGHT comes a second time */
    for (;;) {
        uint64_t start = r->pos, left = r->size - r->pos;
        uint32_t crc_before = r->file_crc;
        if (left < CK_SECTION_OVERHEAD) {
            st = bad(r, "truncated at byte %" PRIu64 ": no END section", r->size);
            break;
        }
        unsigned char head[CK_SECTION_HEAD];
        r->sec_crc = 0;
        if ((st = r_read(r, head, sizeof head))) break;
        char tag[5] = {0};
        memcpy(tag, head, 4);
        uint64_t len = get_u64(head + 4);
        if (!tag_is_valid(tag)) {
            st = bad(r, "bad section tag at byte %" PRIu64, start);
            break;
        }
        if (len > left - CK_SECTION_OVERHEAD) {
            st = bad(r, "section '%s' at byte %" PRIu64 " claims %" PRIu64
                        " bytes but only %" PRIu64 " remain (truncated?)",
                     tag, start, len, left - CK_SECTION_OVERHEAD);
            break;
        }
        for (int k = 0; k < seen; k++) repeated |= !strcmp(tag, order[k]);
        if (repeated) {
            st = bad(r, "section '%s' appears twice (second at byte %" PRIu64 ")", tag, start);
            break;
        }
        if (seen < 3 && strcmp(tag, order[seen])) {
            st = bad(r, "section '%s' at byte %" PRIu64 " where '%s' was expected", tag, start,
                     order[seen]);
            break;
        }
        if (!strcmp(tag, "CONF")) {
            if (len > CK_CONF_MAX) { st = bad(r, "the config section is too large"); break; }
            char *text = malloc((size_t)len + 1);
            if (!text) { st = rs_error(r->ctx, RECSYS_E_NOMEM, "out of memory"); break; }
            st = r_read(r, text, (size_t)len);
            if (!st) st = r_check_crc(r, tag, start);
            text[st ? 0 : len] = 0;
            if (!st && memchr(text, 0, (size_t)len)) st = bad(r, "the config holds a NUL byte");
            rs_model_config cfg;
            if (!st) st = parse_conf(r, text, &cfg);
            free(text);
            /* Bound the allocation by what the file can hold before making
             * the model (a CRC-valid but absurd config must not allocate). */
            const rs_model_ops *ops = st ? NULL : rs_model_ops_for(cfg.type);
            if (ops && ops->n_params(&cfg) > (r->size - r->pos) / sizeof(float))
                st = bad(r, "the config needs %zu parameters (%zu bytes) but the file has only "
                            "%" PRIu64 " bytes left",
                         ops->n_params(&cfg), ops->n_params(&cfg) * sizeof(float),
                         r->size - r->pos);
            if (!st) {
                st = rs_model_create(r->ctx, &cfg, NULL, &o->model);
                if (st == RECSYS_E_INVALID)
                    st = bad(r, "cannot build the model: %s", recsys_ctx_errmsg(r->ctx));
            }
        } else if (!strcmp(tag, "TENS")) {
            if (len > CK_TENS_MAX) { st = bad(r, "the tensor directory is too large"); break; }
            tens_len = (size_t)len;
            tens = malloc(tens_len ? tens_len : 1);
            if (!tens) { st = rs_error(r->ctx, RECSYS_E_NOMEM, "out of memory"); break; }
            st = r_read(r, tens, tens_len);
            if (!st) st = r_check_crc(r, tag, start);
            if (!st) st = check_tensors(r, tens, tens_len, o->model);
        } else if (!strcmp(tag, "WGHT")) {
            recsys_model *m = o->model;
            if (len != (uint64_t)m->n_params * sizeof(float)) {
                st = bad(r, "the weights hold %" PRIu64 " bytes but the config needs %zu "
                            "parameters (%zu bytes)",
                         len, m->n_params, m->n_params * sizeof(float));
                break;
            }
            st = r_read(r, m->params, (size_t)len);
            if (!st) st = r_check_crc(r, tag, start);
            if (!st && CK_BIG_ENDIAN) swap_f32(m->params, m->n_params);
        } else if (!strcmp(tag, "END ")) {
            unsigned char end[CK_END_PAYLOAD];
            if (len != CK_END_PAYLOAD) {
                st = bad(r, "the END section has %" PRIu64 " bytes, not %u", len,
                         CK_END_PAYLOAD);
                break;
            }
            if ((st = r_read(r, end, sizeof end)) || (st = r_check_crc(r, tag, start))) break;
            if (get_u64(end) != r->size)
                st = bad(r, "the file has %" PRIu64 " bytes but was written with %" PRIu64,
                         r->size, get_u64(end));
            else if (get_u32(end + 8) != crc_before)
                st = bad(r, "the whole-file CRC-32C does not match: the file is corrupted");
            break; /* END is last: its length check also rules out trailing bytes */
        } else if (!strcmp(tag, RS_CK_TAG_META) || !strcmp(tag, RS_CK_TAG_ITEM_IDS)) {
            st = read_model_meta(r, o, tag, len, start);
        } else if (tag_is_reserved(tag)) {
            st = bad(r, "section '%s' appears twice (second at byte %" PRIu64 ")", tag, start);
        } else {
            st = read_extra(r, o, tag, len, start, keep_extra);
        }
        if (st) break;
        if (seen < 3) seen++;
    }
    free(tens);
    return st;
}

static recsys_status load_impl(recsys_ctx *ctx, const char *path, load_out *o, int keep_extra)
{
    memset(o, 0, sizeof *o);
    ck_reader r = {.ctx = ctx, .path = path};
    /* Non-blocking open: a FIFO at path must not hang the call. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return rs_error(ctx, RECSYS_E_IO, "cannot open checkpoint '%s': %s", path,
                        strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return rs_error(ctx, RECSYS_E_IO, "checkpoint '%s' is not a regular file", path);
    }
    r.f = fdopen(fd, "rb");
    if (!r.f) {
        close(fd);
        return rs_error(ctx, RECSYS_E_NOMEM, "cannot open checkpoint '%s': %s", path,
                        strerror(errno));
    }
    recsys_status st = RECSYS_OK;
    r.size = (uint64_t)sb.st_size;
    unsigned char h[CK_HEADER_SIZE];
    if (!st && r.size < CK_HEADER_SIZE)
        st = bad(&r, "only %" PRIu64 " bytes: too short to be a checkpoint", r.size);
    if (!st) st = r_read(&r, h, sizeof h);
    if (!st && memcmp(h, CK_MAGIC, 8))
        st = bad(&r, "not a librecsys checkpoint (bad magic)");
    if (!st && (get_u32(h + 8) < 1 || get_u32(h + 8) > CK_VERSION))
        st = bad(&r, "format version %" PRIu32 " is not supported (this librecsys reads "
                     "versions 1 to %u)", get_u32(h + 8), CK_VERSION);
    if (!st && get_u32(h + 12) != 0)
        st = bad(&r, "unknown flags 0x%08" PRIx32, get_u32(h + 12));
    if (!st) st = read_sections(&r, o, keep_extra);
    if (!st && r.pos != r.size)
        st = bad(&r, "%" PRIu64 " bytes after the END section", r.size - r.pos);
    if (!st) st = check_finite(&r, o->model);
    fclose(r.f);
    if (st) load_out_free(o);
    return st;
}

recsys_status rs_checkpoint_load_ex(recsys_ctx *ctx, const char *path, recsys_model **out,
                                    rs_ck_section **extra, int *n_extra)
{
    if (out) *out = NULL;
    if (extra) *extra = NULL;
    if (n_extra) *n_extra = 0;
    if (!path || !out || (!extra) != (!n_extra))
        return rs_error(ctx, RECSYS_E_INVALID, "checkpoint load: NULL argument");
    load_out o;
    recsys_status st = load_impl(ctx, path, &o, extra != NULL);
    if (st) return st;
    *out = o.model;
    if (extra) {
        *extra = o.extra;
        *n_extra = o.n_extra;
    }
    return RECSYS_OK;
}

recsys_status recsys_model_load(recsys_ctx *ctx, const char *path, recsys_model **out)
{
    rs_enter(ctx);
    return rs_checkpoint_load_ex(ctx, path, out, NULL, NULL);
}

/* ------------------------------------------------------- trainer state */

recsys_status rs_checkpoint_load_train(recsys_ctx *ctx, const char *path, recsys_model *model,
                                       rs_train_state *state)
{
    if (!path || !model || !state || !state->m || !state->v)
        return rs_error(ctx, RECSYS_E_INVALID, "checkpoint resume: NULL argument");
    load_out o;
    recsys_status st = load_impl(ctx, path, &o, 1);
    if (st) return st;
    ck_reader r = {.ctx = ctx, .path = path}; /* for messages */
    rs_ck_section *sec = NULL;
    for (int i = 0; i < o.n_extra; i++)
        if (!strcmp(o.extra[i].tag, "OPTS")) sec = &o.extra[i];
    char *mine = NULL, *theirs = NULL;
    recsys_status st_conf;
    if (!sec) {
        st = bad(&r, "no trainer state (OPTS section): this is a plain model file");
    } else if (!(mine = rs_ck_conf_text(model, &st_conf)) || !(theirs = rs_ck_conf_text(o.model, &st_conf))) {
        st = rs_error(ctx, st_conf, "cannot describe the model config (%s)",
                      recsys_status_str(st_conf));
    } else if (strcmp(mine, theirs) || model->n_params != o.model->n_params) {
        st = bad(&r, "the checkpoint's model config differs from the trainer's model");
    }
    free(mine);
    free(theirs);
    size_t n = model->n_params;
    const unsigned char *p = sec ? sec->data : NULL;
    if (!st && (sec->size < CK_OPTS_HEAD || get_u32(p) != CK_OPTS_VERSION ||
                get_u32(p + 4) != 0 || get_u64(p + 56) != (uint64_t)n ||
                sec->size != CK_OPTS_HEAD + 8 * (uint64_t)n))
        st = bad(&r, "the trainer state has an unknown version or does not fit the model");
    /* Epochs are counted in an int and trainer.epochs is at most 10^9; Adam's
     * step must leave room to count on. */
    if (!st && (get_u64(p + 8) > (uint64_t)1000000000 || get_u64(p + 16) > ((uint64_t)1 << 62)))
        st = bad(&r, "the trainer state has an impossible epoch (%" PRIu64 ") or step count "
                     "(%" PRIu64 ")", get_u64(p + 8), get_u64(p + 16));
    if (!st) {
        rs_train_state got;
        got.epoch = (int64_t)get_u64(p + 8);
        got.step = (int64_t)get_u64(p + 16);
        for (int i = 0; i < 4; i++) got.rng[i] = get_u64(p + 24 + 8 * i);
        /* The moments, moved to the front of our own (malloc-aligned) buffer. */
        float *mv = (float *)sec->data;
        memmove(mv, p + CK_OPTS_HEAD, 8 * n);
        if (CK_BIG_ENDIAN) swap_f32(mv, 2 * n);
        for (size_t i = 0; i < n && !st; i++)
            if (!isfinite(mv[i]) || !isfinite(mv[n + i]) || mv[n + i] < 0)
                st = bad(&r, "the optimiser moments are invalid at parameter %zu", i);
        if (!st) {
            memcpy(model->params, o.model->params, n * sizeof(float));
            memcpy(state->m, mv, n * sizeof(float));
            memcpy(state->v, mv + n, n * sizeof(float));
            state->epoch = got.epoch;
            state->step = got.step;
            memcpy(state->rng, got.rng, sizeof got.rng);
        }
    }
    load_out_free(&o);
    return st;
}
