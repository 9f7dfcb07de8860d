/* The lowest stage of lib/data: a string table (external id -> provisional
 * id) and the raw event list that every source fills (the file parsers, the
 * synthetic generator, recsys_dataset_from_arrays). Implemented in
 * dataset_index.c; depends on nothing but libc. rs_dataset_build
 * (dataset_impl.h) turns a filled rs_raw into a recsys_dataset. */
#ifndef RS_DATA_RAW_H
#define RS_DATA_RAW_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ string table */
/* Interns strings: each distinct string gets the next id (0, 1, 2, ...),
 * so ids follow first appearance. Names live in one arena; pointers from
 * rs_strtab_name stay valid until the next insertion (the arena may move). */
typedef struct rs_strtab {
    char *arena;
    size_t arena_len, arena_cap;
    size_t *off;      /* id -> offset of its NUL-terminated name in arena */
    uint32_t *hash;   /* id -> low bits of its hash (cheap compare, rehash) */
    int64_t n, cap;   /* ids in use / allocated */
    int64_t *slot;    /* open addressing: id + 1, 0 = empty */
    size_t mask;      /* slots - 1 (power of two) */
} rs_strtab;

void rs_strtab_init(rs_strtab *t);
void rs_strtab_free(rs_strtab *t);
/* Id of s[0..len), inserted when absent; -1 when out of memory. */
int64_t rs_strtab_intern(rs_strtab *t, const char *s, size_t len);
/* Id of s[0..len) or -1 when absent. */
int64_t rs_strtab_find(const rs_strtab *t, const char *s, size_t len);
static inline const char *rs_strtab_name(const rs_strtab *t, int64_t id)
{
    return t->arena + t->off[id];
}

/* ------------------------------------------------------------ raw events */
/* Events in file order with provisional ids (table ids of the tokens). */
typedef struct rs_raw {
    rs_strtab users, items;
    int64_t *user, *item, *time; /* time NULL until a timestamp is pushed */
    size_t n, cap;
} rs_raw;

void rs_raw_init(rs_raw *r);
void rs_raw_free(rs_raw *r);
/* Append one event; has_time says whether t is meaningful (must be the
 * same for every event). Returns 0 or -1 when out of memory. */
int rs_raw_push(rs_raw *r, int64_t user, int64_t item, int has_time, int64_t t);


/* Largest dense item id a dataset may hold. */
#define RS_MAX_ITEMS ((int64_t)INT32_MAX - 1)

#endif
