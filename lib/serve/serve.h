/* Internal serving pieces (lib/serve/): request-row filling for sessions.
 * The model's self-description lives in models/model_meta.h. */
#ifndef RS_SERVE_H
#define RS_SERVE_H

#include "models/model.h"
#include "models/model_meta.h"
#include "models/batch.h"


/* Row r <- the last L items of a history with optional times, exactly as
 * rs_batch_fill_input_row fills a dataset user's input (the last input's
 * next time is its own). */
void rs_batch_fill_request_row(rs_batch_buf *bb, int r, const int32_t *items,
                               const int64_t *times, size_t n);

#endif
