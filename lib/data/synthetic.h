/* The embedded demo data (synthetic.c): a generator that fills raw events
 * (data/raw.h). It knows nothing of recsys_dataset; dataset.c builds the
 * dataset from what it produces (recsys_dataset_synthetic). */
#ifndef RS_DATA_SYNTHETIC_H
#define RS_DATA_SYNTHETIC_H

#include "core/internal.h"
#include "data/raw.h"

/* Append the synthetic log sized by data.synthetic_* to raw (empty on
 * entry), drawn from ctx's seed. On error raw may hold partial data (the
 * caller frees it). */
recsys_status rs_synthetic_generate(recsys_ctx *ctx, const recsys_opts *opts, rs_raw *raw);

#endif
