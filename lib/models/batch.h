/* Host-side batch buffers: left-padded rows built from a dataset's split. */
#ifndef RS_BATCH_H
#define RS_BATCH_H

#include "models/model.h"

typedef struct rs_batch_buf {
    int B, L, n_neg;
    int32_t *seq, *pos, *neg;
    int64_t *times, *next_times; /* NULL when the data has no timestamps */
    int *start;
} rs_batch_buf;

recsys_status rs_batch_buf_init(recsys_ctx *ctx, rs_batch_buf *bb, int B, int L, int n_neg,
                                int with_time);
void rs_batch_buf_free(rs_batch_buf *bb);
/* View of the first `rows` rows as an rs_batch. */
rs_batch rs_batch_view(const rs_batch_buf *bb, int rows, int train, uint64_t seed);

/* Row r <- training pairs of user u: inputs items[0..n-1), targets items[1..n)
 * with n = the user's training length, keeping the last L pairs.
 * Returns the number of target positions (0 when the user has < 2 items). */
int rs_batch_fill_train_row(rs_batch_buf *bb, int r, const recsys_dataset *ds, int64_t u);
/* Row r <- the first n_input items of user u as inference input (last L kept),
 * no targets. */
void rs_batch_fill_input_row(rs_batch_buf *bb, int r, const recsys_dataset *ds, int64_t u,
                             int64_t n_input);
/* Row r <- the last L items of a history of dense item ids with optional
 * times (NULL), exactly as rs_batch_fill_input_row fills a dataset user's
 * input (which calls it): the last input's next time is its own. */
void rs_batch_fill_history_row(rs_batch_buf *bb, int r, const int32_t *items,
                               const int64_t *times, size_t n);

#endif
