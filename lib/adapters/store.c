/* The adapter store file (lib/adapters/store.h, docs/ADAPTERS.md). */
#include "adapters/store.h"
#include "checkpoint/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ byte order */
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t f32_to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x7FFFFFu)) return (uint16_t)((u >> 16) | 0x40);
    u = u + 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

size_t rs_store_rec_bytes(uint32_t floats, uint32_t dtype)
{
    size_t el = dtype == RS_STORE_BF16 ? 2 : 4;
    return round_up(RS_STORE_REC_HEAD + (size_t)floats * el + 4, 8);
}

static void layout(uint64_t n_users, uint32_t conf_len, size_t *index_off, size_t *data_off)
{
    *index_off = round_up(RS_STORE_HEADER + (size_t)conf_len + 4, 8);
    *data_off = round_up(*index_off + (size_t)n_users * 8, 64);
}

/* ----------------------------------------------------------------- parse */
recsys_status rs_store_parse(recsys_ctx *ctx, const void *buf, size_t len, rs_store_view *v)
{
    const uint8_t *b = buf;
    memset(v, 0, sizeof *v);
    if (!b || len < RS_STORE_HEADER)
        return rs_error(ctx, RECSYS_E_FORMAT, "adapter store: %zu bytes, shorter than the header",
                        len);
    if (memcmp(b, RS_STORE_MAGIC, 8) != 0)
        return rs_error(ctx, RECSYS_E_FORMAT, "adapter store: bad magic (not an adapter store)");
    if (rs_crc32c(0, b, 60) != rd32(b + 60))
        return rs_error(ctx, RECSYS_E_FORMAT, "adapter store: header checksum mismatch");
    v->version = rd32(b + 8);
    if (v->version != RS_STORE_VERSION)
        return rs_error(ctx, RECSYS_E_FORMAT, "adapter store: unknown version %u", v->version);
    if (rd32(b + 12) != 0 || rd32(b + 36) != 0 || rd32(b + 56) != 0)
        return rs_error(ctx, RECSYS_E_FORMAT, "adapter store: unknown flags");
    v->n_users = rd64(b + 16);
    v->record_floats = rd32(b + 24);
    v->dtype = rd32(b + 28);
    uint32_t conf_len = rd32(b + 32);
    if (v->dtype > RS_STORE_BF16)
        return rs_error(ctx, RECSYS_E_FORMAT, "adapter store: unknown dtype %u", v->dtype);
    if (v->record_floats == 0 || v->record_floats > RS_STORE_MAX_FLOATS)
        return rs_error(ctx, RECSYS_E_FORMAT, "adapter store: bad record size %u",
                        v->record_floats);
    if (conf_len > RS_STORE_MAX_CONF)
        return rs_error(ctx, RECSYS_E_FORMAT, "adapter store: CONF of %u bytes", conf_len);
    if (v->n_users > ((uint64_t)1 << 40))
        return rs_error(ctx, RECSYS_E_FORMAT, "adapter store: %llu users",
                        (unsigned long long)v->n_users);
    size_t io, dof;
    layout(v->n_users, conf_len, &io, &dof);
    if (rd64(b + 40) != io || rd64(b + 48) != dof)
        return rs_error(ctx, RECSYS_E_FORMAT, "adapter store: bad section offsets");
    if (len < dof)
        return rs_error(ctx, RECSYS_E_FORMAT,
                        "adapter store: truncated (%zu bytes, the index ends at %zu)", len, dof);
    if (rs_crc32c(0, b + RS_STORE_HEADER, conf_len) != rd32(b + RS_STORE_HEADER + conf_len))
        return rs_error(ctx, RECSYS_E_FORMAT, "adapter store: CONF checksum mismatch");
    for (uint32_t i = 0; i < conf_len; i++)
        if (b[RS_STORE_HEADER + i] == 0)
            return rs_error(ctx, RECSYS_E_FORMAT, "adapter store: NUL byte in CONF");
    v->conf = (const char *)b + RS_STORE_HEADER;
    v->conf_len = conf_len;
    v->index_off = io;
    v->data_off = dof;
    v->index = b + io;
    v->data = b + dof;
    v->rec_bytes = rs_store_rec_bytes(v->record_floats, v->dtype);
    v->n_records = (len - dof) / v->rec_bytes; /* a partial last record is ignored */
    return RECSYS_OK;
}

