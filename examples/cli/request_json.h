/* Recommendation requests as JSON (recsys recommend, recsys serve):
 * parsing a byte buffer into request structs with jansson, and writing
 * responses. The parser knows nothing of models or sockets: external ids go
 * through a lookup callback, so a fuzz harness can call rj_parse on any
 * bytes with a fake lookup.
 *
 * Request:  {"user": any, "history": [id, ...], "times": [int, ...],
 *            "k": int, "exclude_history": bool, "exclude": [id, ...],
 *            "candidates": [id, ...]}
 * ids are strings or integers (an integer id is looked up as its decimal
 * text). Unknown ids in history, exclude and candidates are skipped and
 * counted. A batch is {"requests": [request, ...]} or a JSON array. */
#ifndef RECSYS_CLI_REQUEST_JSON_H
#define RECSYS_CLI_REQUEST_JSON_H

#include <librecsys/recsys.h>
#include <stddef.h>
#include <stdint.h>

/* External id -> dense id (1..n), or 0 when unknown. */
typedef int32_t (*rj_lookup_fn)(void *user, const char *external_id);
/* Dense id -> external id (borrowed). */
typedef const char *(*rj_name_fn)(void *user, int32_t item);

typedef struct rj_limits {
    int default_k, max_k;           /* k when absent; largest k accepted */
    int default_exclude_history;
    size_t max_requests;            /* per batch */
    size_t max_ids;                 /* per list */
} rj_limits;

typedef struct rj_request {
    char *user_json;      /* the "user" value as compact JSON text, or NULL */
    int32_t *history;
    int64_t *times;       /* NULL when absent */
    size_t n_history;
    int32_t *exclude;
    size_t n_exclude;
    int32_t *candidates;  /* NULL when absent */
    size_t n_candidates;
    int k, exclude_history;
    size_t unknown;       /* ids skipped */
    recsys_request req;   /* points into the arrays above */
} rj_request;

typedef struct rj_batch {
    rj_request *reqs;
    size_t n;
    int is_batch;         /* the input was a batch (answer with a batch) */
} rj_batch;

/* Parse len bytes (need not be NUL-terminated). On error returns non-zero
 * with a message in err and out empty. Never crashes on any input. */
int rj_parse(const char *buf, size_t len, const rj_limits *lim, rj_lookup_fn lookup,
             void *lookup_user, rj_batch *out, char *err, size_t err_size);
void rj_batch_free(rj_batch *b);

/* A growable text buffer for responses. */
typedef struct rj_buf { char *s; size_t len, cap; int oom; } rj_buf;
void rj_buf_add(rj_buf *b, const char *s, size_t n);
void rj_buf_printf(rj_buf *b, const char *fmt, ...);
void rj_buf_json_string(rj_buf *b, const char *s);
/* {"user": ..., "items": [...], "scores": [...], "unknown": n} */
void rj_write_result(rj_buf *b, const rj_request *r, const int32_t *items, const float *scores,
                     size_t n, rj_name_fn name, void *name_user);
void rj_write_error(rj_buf *b, const char *message);

#endif
