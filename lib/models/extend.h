/* Encoding a user's window against cached keys and values
 * (lib/models/extend.c): the incremental path of a user state for models
 * whose positions count from the start of the window. */
#ifndef RS_EXTEND_H
#define RS_EXTEND_H

#include "models/scaffold.h"

/* Rows encoded together (one GEMM per projection). */
#define RS_EXTEND_ROWS 64

/* Floats per cached row and block, and of a whole cache (every block,
 * max_len rows): SASRec keeps K | V, HSTU V | K (after SiLU). */
size_t rs_kv_width(const rs_model_config *c);
size_t rs_kv_floats(const rs_model_config *c);
/* Of n encoded rows, how many have final keys and values: all but the
 * last for HSTU with the time bias (its bias reads the next event's time,
 * which the next append changes), else all. */
int rs_kv_final_rows(const rs_model_config *c, int n);
/* Scratch floats of one extension. */
size_t rs_extend_scratch_floats(const rs_model_config *c);

/* Encode rows r0..n-1 of a window (items; times, or NULL) against the
 * keys and values of rows < r0 in kv, writing theirs; out receives the
 * last row's output (the user vector, dim floats). Inference only: no
 * dropout, no projection hook. Called by the families' ops->extend. */
void rs_sasrec_extend(const rs_model_run *r, const rs_last_sasrec_projs *pj, float *kv,
                      const int32_t *items, int r0, int n, float *scratch, float *out);
void rs_hstu_extend(const rs_model_run *r, const rs_proj *uvqk, const rs_proj *o_p, float *kv,
                    const int32_t *items, const int64_t *times, int r0, int n, float *scratch,
                    float *out);

#endif