static void encode_record(const rs_store_view *v, uint64_t user, uint64_t seq, const float *vec,
                          uint8_t *rec)
{
    memset(rec, 0, v->rec_bytes);
    wr32(rec, RS_STORE_REC_MAGIC);
    wr64(rec + 8, user);
    wr64(rec + 16, seq);
    uint8_t *p = rec + RS_STORE_REC_HEAD;
    if (v->dtype == RS_STORE_BF16)
        for (uint32_t i = 0; i < v->record_floats; i++) {
            uint16_t h = f32_to_bf16(vec[i]);
            p[2 * i] = (uint8_t)h;
            p[2 * i + 1] = (uint8_t)(h >> 8);
        }
    else
        for (uint32_t i = 0; i < v->record_floats; i++) {
            uint32_t u;
            memcpy(&u, &vec[i], 4);
            wr32(p + 4 * (size_t)i, u);
        }
    size_t body = RS_STORE_REC_HEAD + (size_t)v->record_floats * (v->dtype == RS_STORE_BF16 ? 2 : 4);
    wr32(rec + body, rs_crc32c(0, rec, body));
}

recsys_status rs_store_view_read(recsys_ctx *ctx, const rs_store_view *v, uint64_t user,
                                 float *out, uint64_t *seq)
{
    if (user >= v->n_users)
        return rs_error(ctx, RECSYS_E_INVALID, "adapter store: user %llu out of range (%llu users)",
                        (unsigned long long)user, (unsigned long long)v->n_users);
    uint64_t e = rd64(v->index + 8 * user);
    if (e == 0)
        return rs_error(ctx, RECSYS_E_NOT_FOUND, "adapter store: no adapter for user %llu",
                        (unsigned long long)user);
    if (e - 1 >= v->n_records)
        return rs_error(ctx, RECSYS_E_FORMAT,
                        "adapter store: user %llu's record %llu is past the end (truncated file)",
                        (unsigned long long)user, (unsigned long long)(e - 1));
    const uint8_t *rec = v->data + (size_t)(e - 1) * v->rec_bytes;
    size_t el = v->dtype == RS_STORE_BF16 ? 2 : 4;
    size_t body = RS_STORE_REC_HEAD + (size_t)v->record_floats * el;
    if (rd32(rec) != RS_STORE_REC_MAGIC || rd64(rec + 8) != user ||
        rs_crc32c(0, rec, body) != rd32(rec + body))
        return rs_error(ctx, RECSYS_E_FORMAT, "adapter store: user %llu's record is corrupted",
                        (unsigned long long)user);
    if (seq) *seq = rd64(rec + 16);
    const uint8_t *p = rec + RS_STORE_REC_HEAD;
    if (v->dtype == RS_STORE_BF16)
        for (uint32_t i = 0; i < v->record_floats; i++)
            out[i] = bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    else
        for (uint32_t i = 0; i < v->record_floats; i++) {
            uint32_t u = rd32(p + 4 * (size_t)i);
            memcpy(&out[i], &u, 4);
        }
    return RECSYS_OK;
}

/* ----------------------------------------------------------------- cache */
typedef struct centry {
    uint64_t user;
    int pinned;
    struct centry *hnext, *prev, *next; /* hash chain; LRU list (head = newest) */
    float vec[];
} centry;

struct rs_store {
    pthread_mutex_t mu;
    int fd, writable;
    uint8_t *map;      /* mmap of the file, or the owned copy of a memory image */
    size_t map_len;
    int is_mem;
    rs_store_view v;
    uint64_t next_seq;
    /* cache */
    size_t limit, bytes, entry_bytes;
    centry **buckets;
    size_t nbuckets;
    centry *head, *tail;
    uint64_t cached, pinned, hits, misses, evictions;
};

static size_t bucket_of(const rs_store *s, uint64_t user)
{
    return (size_t)(rs_hash64(0x5eed, user) & (s->nbuckets - 1));
}

