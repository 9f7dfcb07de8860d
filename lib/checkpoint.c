/* Model checkpoints: a versioned file of CRC-32C checked sections (layout
 * in docs/CHECKPOINT.md), written atomically and read defensively.
 *
 * Writing goes to a temp file next to the target, then fsync, rename and a
 * directory fsync, so a crash leaves either the old file or the new one.
 * Reading streams the file once: every length is checked against the bytes
 * that remain before anything is allocated, every section's CRC is checked
 * before its payload is used, and the END section's whole-file CRC and
 * length catch anything else. Any damage is RECSYS_E_FORMAT naming the file,
 * the section and the offset. */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CK_MAGIC "RECSYSCK"
#define CK_VERSION 1u
#define CK_HEADER_SIZE 16u           /* magic 8, version 4, flags 4 */
#define CK_SECTION_HEAD 12u          /* tag 4, length 8 */
#define CK_SECTION_OVERHEAD 16u      /* head + CRC 4 */
#define CK_END_PAYLOAD 12u           /* total length 8, file CRC 4 */
#define CK_CONF_MAX ((uint64_t)1 << 20)  /* config text: a few hundred bytes in practice */
#define CK_TENS_MAX ((uint64_t)16 << 20) /* tensor directory */
#define CK_NAME_MAX 255u             /* tensor name bytes */
#define CK_OPTS_VERSION 1u
#define CK_OPTS_HEAD 64u             /* version, flags, epoch, step, rng[4], n */
#define CK_IO_CHUNK ((size_t)1 << 16)

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define CK_BIG_ENDIAN 1
#else
#define CK_BIG_ENDIAN 0
#endif

/* ------------------------------------------------------------ encoding */

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void swap_f32(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        u = (u >> 24) | ((u >> 8) & 0xFF00u) | ((u << 8) & 0xFF0000u) | (u << 24);
        memcpy(&x[i], &u, 4);
    }
}

static int tag_is_valid(const char *tag)
{
    for (int i = 0; i < 4; i++)
        if (tag[i] < 0x20 || tag[i] > 0x7E) return 0;
    return 1;
}

static int tag_is_reserved(const char *tag)
{
    return !memcmp(tag, "CONF", 4) || !memcmp(tag, "TENS", 4) || !memcmp(tag, "WGHT", 4) ||
           !memcmp(tag, "END ", 4);
}

/* ----------------------------------------------------------- the config */

typedef struct strbuf {
    char *s;
    size_t len, cap;
    int oom;
} strbuf;

static void sb_add(strbuf *b, const char *a, const char *c, const char *d)
{
    size_t n = strlen(a) + strlen(c) + strlen(d);
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = 2 * (b->len + n + 1) + 256;
        char *s = realloc(b->s, cap);
        if (!s) { b->oom = 1; return; }
        b->s = s;
        b->cap = cap;
    }
    b->len += (size_t)sprintf(b->s + b->len, "%s%s%s", a, c, d);
}

/* The CONF text of a model: a comment, n_items and every model.* key.
 * Returns NULL on out of memory or a value that cannot be written. */
