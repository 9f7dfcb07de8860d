/*
 * The adapter store (docs/ADAPTERS.md, "Store file format"): many users'
 * adapter vectors in one versioned, checksummed file, opened in O(1) and
 * read lazily through mmap, with a bounded LRU cache and pinning; updates
 * append a new record and then flip the user's 8-byte index entry, so an
 * interrupted update leaves the previous adapter in place.
 */
#ifndef RS_ADAPTER_STORE_H
#define RS_ADAPTER_STORE_H

#include "core/internal.h"

#define RS_STORE_MAGIC "RSADAPTS"
#define RS_STORE_VERSION 1u
#define RS_STORE_HEADER 64u
#define RS_STORE_REC_HEAD 24u
#define RS_STORE_REC_MAGIC 0x43524441u /* "ADRC" little-endian */
#define RS_STORE_MAX_FLOATS (1u << 26)
#define RS_STORE_MAX_CONF (1u << 20)

enum rs_store_dtype { RS_STORE_F32 = 0, RS_STORE_BF16 = 1 };

/* A validated view of a store image: what rs_store_parse found. */
typedef struct rs_store_view {
    uint32_t version, dtype, record_floats;
    uint64_t n_users, n_records;
    const char *conf;
    size_t conf_len;
    const uint8_t *index; /* n_users little-endian u64: 0 = none, else record + 1 */
    const uint8_t *data;  /* n_records records of rec_bytes */
    size_t rec_bytes, index_off, data_off;
} rs_store_view;

/* Bytes of one record holding `floats` values of dtype. */
size_t rs_store_rec_bytes(uint32_t floats, uint32_t dtype);

/* Parse and check a store image of len bytes (header, CONF and its CRC,
 * bounds of the index and data; records are checked when read). O(1) in
 * the number of users. RECSYS_E_FORMAT with a message for anything wrong.
 * The fuzz entry point for the format. */
recsys_status rs_store_parse(recsys_ctx *ctx, const void *buf, size_t len, rs_store_view *v);
/* Decode user's record into out[record_floats]: RECSYS_OK, RECSYS_E_NOT_FOUND
 * (no adapter for user), RECSYS_E_FORMAT (record truncated, corrupted or
 * not this user's), RECSYS_E_INVALID (user out of range). seq may be NULL. */
recsys_status rs_store_view_read(recsys_ctx *ctx, const rs_store_view *v, uint64_t user,
                                 float *out, uint64_t *seq);

typedef struct rs_store rs_store;

/* Create an empty store (every index entry "none") atomically: written next
 * to path, fsync'd, renamed over it. */
recsys_status rs_store_create(recsys_ctx *ctx, const char *path, const char *conf,
                              uint64_t n_users, uint32_t record_floats, uint32_t dtype);
/* Open a file (writable: puts allowed) with an LRU cache of at most
 * cache_bytes of decoded adapters (pinned ones count too). */
recsys_status rs_store_open(recsys_ctx *ctx, const char *path, int writable, size_t cache_bytes,
                            rs_store **out);
/* Open a store image held in memory (read-only; the bytes are copied). */
recsys_status rs_store_open_memory(recsys_ctx *ctx, const void *buf, size_t len,
                                   size_t cache_bytes, rs_store **out);
void rs_store_close(rs_store *s);

const rs_store_view *rs_store_info(const rs_store *s);
/* User's adapter into out[record_floats] (from the cache or the file). */
recsys_status rs_store_get(recsys_ctx *ctx, rs_store *s, uint64_t user, float *out);
/* Replace (or add) user's adapter: append a record, sync it (sync != 0),
 * then point the user's index entry at it. Thread-safe with gets. */
recsys_status rs_store_put(recsys_ctx *ctx, rs_store *s, uint64_t user, const float *vec,
                           int sync);
/* Flush the data and index to disk. */
recsys_status rs_store_sync(recsys_ctx *ctx, rs_store *s);
/* Pin (pin = 1: load into the cache and never evict) or unpin a user. */
recsys_status rs_store_pin(recsys_ctx *ctx, rs_store *s, uint64_t user, int pin);

typedef struct rs_store_stats {
    size_t cache_bytes, cache_limit;
    uint64_t cached, pinned, hits, misses, evictions;
} rs_store_stats;
void rs_store_get_stats(rs_store *s, rs_store_stats *st);

/* Test hook: do a put up to (not including) step `stop` (1: nothing after the
 * record is half-written, 2: record written, index not flipped). */
recsys_status rs_store_put_interrupted(recsys_ctx *ctx, rs_store *s, uint64_t user,
                                       const float *vec, int stop);

#endif
