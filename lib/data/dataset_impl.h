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
recsys_status rs_parse_interactions(recsys_ctx *ctx, const char *path, rs_raw *raw);
recsys_status rs_parse_sequences(recsys_ctx *ctx, const char *path, const char *times_path,
                                 rs_raw *raw);
/* data.format "auto": *is_sequences = 1 when the first data lines have
 * varying numbers of fields or more than 4. */
recsys_status rs_detect_sequences(recsys_ctx *ctx, const char *path, int *is_sequences);

#endif