static char *conf_text(const recsys_model *m, recsys_status *st)
{
    recsys_opts *o = NULL;
    strbuf b = {0};
    char n_items[32];
    *st = recsys_opts_new(NULL, &o);
    if (!*st) *st = rs_model_config_to_opts(&m->cfg, o);
    if (*st) {
        recsys_opts_free(o);
        return NULL;
    }
    snprintf(n_items, sizeof n_items, "%d", m->cfg.n_items);
    sb_add(&b, "# librecsys ", RECSYS_VERSION_STRING, " model checkpoint\n");
    sb_add(&b, "n_items=", n_items, "\n");
    for (int i = 0; i < recsys_opts_count(o); i++) {
        const char *key = recsys_opts_key(o, i), *v = NULL;
        if (strncmp(key, "model.", 6) || recsys_opts_get(o, key, &v)) continue;
        if (strchr(v, '\n')) { *st = RECSYS_E_INTERNAL; break; }
        sb_add(&b, key, "=", v);
        sb_add(&b, "\n", "", "");
    }
    recsys_opts_free(o);
    if (!*st && b.oom) *st = RECSYS_E_NOMEM;
    if (*st) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* ------------------------------------------------------------- writing */

typedef struct ck_writer {
    recsys_ctx *ctx;
    const char *path;
    int fd;
    unsigned char *buf;
    size_t used;
    uint32_t file_crc, sec_crc;
    uint64_t total, sec_left;
    recsys_status st;
} ck_writer;

static void w_flush(ck_writer *w)
{
    size_t off = 0;
    while (!w->st && off < w->used) {
        ssize_t n = write(w->fd, w->buf + off, w->used - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            w->st = rs_error(w->ctx, RECSYS_E_IO, "cannot write checkpoint '%s': %s", w->path,
                             n < 0 ? strerror(errno) : "short write");
        else
            off += (size_t)n;
    }
    w->used = 0;
}

/* Bytes into the file (and the whole-file CRC). */
static void w_raw(ck_writer *w, const void *data, size_t n)
{
    const unsigned char *p = data;
    w->file_crc = rs_crc32c(w->file_crc, p, n);
    w->total += n;
    while (n && !w->st) {
        size_t k = CK_IO_CHUNK - w->used < n ? CK_IO_CHUNK - w->used : n;
        memcpy(w->buf + w->used, p, k);
        w->used += k;
        p += k;
        n -= k;
        if (w->used == CK_IO_CHUNK) w_flush(w);
    }
}

static void w_section_begin(ck_writer *w, const char *tag, uint64_t len)
{
    unsigned char head[CK_SECTION_HEAD];
    memcpy(head, tag, 4);
    put_u64(head + 4, len);
    w_raw(w, head, sizeof head);
    w->sec_crc = rs_crc32c(0, head, sizeof head);
    w->sec_left = len;
}

static void w_payload(ck_writer *w, const void *data, size_t n)
{
    if (n > w->sec_left) {
        if (!w->st) w->st = rs_error(w->ctx, RECSYS_E_INTERNAL, "checkpoint section overflow");
        return;
    }
    w->sec_crc = rs_crc32c(w->sec_crc, data, n);
    w->sec_left -= n;
    w_raw(w, data, n);
}

static void w_floats(ck_writer *w, const float *x, size_t n)
{
    if (!CK_BIG_ENDIAN) {
        w_payload(w, x, n * sizeof(float));
        return;
    }
    float tmp[1024];
    for (size_t i = 0; i < n && !w->st; i += 1024) {
        size_t k = n - i < 1024 ? n - i : 1024;
        memcpy(tmp, x + i, k * sizeof(float));
        swap_f32(tmp, k);
        w_payload(w, tmp, k * sizeof(float));
    }
}

static void w_section_end(ck_writer *w)
{
    unsigned char crc[4];
    if (w->sec_left && !w->st)
        w->st = rs_error(w->ctx, RECSYS_E_INTERNAL, "checkpoint section underflow");
    put_u32(crc, w->sec_crc);
    w_raw(w, crc, 4);
}

/* A tensor directory from the model's ops (count 0 when the family has none). */
typedef struct tensor_dir {
    int n;
    const char **names;
    size_t *offsets, *sizes;
} tensor_dir;

static void tensor_dir_free(tensor_dir *t)
{
    free(t->names);
    free(t->offsets);
    free(t->sizes);
    memset(t, 0, sizeof *t);
}

static recsys_status tensor_dir_of(const recsys_model *m, tensor_dir *t)
{
    memset(t, 0, sizeof *t);
    if (!m->ops->tensors) return RECSYS_OK;
    int n = m->ops->tensors(&m->cfg, NULL, NULL, NULL);
    if (n <= 0) return RECSYS_OK;
    t->names = calloc((size_t)n, sizeof *t->names);
    t->offsets = calloc((size_t)n, sizeof *t->offsets);
    t->sizes = calloc((size_t)n, sizeof *t->sizes);
    if (!t->names || !t->offsets || !t->sizes) {
        tensor_dir_free(t);
        return RECSYS_E_NOMEM;
    }
    t->n = m->ops->tensors(&m->cfg, t->names, t->offsets, t->sizes);
    return RECSYS_OK;
}

static void write_tensors(ck_writer *w, const tensor_dir *t)
{
    uint64_t len = 4;
    for (int i = 0; i < t->n; i++) len += 2 + strlen(t->names[i]) + 16;
    w_section_begin(w, "TENS", len);
    unsigned char b[16];
    put_u32(b, (uint32_t)t->n);
    w_payload(w, b, 4);
    for (int i = 0; i < t->n; i++) {
        size_t nl = strlen(t->names[i]);
        b[0] = (unsigned char)nl;
        b[1] = (unsigned char)(nl >> 8);
        w_payload(w, b, 2);
        w_payload(w, t->names[i], nl);
        put_u64(b, t->offsets[i]);
        put_u64(b + 8, t->sizes[i]);
        w_payload(w, b, 16);
    }
    w_section_end(w);
}

static void write_train_state(ck_writer *w, const rs_train_state *s, size_t n)
{
    unsigned char h[CK_OPTS_HEAD];
    put_u32(h, CK_OPTS_VERSION);
    put_u32(h + 4, 0);
    put_u64(h + 8, (uint64_t)s->epoch);
    put_u64(h + 16, (uint64_t)s->step);
    for (int i = 0; i < 4; i++) put_u64(h + 24 + 8 * i, s->rng[i]);
    put_u64(h + 56, (uint64_t)n);
    w_section_begin(w, "OPTS", CK_OPTS_HEAD + 8 * (uint64_t)n);
    w_payload(w, h, sizeof h);
    w_floats(w, s->m, n);
    w_floats(w, s->v, n);
    w_section_end(w);
}

/* Header and every section into the open temp file. */
static void write_all(ck_writer *w, const recsys_model *m, const char *conf, const tensor_dir *t,
                      const rs_ck_section *extra, int n_extra, const rs_train_state *state)
{
    unsigned char h[CK_HEADER_SIZE];
    memcpy(h, CK_MAGIC, 8);
    put_u32(h + 8, CK_VERSION);
    put_u32(h + 12, 0);
    w_raw(w, h, sizeof h);

    w_section_begin(w, "CONF", strlen(conf));
    w_payload(w, conf, strlen(conf));
    w_section_end(w);
    write_tensors(w, t);
    w_section_begin(w, "WGHT", (uint64_t)m->n_params * sizeof(float));
    w_floats(w, m->params, m->n_params);
    w_section_end(w);
    if (state) write_train_state(w, state, m->n_params);
    for (int i = 0; i < n_extra; i++) {
        w_section_begin(w, extra[i].tag, extra[i].size);
        if (extra[i].size) w_payload(w, extra[i].data, extra[i].size);
        w_section_end(w);
    }
    unsigned char end[CK_END_PAYLOAD];
    put_u64(end, w->total + CK_SECTION_OVERHEAD + CK_END_PAYLOAD);
    put_u32(end + 8, w->file_crc);
    w_section_begin(w, "END ", CK_END_PAYLOAD);
    w_payload(w, end, sizeof end);
    w_section_end(w);
    w_flush(w);
}

/* fsync the directory holding path, so the rename itself is durable. */
static recsys_status sync_dir(recsys_ctx *ctx, const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
    recsys_status st = RECSYS_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP))
        st = rs_error(ctx, RECSYS_E_IO,
                      "checkpoint '%s' was written but its directory could not be synced: %s",
                      path, strerror(errno));
    if (fd >= 0) close(fd);
    free(dir);
    return st;
}

