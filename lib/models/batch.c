/* Building left-padded rows: the most recent item sits at position L-1. */
#include "models/batch.h"

#include <string.h>

recsys_status rs_batch_buf_init(recsys_ctx *ctx, rs_batch_buf *bb, int B, int L, int n_neg,
                                int with_time)
{
    memset(bb, 0, sizeof *bb);
    size_t n = (size_t)B * L;
    bb->B = B;
    bb->L = L;
    bb->n_neg = n_neg;
    bb->seq = rs_calloc(n, sizeof *bb->seq);
    bb->pos = rs_calloc(n, sizeof *bb->pos);
    bb->neg = rs_calloc(rs_mul_size(n, n_neg > 0 ? (size_t)n_neg : 1), sizeof *bb->neg);
    bb->start = rs_calloc((size_t)B, sizeof *bb->start);
    if (with_time) {
        bb->times = rs_calloc(n, sizeof *bb->times);
        bb->next_times = rs_calloc(n, sizeof *bb->next_times);
    }
    if (!bb->seq || !bb->pos || !bb->neg || !bb->start ||
        (with_time && (!bb->times || !bb->next_times))) {
        rs_batch_buf_free(bb);
        return rs_error(ctx, RECSYS_E_NOMEM, "out of memory for a batch of %d x %d", B, L);
    }
    return RECSYS_OK;
}

void rs_batch_buf_free(rs_batch_buf *bb)
{
    rs_free(bb->seq);
    rs_free(bb->pos);
    rs_free(bb->neg);
    rs_free(bb->start);
    rs_free(bb->times);
    rs_free(bb->next_times);
    memset(bb, 0, sizeof *bb);
}

rs_batch rs_batch_view(const rs_batch_buf *bb, int rows, int train, uint64_t seed)
{
    rs_batch b = {
        .B = rows, .L = bb->L, .seq = bb->seq, .times = bb->times,
        .next_times = bb->next_times, .pos = bb->pos, .neg = bb->neg,
        .n_neg = bb->n_neg, .start = bb->start, .train = train, .seed = seed,
    };
    return b;
}

static void clear_row(rs_batch_buf *bb, int r)
{
    size_t o = (size_t)r * bb->L;
    memset(bb->seq + o, 0, sizeof(int32_t) * bb->L);
    memset(bb->pos + o, 0, sizeof(int32_t) * bb->L);
    if (bb->times) {
        memset(bb->times + o, 0, sizeof(int64_t) * bb->L);
        memset(bb->next_times + o, 0, sizeof(int64_t) * bb->L);
    }
}

int rs_batch_fill_train_row(rs_batch_buf *bb, int r, const recsys_dataset *ds, int64_t u)
{
    clear_row(bb, r);
    int64_t n = rs_user_train_len(ds, u);
    int64_t pairs = n - 1;
    if (pairs < 1) { bb->start[r] = bb->L; return 0; }
    if (pairs > bb->L) pairs = bb->L;
    const int32_t *items = ds->items + ds->offsets[u];
    const int64_t *times = ds->times ? ds->times + ds->offsets[u] : NULL;
    int64_t first = n - 1 - pairs; /* index of the first input item */
    int start = bb->L - (int)pairs;
    size_t o = (size_t)r * bb->L;
    for (int64_t k = 0; k < pairs; k++) {
        bb->seq[o + start + k] = items[first + k];
        bb->pos[o + start + k] = items[first + k + 1];
        if (bb->times && times) {
            bb->times[o + start + k] = times[first + k];
            bb->next_times[o + start + k] = times[first + k + 1];
        }
    }
    bb->start[r] = start;
    return (int)pairs;
}

void rs_batch_fill_input_row(rs_batch_buf *bb, int r, const recsys_dataset *ds, int64_t u,
                             int64_t n_input)
{
    const int64_t *times = ds->times ? ds->times + ds->offsets[u] : NULL;
    rs_batch_fill_history_row(bb, r, ds->items + ds->offsets[u], times, (size_t)n_input);
}

void rs_batch_fill_history_row(rs_batch_buf *bb, int r, const int32_t *items,
                               const int64_t *times, size_t n_items)
{
    clear_row(bb, r);
    size_t n = n_items < (size_t)bb->L ? n_items : (size_t)bb->L;
    const int32_t *src = items ? items + (n_items - n) : NULL;
    const int64_t *ts = times ? times + (n_items - n) : NULL;
    int start = bb->L - (int)n;
    size_t o = (size_t)r * bb->L;
    for (size_t k = 0; k < n; k++) {
        bb->seq[o + start + k] = src[k];
        if (bb->times && ts) {
            bb->times[o + start + k] = ts[k];
            /* the next event of the last input is unknown: its own time */
            bb->next_times[o + start + k] = k + 1 < n ? ts[k + 1] : ts[k];
        }
    }
    bb->start[r] = start;
}