static centry *cache_find(rs_store *s, uint64_t user)
{
    for (centry *e = s->buckets[bucket_of(s, user)]; e; e = e->hnext)
        if (e->user == user) return e;
    return NULL;
}

static void lru_unlink(rs_store *s, centry *e)
{
    if (e->prev) e->prev->next = e->next; else s->head = e->next;
    if (e->next) e->next->prev = e->prev; else s->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(rs_store *s, centry *e)
{
    e->prev = NULL;
    e->next = s->head;
    if (s->head) s->head->prev = e; else s->tail = e;
    s->head = e;
}

static void cache_remove(rs_store *s, centry *e)
{
    centry **pp = &s->buckets[bucket_of(s, e->user)];
    while (*pp != e) pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(s, e);
    s->bytes -= s->entry_bytes;
    s->cached--;
    if (e->pinned) s->pinned--;
    free(e);
}

/* Make room for one entry (evicting unpinned LRU entries); 0 if impossible. */
static int cache_room(rs_store *s, int force)
{
    centry *e = s->tail;
    while (s->bytes + s->entry_bytes > s->limit && e) {
        centry *prev = e->prev;
        if (!e->pinned) {
            cache_remove(s, e);
            s->evictions++;
        }
        e = prev;
    }
    return force || s->bytes + s->entry_bytes <= s->limit;
}

static centry *cache_add(rs_store *s, uint64_t user, const float *vec, int force)
{
    if (!cache_room(s, force)) return NULL;
    centry *e = malloc(sizeof(centry) + sizeof(float) * s->v.record_floats);
    if (!e) return NULL;
    e->user = user;
    e->pinned = 0;
    memcpy(e->vec, vec, sizeof(float) * s->v.record_floats);
    size_t b = bucket_of(s, user);
    e->hnext = s->buckets[b];
    s->buckets[b] = e;
    e->prev = e->next = NULL;
    lru_push(s, e);
    s->bytes += s->entry_bytes;
    s->cached++;
    return e;
}

/* ----------------------------------------------------------- open, close */
static recsys_status store_new(recsys_ctx *ctx, size_t cache_bytes, rs_store **out)
{
    rs_store *s = calloc(1, sizeof *s);
    if (!s) return rs_error(ctx, RECSYS_E_NOMEM, "adapter store: out of memory");
    s->fd = -1;
    s->limit = cache_bytes;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return rs_error(ctx, RECSYS_E_NOMEM, "adapter store: cannot create a mutex");
    }
    *out = s;
    return RECSYS_OK;
}

static recsys_status store_finish(recsys_ctx *ctx, rs_store *s)
{
    s->entry_bytes = sizeof(centry) + sizeof(float) * s->v.record_floats;
    size_t want = s->limit / s->entry_bytes * 2;
    s->nbuckets = 64;
    while (s->nbuckets < want && s->nbuckets < ((size_t)1 << 22)) s->nbuckets <<= 1;
    s->buckets = calloc(s->nbuckets, sizeof(centry *));
    if (!s->buckets) return rs_error(ctx, RECSYS_E_NOMEM, "adapter store: out of memory");
    s->next_seq = 1;
    return RECSYS_OK;
}