static recsys_status save_impl(recsys_ctx *ctx, const recsys_model *m, const char *path,
                               const rs_ck_section *extra, int n_extra,
                               const rs_train_state *state)
{
    if (!m || !path || !*path || n_extra < 0 || (n_extra && !extra))
        return rs_error(ctx, RECSYS_E_INVALID, "checkpoint save: NULL or empty argument");
    if (!m->params && m->n_params)
        return rs_error(ctx, RECSYS_E_INVALID, "checkpoint save: the model has no weights");
    if (state && (!state->m || !state->v || state->epoch < 0 || state->step < 0))
        return rs_error(ctx, RECSYS_E_INVALID, "checkpoint save: incomplete trainer state");
    for (int i = 0; i < n_extra; i++) {
        const char *tag = extra[i].tag;
        if (strnlen(tag, sizeof extra[i].tag) != 4 || !tag_is_valid(tag) ||
            tag_is_reserved(tag) || (state && !memcmp(tag, "OPTS", 4)) ||
            (extra[i].size && !extra[i].data))
            return rs_error(ctx, RECSYS_E_INVALID,
                            "checkpoint save: bad extra section '%.8s' (4 printable characters, "
                            "not CONF, TENS, WGHT or END, with data)", tag);
        for (int j = 0; j < i; j++)
            if (!memcmp(extra[j].tag, tag, 4))
                return rs_error(ctx, RECSYS_E_INVALID,
                                "checkpoint save: section '%s' given twice", tag);
    }

    recsys_status st;
    char *conf = conf_text(m, &st);
    if (!conf)
        return rs_error(ctx, st, "checkpoint save: cannot describe the model config (%s)",
                        recsys_status_str(st));
    tensor_dir t;
    st = tensor_dir_of(m, &t);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    unsigned char *buf = malloc(CK_IO_CHUNK);
    if (st || !tmp || !buf) {
        free(conf);
        free(tmp);
        free(buf);
        tensor_dir_free(&t);
        return rs_error(ctx, RECSYS_E_NOMEM, "out of memory saving '%s'", path);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);

    ck_writer w = {.ctx = ctx, .path = path, .buf = buf};
    w.fd = mkostemp(tmp, O_CLOEXEC);
    if (w.fd < 0) {
        w.st = rs_error(ctx, RECSYS_E_IO, "cannot create a temporary file next to '%s': %s",
                        path, strerror(errno));
    } else {
        (void)fchmod(w.fd, 0644); /* mkstemp makes 0600; models are not secret */
        write_all(&w, m, conf, &t, extra, n_extra, state);
        if (!w.st && fsync(w.fd) != 0)
            w.st = rs_error(ctx, RECSYS_E_IO, "cannot sync checkpoint '%s': %s", path,
                            strerror(errno));
        if (close(w.fd) != 0 && !w.st)
            w.st = rs_error(ctx, RECSYS_E_IO, "cannot close checkpoint '%s': %s", path,
                            strerror(errno));
        if (!w.st && rename(tmp, path) != 0)
            w.st = rs_error(ctx, RECSYS_E_IO, "cannot move the checkpoint into place at '%s': %s",
                            path, strerror(errno));
        if (w.st) unlink(tmp);
        else w.st = sync_dir(ctx, path);
    }
    free(conf);
    free(tmp);
    free(buf);
    tensor_dir_free(&t);
    return w.st;
}

