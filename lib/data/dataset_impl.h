/* Private to the dataset layer (dataset*.c, synthetic.c): the string table
 * that maps external ids to dense ids, the raw event list that parsers
 * fill, and the builder that turns it into a recsys_dataset. */
#ifndef RS_DATASET_IMPL_H
#define RS_DATASET_IMPL_H

#include "core/internal.h"

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

/* What recsys_dataset.index points to: the final name -> dense id maps
 * (user id = table id, item id = table id + 1), which also own the names. */
typedef struct rs_ds_index {
    rs_strtab users, items;
} rs_ds_index;

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

/* Filter (data.min_item_count, then data.min_user_count), give dense ids
 * by first appearance, group per user, order by time (stable), compute the
 * split bookkeeping. Always consumes raw (frees it); *out NULL on error. */
recsys_status rs_dataset_build(recsys_ctx *ctx, rs_raw *raw, const recsys_opts *opts,
                               recsys_dataset **out);

/* ------------------------------------------------------------ parsers */
/* Fill raw from a file; on error raw may hold partial data (caller frees). */
/* header: data.header, 0 (false), 1 (true) or RS_HEADER_AUTO. */
#define RS_HEADER_AUTO 2
recsys_status rs_parse_interactions(recsys_ctx *ctx, const char *path, int header,
                                    rs_raw *raw);
recsys_status rs_parse_sequences(recsys_ctx *ctx, const char *path, const char *times_path,
                                 int header, rs_raw *raw);
/* data.format "auto" over the whole file (DATA.md): *is_sequences = 1 when a
 * line has more than 4 fields; RECSYS_E_PARSE at the first line that
 * contradicts both readings. */
recsys_status rs_detect_sequences(recsys_ctx *ctx, const char *path, int header,
                                  int *is_sequences);
/* data.header of opts as 0, 1 or RS_HEADER_AUTO. */
int rs_opts_header(const recsys_opts *opts);

/* Longest line a data file may have (bytes, without its line end). */
#define RS_MAX_LINE ((size_t)64 << 20)

/* Largest dense item id a dataset may hold. */
#define RS_MAX_ITEMS ((int64_t)INT32_MAX - 1)

#endif
