/* Writing model checkpoints (format in docs/CHECKPOINT.md): to a temp file
 * next to the target, then fsync, rename and a directory fsync, so a crash
 * leaves either the old file or the new one, never a broken one. */
#include "checkpoint/checkpoint_format.h"
#include "models/model_meta.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
char *rs_ck_conf_text(const recsys_model *m, recsys_status *st)
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
    void *ids, *meta;
    size_t ids_len, meta_len;
    if (rs_model_meta_encode(m, &ids, &ids_len, &meta, &meta_len)) {
        if (!w->st) w->st = rs_error(w->ctx, RECSYS_E_NOMEM, "out of memory for the item ids");
    } else {
        if (meta) {
            w_section_begin(w, RS_CK_TAG_META, meta_len);
            w_payload(w, meta, meta_len);
            w_section_end(w);
        }
        if (ids) {
            w_section_begin(w, RS_CK_TAG_ITEM_IDS, ids_len);
            w_payload(w, ids, ids_len);
            w_section_end(w);
        }
    }
    free(ids);
    free(meta);
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

/* Directory part of path ("." when none); malloc'd. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
}

/* fsync the directory holding path, so the rename itself is durable. */
static recsys_status sync_dir(recsys_ctx *ctx, const char *path)
{
    char *dir = dir_of(path);
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

static const char *file_kind(mode_t m)
{
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device"
           : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

/* The file a save writes: path itself, or the final target of a symbolic
 * link (as cp does). Only a regular file (or nothing) may be there.
 * *target is malloc'd; *old (when *exists) is the existing file's stat. */
static recsys_status resolve_target(recsys_ctx *ctx, const char *path, char **target,
                                    struct stat *old, int *exists)
{
    *target = NULL;
    *exists = 0;
    if (lstat(path, old) != 0) {
        if (errno != ENOENT)
            return rs_error(ctx, RECSYS_E_IO, "cannot save to '%s': %s", path, strerror(errno));
        *target = strdup(path);
        return *target ? RECSYS_OK : rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
    }
    if (S_ISLNK(old->st_mode)) {
        *target = realpath(path, NULL);
        if (!*target) {
            if (errno == ENOMEM) return rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
            return rs_error(ctx, RECSYS_E_IO,
                            "cannot save to '%s': it is a symbolic link that cannot be resolved "
                            "(%s)", path, strerror(errno));
        }
        if (stat(*target, old) != 0) {
            recsys_status st = rs_error(ctx, RECSYS_E_IO, "cannot save to '%s' (link to '%s'): %s",
                                        path, *target, strerror(errno));
            free(*target);
            *target = NULL;
            return st;
        }
    } else if (!(*target = strdup(path))) {
        return rs_error(ctx, RECSYS_E_NOMEM, "out of memory");
    }
    if (!S_ISREG(old->st_mode)) {
        recsys_status st = rs_error(ctx, RECSYS_E_IO,
                                    "refusing to replace '%s': it is %s, and a save replaces only "
                                    "regular files", *target, file_kind(old->st_mode));
        free(*target);
        *target = NULL;
        return st;
    }
    *exists = 1;
    return RECSYS_OK;
}

/* Remove temp files that killed saves of this target left behind
 * ("<name>.tmp.XXXXXX", regular, not locked by a save in progress). */
static void clean_stale_temps(const char *target)
{
    char *dir = dir_of(target);
    const char *slash = strrchr(target, '/');
    const char *base = slash ? slash + 1 : target;
    size_t bl = strlen(base);
    DIR *d = dir ? opendir(dir) : NULL;
    if (d) {
        int dfd = dirfd(d);
        struct dirent *e;
        while ((e = readdir(d))) {
            const char *n = e->d_name;
            if (strlen(n) != bl + 11 || strncmp(n, base, bl) || strncmp(n + bl, ".tmp.", 5))
                continue;
            int fd = openat(dfd, n, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
            if (fd < 0) continue;
            struct stat sb;
            if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0)
                (void)unlinkat(dfd, n, 0);
            close(fd);
        }
        closedir(d);
    }
    free(dir);
}

/* A new temp file next to target, "<target>.tmp.XXXXXX", created with the
 * umask (mode 0666 & ~umask) and locked while the save runs. */
static int create_temp(const char *target, char *tmp, uint64_t seed)
{
    static const char ALNUM[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t plen = strlen(target);
    for (int attempt = 0; attempt < 100; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t h = rs_hash64(seed ^ (uint64_t)ts.tv_nsec,
                               ((uint64_t)getpid() << 20) ^ (uint64_t)attempt ^
                                   (uint64_t)(uintptr_t)tmp);
        memcpy(tmp, target, plen);
        memcpy(tmp + plen, ".tmp.", 5);
        for (int i = 0; i < 6; i++) tmp[plen + 5 + i] = ALNUM[(h >> (6 * i)) % 62];
        tmp[plen + 11] = 0;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (fd >= 0) {
            (void)flock(fd, LOCK_EX | LOCK_NB);
            return fd;
        }
        if (errno != EEXIST) return -1;
    }
    errno = EEXIST;
    return -1;
}

static recsys_status save_impl(recsys_ctx *ctx, const recsys_model *m, const char *path,
                               const rs_ck_section *extra, int n_extra,
                               const rs_train_state *state)
{
    if (!m || !path || !*path || n_extra < 0 || (n_extra && !extra))
        return rs_error(ctx, RECSYS_E_INVALID, "checkpoint save: NULL or empty argument");
    if (!m->params && m->n_params)
        return rs_error(ctx, RECSYS_E_INVALID, "checkpoint save: the model has no weights");
    recsys_status whole = rs_model_whole(ctx, m, "checkpoint save");
    if (whole) return whole;
    if (state && (!state->m || !state->v || state->epoch < 0 || state->step < 0))
        return rs_error(ctx, RECSYS_E_INVALID, "checkpoint save: incomplete trainer state");
    for (int i = 0; i < n_extra; i++) {
        const char *tag = extra[i].tag;
        if (strnlen(tag, sizeof extra[i].tag) != 4 || !tag_is_valid(tag) ||
            tag_is_reserved(tag) || (state && !memcmp(tag, "OPTS", 4)) ||
            !memcmp(tag, RS_CK_TAG_META, 4) || !memcmp(tag, RS_CK_TAG_ITEM_IDS, 4) ||
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
    char *conf = rs_ck_conf_text(m, &st);
    if (!conf)
        return rs_error(ctx, st, "checkpoint save: cannot describe the model config (%s)",
                        recsys_status_str(st));
    tensor_dir t;
    st = tensor_dir_of(m, &t);
    char *target = NULL, *tmp = NULL;
    struct stat old;
    int exists = 0;
    recsys_status st_t = st ? RECSYS_OK : resolve_target(ctx, path, &target, &old, &exists);
    unsigned char *buf = st || st_t ? NULL : malloc(CK_IO_CHUNK);
    if (!st && !st_t) tmp = malloc(strlen(target) + 12);
    if (st || st_t || !tmp || !buf) {
        free(conf);
        free(tmp);
        free(buf);
        free(target);
        tensor_dir_free(&t);
        return st_t ? st_t : rs_error(ctx, RECSYS_E_NOMEM, "out of memory saving '%s'", path);
    }
    clean_stale_temps(target);

    ck_writer w = {.ctx = ctx, .path = path, .buf = buf};
    w.fd = create_temp(target, tmp, ctx ? ctx->seed : 0);
    if (w.fd < 0) {
        w.st = rs_error(ctx, RECSYS_E_IO, "cannot create a temporary file next to '%s': %s",
                        target, strerror(errno));
    } else {
        /* Replacing a file keeps its owner and permissions; a new file has
         * the umask's (the temp file was created with 0666 & ~umask). */
        if (exists) {
            if (fchown(w.fd, old.st_uid, old.st_gid) != 0) { /* only root may; fine */ }
            (void)fchmod(w.fd, old.st_mode & 07777);
        }
        write_all(&w, m, conf, &t, extra, n_extra, state);
        if (!w.st && fsync(w.fd) != 0)
            w.st = rs_error(ctx, RECSYS_E_IO, "cannot sync checkpoint '%s': %s", path,
                            strerror(errno));
        if (!w.st && rename(tmp, target) != 0)
            w.st = rs_error(ctx, RECSYS_E_IO, "cannot move the checkpoint into place at '%s': %s",
                            target, strerror(errno));
        if (w.st) unlink(tmp);
        /* close after the rename: the lock keeps cleaners off the temp file */
        if (close(w.fd) != 0 && !w.st)
            w.st = rs_error(ctx, RECSYS_E_IO, "cannot close checkpoint '%s': %s", path,
                            strerror(errno));
        if (!w.st) w.st = sync_dir(ctx, target);
    }
    free(conf);
    free(tmp);
    free(buf);
    free(target);
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
    rs_enter(ctx);
    if (!ctx) return RS_BAD_ARGS();
    return save_impl(ctx, model, path, NULL, 0, NULL);
}