recsys_status rs_checkpoint_save_ex(recsys_ctx *ctx, const recsys_model *model,
                                    const char *path, const rs_ck_section *extra, int n_extra)
{
    return save_impl(ctx, model, path, extra, n_extra, NULL);
}

recsys_status rs_checkpoint_save_train(recsys_ctx *ctx, const recsys_model *model,
                                       const char *path, const rs_train_state *state)
{
    if (!state) return rs_error(ctx, RECSYS_E_INVALID, "checkpoint save: state is NULL");
    return save_impl(ctx, model, path, NULL, 0, state);
}

recsys_status recsys_model_save(recsys_ctx *ctx, const recsys_model *model, const char *path)
{
    if (!ctx) return RECSYS_E_INVALID;
    return save_impl(ctx, model, path, NULL, 0, NULL);
}

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

static recsys_status read_sections(ck_reader *r, load_out *o, int keep_extra)
{
    static const char *order[] = {"CONF", "TENS", "WGHT"};
    unsigned char *tens = NULL;
    size_t tens_len = 0;
    recsys_status st = RECSYS_OK;
    int seen = 0;       /* how many of CONF, TENS, WGHT have been read */
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
    if (!st && get_u32(h + 8) != CK_VERSION)
        st = bad(&r, "format version %" PRIu32 " is not supported (this librecsys reads "
                     "version %u)", get_u32(h + 8), CK_VERSION);
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
    } else if (!(mine = conf_text(model, &st_conf)) || !(theirs = conf_text(o.model, &st_conf))) {
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
    if (!st && (get_u64(p + 8) > INT64_MAX || get_u64(p + 16) > INT64_MAX))
        st = bad(&r, "the trainer state has an impossible epoch or step count");
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
