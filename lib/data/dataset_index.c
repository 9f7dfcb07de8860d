/* External id <-> dense id: an open-addressing string table, and the raw
 * event list the parsers fill. */
#include "data/raw.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a: ids are short tokens, so a byte-at-a-time hash is cheap enough. */
static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

void rs_strtab_init(rs_strtab *t) { memset(t, 0, sizeof *t); }

void rs_strtab_free(rs_strtab *t)
{
    if (!t) return;
    free(t->arena);
    free(t->off);
    free(t->hash);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

static int64_t probe(const rs_strtab *t, const char *s, size_t len, uint64_t h, size_t *pos)
{
    size_t i = (size_t)h & t->mask;
    for (;;) {
        int64_t v = t->slot[i];
        if (!v) { *pos = i; return -1; }
        int64_t id = v - 1;
        const char *name = t->arena + t->off[id];
        if (t->hash[id] == (uint32_t)h && !memcmp(name, s, len) && name[len] == 0) {
            *pos = i;
            return id;
        }
        i = (i + 1) & t->mask;
    }
}

static int rehash(rs_strtab *t, size_t n_slots)
{
    int64_t *slot = calloc(n_slots, sizeof *slot);
    if (!slot) return -1;
    size_t mask = n_slots - 1;
    for (int64_t id = 0; id < t->n; id++) {
        size_t i = t->hash[id] & mask;
        while (slot[i]) i = (i + 1) & mask;
        slot[i] = id + 1;
    }
    free(t->slot);
    t->slot = slot;
    t->mask = mask;
    return 0;
}

int64_t rs_strtab_find(const rs_strtab *t, const char *s, size_t len)
{
    if (!t->slot) return -1;
    size_t pos;
    return probe(t, s, len, hash_bytes(s, len), &pos);
}

static int grow_ids(rs_strtab *t)
{
    int64_t cap = t->cap ? t->cap * 2 : 64;
    size_t *off = realloc(t->off, (size_t)cap * sizeof *off);
    if (!off) return -1;
    t->off = off;
    uint32_t *hash = realloc(t->hash, (size_t)cap * sizeof *hash);
    if (!hash) return -1;
    t->hash = hash;
    t->cap = cap;
    return 0;
}

static int grow_arena(rs_strtab *t, size_t need)
{
    size_t cap = t->arena_cap ? t->arena_cap : 1024;
    while (cap - t->arena_len < need) {
        if (cap > SIZE_MAX / 2) return -1;
        cap *= 2;
    }
    char *a = realloc(t->arena, cap);
    if (!a) return -1;
    t->arena = a;
    t->arena_cap = cap;
    return 0;
}

int64_t rs_strtab_intern(rs_strtab *t, const char *s, size_t len)
{
    /* Keep the load factor at most 1/2 so probes stay short. */
    if (!t->slot || (size_t)(t->n + 1) * 2 > t->mask + 1) {
        size_t n_slots = t->slot ? (t->mask + 1) * 2 : 64;
        if (rehash(t, n_slots)) return -1;
    }
    uint64_t h = hash_bytes(s, len);
    size_t pos;
    int64_t id = probe(t, s, len, h, &pos);
    if (id >= 0) return id;
    if (t->n == t->cap && grow_ids(t)) return -1;
    if (len >= SIZE_MAX / 2 || (t->arena_cap - t->arena_len < len + 1 && grow_arena(t, len + 1)))
        return -1;
    id = t->n++;
    t->off[id] = t->arena_len;
    t->hash[id] = (uint32_t)h;
    memcpy(t->arena + t->arena_len, s, len);
    t->arena[t->arena_len + len] = 0;
    t->arena_len += len + 1;
    t->slot[pos] = id + 1;
    return id;
}

/* ------------------------------------------------------------ raw events */

void rs_raw_init(rs_raw *r)
{
    memset(r, 0, sizeof *r);
    rs_strtab_init(&r->users);
    rs_strtab_init(&r->items);
}

void rs_raw_free(rs_raw *r)
{
    if (!r) return;
    rs_strtab_free(&r->users);
    rs_strtab_free(&r->items);
    free(r->user);
    free(r->item);
    free(r->time);
    memset(r, 0, sizeof *r);
}

static int grow_events(rs_raw *r, int has_time)
{
    size_t cap = r->cap ? r->cap * 2 : 4096;
    if (cap > SIZE_MAX / sizeof(int64_t)) return -1;
    int64_t *p = realloc(r->user, cap * sizeof *p);
    if (!p) return -1;
    r->user = p;
    p = realloc(r->item, cap * sizeof *p);
    if (!p) return -1;
    r->item = p;
    if (has_time) {
        p = realloc(r->time, cap * sizeof *p);
        if (!p) return -1;
        r->time = p;
    }
    r->cap = cap;
    return 0;
}

int rs_raw_push(rs_raw *r, int64_t user, int64_t item, int has_time, int64_t t)
{
    if (has_time && !r->time && r->n == 0) {
        /* First event decides whether the list carries times. */
        r->time = malloc((r->cap ? r->cap : 1) * sizeof *r->time);
        if (!r->time) return -1;
    }
    if (r->n == r->cap && grow_events(r, r->time != NULL)) return -1;
    r->user[r->n] = user;
    r->item[r->n] = item;
    if (r->time) r->time[r->n] = t;
    r->n++;
    return 0;
}
