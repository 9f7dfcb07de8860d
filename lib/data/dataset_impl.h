/* Private to the dataset layer (dataset*.c): the builder that turns raw
 * events (data/raw.h) into a recsys_dataset, and the file parsers.
 *
 * Stages inside lib/data, each calling only the ones below it:
 *   dataset.c (public loaders, queries, recsys_dataset_synthetic)
 *     -> dataset_parse.c (files), synthetic.c (generator)
 *       -> dataset_index.c (data/raw.h: string table, raw events) */
#ifndef RS_DATASET_IMPL_H
#define RS_DATASET_IMPL_H

#include "core/internal.h"

#include "data/raw.h"
#include "data/synthetic.h"

/* What recsys_dataset.index points to: the final name -> dense id maps
 * (user id = table id, item id = table id + 1), which also own the names. */
typedef struct rs_ds_index {
    rs_strtab users, items;
} rs_ds_index;

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

#endif