void rs_store_close(rs_store *s)
{
    if (!s) return;
    while (s->head) cache_remove(s, s->head);
    free(s->buckets);
    if (s->is_mem)
        free(s->map);
    else if (s->map)
        munmap(s->map, s->map_len);
    if (s->fd >= 0) {
        if (s->writable) fsync(s->fd);
        close(s->fd);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* (Re)map the file and parse it. The mapping reserves room past the end of
 * the file so that appended records are usually visible without a new
 * mapping (pages past the end are never touched: records past n_records are
 * not read). */
static recsys_status remap(recsys_ctx *ctx, rs_store *s)
{
    struct stat st;
    if (fstat(s->fd, &st) != 0)
        return rs_error(ctx, RECSYS_E_IO, "adapter store: fstat: %s", strerror(errno));
    size_t len = (size_t)st.st_size;
    if (len < RS_STORE_HEADER)
        return rs_error(ctx, RECSYS_E_FORMAT, "adapter store: %zu bytes, shorter than the header",
                        len);
    rs_store_view v;
    recsys_status rc;
    if (s->map && len <= s->map_len) {
        if ((rc = rs_store_parse(ctx, s->map, len, &v))) return rc;
        s->v = v;
        return RECSYS_OK;
    }
    size_t reserve = s->writable ? len + (len > ((size_t)64 << 20) ? len / 4 : ((size_t)16 << 20)) : len;
    void *m = mmap(NULL, reserve, s->writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
                   s->fd, 0);
    if (m == MAP_FAILED) return rs_error(ctx, RECSYS_E_IO, "adapter store: mmap: %s", strerror(errno));
    /* fetches are random: no read-ahead around each faulted record */
    (void)madvise(m, reserve, MADV_RANDOM);
    if ((rc = rs_store_parse(ctx, m, len, &v))) {
        munmap(m, reserve);
        return rc;
    }
    if (s->map) {
        if (v.record_floats != s->v.record_floats || v.dtype != s->v.dtype ||
            v.n_users != s->v.n_users) {
            munmap(m, reserve);
            return rs_error(ctx, RECSYS_E_STATE, "adapter store: the file changed shape under us");
        }
        munmap(s->map, s->map_len);
    }
    s->map = m;
    s->map_len = reserve;
    s->v = v;
    return RECSYS_OK;
}

recsys_status rs_store_open(recsys_ctx *ctx, const char *path, int writable, size_t cache_bytes,
                            rs_store **out)
{
    rs_store *s = NULL;
    recsys_status rc = store_new(ctx, cache_bytes, &s);
    if (rc) return rc;
    s->writable = writable;
    s->fd = open(path, writable ? O_RDWR | O_CLOEXEC : O_RDONLY | O_CLOEXEC);
    if (s->fd < 0) {
        rc = rs_error(ctx, RECSYS_E_IO, "adapter store %s: %s", path, strerror(errno));
        rs_store_close(s);
        return rc;
    }
    if ((rc = remap(ctx, s)) || (rc = store_finish(ctx, s))) {
        rs_store_close(s);
        return rc;
    }
    *out = s;
    return RECSYS_OK;
}

recsys_status rs_store_open_memory(recsys_ctx *ctx, const void *buf, size_t len,
                                   size_t cache_bytes, rs_store **out)
{
    rs_store *s = NULL;
    recsys_status rc = store_new(ctx, cache_bytes, &s);
    if (rc) return rc;
    s->is_mem = 1;
    s->map = malloc(len ? len : 1);
    if (!s->map) {
        rs_store_close(s);
        return rs_error(ctx, RECSYS_E_NOMEM, "adapter store: out of memory");
    }
    if (len) memcpy(s->map, buf, len);
    s->map_len = len;
    if ((rc = rs_store_parse(ctx, s->map, len, &s->v)) || (rc = store_finish(ctx, s))) {
        rs_store_close(s);
        return rc;
    }
    *out = s;
    return RECSYS_OK;
}

const rs_store_view *rs_store_info(const rs_store *s) { return &s->v; }

/* ---------------------------------------------------------------- create */
static recsys_status write_all(recsys_ctx *ctx, int fd, const void *p, size_t n, off_t off,
                               const char *what)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = pwrite(fd, b, n, off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return rs_error(ctx, RECSYS_E_IO, "adapter store: writing %s: %s", what,
                                    w < 0 ? strerror(errno) : "short write");
        b += w;
        n -= (size_t)w;
        off += w;
    }
    return RECSYS_OK;
}

static void fsync_dir(const char *path)
{
    char *dir = strdup(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash) {
        if (slash == dir) slash[1] = 0; else *slash = 0;
        d = dir;
    }
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

recsys_status rs_store_create(recsys_ctx *ctx, const char *path, const char *conf,
                              uint64_t n_users, uint32_t record_floats, uint32_t dtype)
{
    size_t conf_len = strlen(conf);
    if (conf_len > RS_STORE_MAX_CONF || record_floats == 0 || record_floats > RS_STORE_MAX_FLOATS ||
        dtype > RS_STORE_BF16 || n_users > ((uint64_t)1 << 40))
        return rs_error(ctx, RECSYS_E_INVALID, "adapter store: bad shape for %s", path);
    size_t io, dof;
    layout(n_users, (uint32_t)conf_len, &io, &dof);
    uint8_t *head = calloc(1, io);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!head || !tmp) {
        free(head);
        free(tmp);
        return rs_error(ctx, RECSYS_E_NOMEM, "adapter store: out of memory");
    }
    memcpy(head, RS_STORE_MAGIC, 8);
    wr32(head + 8, RS_STORE_VERSION);
    wr64(head + 16, n_users);
    wr32(head + 24, record_floats);
    wr32(head + 28, dtype);
    wr32(head + 32, (uint32_t)conf_len);
    wr64(head + 40, io);
    wr64(head + 48, dof);
    wr32(head + 60, rs_crc32c(0, head, 60));
    memcpy(head + RS_STORE_HEADER, conf, conf_len);
    wr32(head + RS_STORE_HEADER + conf_len, rs_crc32c(0, conf, conf_len));
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    recsys_status rc = RECSYS_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        rc = rs_error(ctx, RECSYS_E_IO, "adapter store %s: %s", tmp, strerror(errno));
    if (!rc) rc = write_all(ctx, fd, head, io, 0, "the header");
    /* the index: zeros, as a sparse extension */
    if (!rc && ftruncate(fd, (off_t)dof) != 0)
        rc = rs_error(ctx, RECSYS_E_IO, "adapter store: ftruncate: %s", strerror(errno));
    if (!rc && fsync(fd) != 0)
        rc = rs_error(ctx, RECSYS_E_IO, "adapter store: fsync: %s", strerror(errno));
    if (fd >= 0) close(fd);
    if (!rc && rename(tmp, path) != 0)
        rc = rs_error(ctx, RECSYS_E_IO, "adapter store: rename to %s: %s", path, strerror(errno));
    if (rc) unlink(tmp);
    else fsync_dir(path);
    free(head);
    free(tmp);
    return rc;
}

/* ------------------------------------------------------------- get, put */
recsys_status rs_store_get(recsys_ctx *ctx, rs_store *s, uint64_t user, float *out)
{
    pthread_mutex_lock(&s->mu);
    recsys_status rc = RECSYS_OK;
    centry *e = s->limit ? cache_find(s, user) : NULL;
    if (e) {
        memcpy(out, e->vec, sizeof(float) * s->v.record_floats);
        lru_unlink(s, e);
        lru_push(s, e);
        s->hits++;
        goto done;
    }
    s->misses++;
    rc = rs_store_view_read(ctx, &s->v, user, out, NULL);
    if (rc == RECSYS_E_FORMAT && !s->is_mem && user < s->v.n_users &&
        rd64(s->v.index + 8 * user) - 1 >= s->v.n_records) {
        /* the file grew (another writer appended): map it again */
        rc = remap(ctx, s);
        if (!rc) rc = rs_store_view_read(ctx, &s->v, user, out, NULL);
    }
    if (!rc && s->limit) cache_add(s, user, out, 0);
done:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static recsys_status put_locked(recsys_ctx *ctx, rs_store *s, uint64_t user, const float *vec,
                                int sync, int stop)
{
    if (s->is_mem || !s->writable)
        return rs_error(ctx, RECSYS_E_STATE, "adapter store: opened read-only");
    if (user >= s->v.n_users)
        return rs_error(ctx, RECSYS_E_INVALID, "adapter store: user %llu out of range (%llu users)",
                        (unsigned long long)user, (unsigned long long)s->v.n_users);
    uint8_t *rec = malloc(s->v.rec_bytes);
    if (!rec) return rs_error(ctx, RECSYS_E_NOMEM, "adapter store: out of memory");
    uint64_t prev = rd64(s->v.index + 8 * user), seq = s->next_seq;
    if (prev && prev - 1 < s->v.n_records) {
        uint64_t ps = rd64(s->v.data + (size_t)(prev - 1) * s->v.rec_bytes + 16);
        if (ps >= seq) seq = ps + 1;
    }
    s->next_seq = seq + 1;
    encode_record(&s->v, user, seq, vec, rec);
    uint64_t idx = s->v.n_records; /* a partial tail record is overwritten */
    off_t off = (off_t)(s->v.data_off + (size_t)idx * s->v.rec_bytes);
    /* 1. the new record, after every live one; the old one stays valid */
    recsys_status rc = write_all(ctx, s->fd, rec, stop == 1 ? s->v.rec_bytes / 2 : s->v.rec_bytes,
                                 off, "a record");
    free(rec);
    if (rc || stop == 1) return rc;
    if (sync && fdatasync(s->fd) != 0)
        return rs_error(ctx, RECSYS_E_IO, "adapter store: fdatasync: %s", strerror(errno));
    if ((rc = remap(ctx, s))) return rc;
    if (stop == 2) return RECSYS_OK;
    /* 2. flip the user's 8-byte, 8-aligned index entry to the new record */
    uint8_t ent[8];
    wr64(ent, idx + 1);
    if ((rc = write_all(ctx, s->fd, ent, 8, (off_t)(s->v.index_off + 8 * user), "the index")))
        return rc;
    if (sync && fdatasync(s->fd) != 0)
        return rs_error(ctx, RECSYS_E_IO, "adapter store: fdatasync: %s", strerror(errno));
    centry *e = s->limit ? cache_find(s, user) : NULL;
    if (e) memcpy(e->vec, vec, sizeof(float) * s->v.record_floats);
    return RECSYS_OK;
}

recsys_status rs_store_put(recsys_ctx *ctx, rs_store *s, uint64_t user, const float *vec,
                           int sync)
{
    pthread_mutex_lock(&s->mu);
    recsys_status rc = put_locked(ctx, s, user, vec, sync, 0);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

recsys_status rs_store_put_interrupted(recsys_ctx *ctx, rs_store *s, uint64_t user,
                                       const float *vec, int stop)
{
    pthread_mutex_lock(&s->mu);
    recsys_status rc = put_locked(ctx, s, user, vec, 1, stop);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

recsys_status rs_store_sync(recsys_ctx *ctx, rs_store *s)
{
    if (s->fd >= 0 && s->writable && fsync(s->fd) != 0)
        return rs_error(ctx, RECSYS_E_IO, "adapter store: fsync: %s", strerror(errno));
    return RECSYS_OK;
}

recsys_status rs_store_pin(recsys_ctx *ctx, rs_store *s, uint64_t user, int pin)
{
    pthread_mutex_lock(&s->mu);
    recsys_status rc = RECSYS_OK;
    centry *e = cache_find(s, user);
    if (pin && !e) {
        float *tmp = malloc(sizeof(float) * s->v.record_floats);
        if (!tmp) rc = rs_error(ctx, RECSYS_E_NOMEM, "adapter store: out of memory");
        if (!rc) rc = rs_store_view_read(ctx, &s->v, user, tmp, NULL);
        if (!rc && !(e = cache_add(s, user, tmp, 1)))
            rc = rs_error(ctx, RECSYS_E_NOMEM, "adapter store: out of memory");
        free(tmp);
    }
    if (!rc && e && e->pinned != pin) {
        e->pinned = pin;
        if (pin) s->pinned++; else s->pinned--;
        /* over the limit while pinned: shrink back now (unpinned, oldest first) */
        for (centry *x = s->tail; x && s->bytes > s->limit;) {
            centry *prev = x->prev;
            if (!x->pinned) {
                cache_remove(s, x);
                s->evictions++;
            }
            x = prev;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void rs_store_get_stats(rs_store *s, rs_store_stats *st)
{
    pthread_mutex_lock(&s->mu);
    st->cache_bytes = s->bytes;
    st->cache_limit = s->limit;
    st->cached = s->cached;
    st->pinned = s->pinned;
    st->hits = s->hits;
    st->misses = s->misses;
    st->evictions = s->evictions;
    pthread_mutex_unlock(&s->mu);
}
