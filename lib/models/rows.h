/* A block on a few rows at a time, against keys and values held elsewhere:
 * the pieces the serving forward's last block (last_block.c) and the cached
 * extension of a user's window (extend.c) share. Each works on the rows of
 * an rs_rows buffer set; projections go through rs_proj_fwd (with `last`
 * telling a hook the rows are one per batch row, see last_block.c). */
#ifndef RS_ROWS_H
#define RS_ROWS_H

#include "models/scaffold.h"

/* B rows each of the widest row a block has (rs_rows_width), plus the
 * per-row layer-norm statistics and one query's attention weights. */
typedef struct rs_rows {
    float *xl, *ql, *ol, *al, *tl, *yl, *hl, *ul; /* B rows each */
    float *mean, *rstd;                           /* B */
    float *w;    /* 3 max_len + the widest row: a query's weights, biases and
                    sigmoids (rs_hstu_attend), SiLU scratch */
} rs_rows;

size_t rs_rows_width(const rs_model_config *c);
/* Floats of rs_rows for B rows, and carving them out of s (returns the end). */
size_t rs_rows_floats(const rs_model_config *c, int B);
float *rs_rows_carve(const rs_model_config *c, int B, float *s, rs_rows *b);

/* Block k's slice of the tensor called name (the whole tensor when not
 * stacked over blocks), or NULL. */
const float *rs_run_tensor(const rs_model_run *r, const char *name, int k);

/* y = x Wᵀ + b through the model's projection (its bias added here when the
 * projection leaves it to a fused pass). */
void rs_rows_proj(const rs_model_run *r, const rs_proj *p, int k, int n, int last,
                  const float *x, int ldx, float *y, int ldy);

/* SASRec: the softmax attention of one query row (H heads of dh) over n
 * keys and values (row strides ks, vs), into o (H dh floats). w: n floats. */
void rs_sasrec_attend(const rs_kernels *kern, int H, int dh, const float *q, const float *keys,
                      size_t ks, const float *values, size_t vs, int n, float *w, float *o);
/* SASRec: the rest of block k on n rows after attention. In: xl (block
 * input), tl (LN_a(xl), original placement), ol (the heads' outputs).
 * Out: yl (block output). */
void rs_sasrec_rows_tail(const rs_model_run *r, const rs_last_sasrec_projs *pj, int k, int n,
                         int last, rs_rows *s);
/* SASRec's final layer norm of n rows y into out (row stride d). */
void rs_sasrec_rows_final(const rs_model_run *r, int n, const float *y, rs_rows *s, float *out);

/* HSTU: query row i's pointwise attention over keys 0..n-1 (per head: SiLU
 * of q·k + the relative position and time biases, over max_len), added to
 * o (H dv floats). times: the row's events, next: query i's next-event
 * time; rab_time NULL = no time bias. w: 3 n floats of scratch. */
void rs_hstu_attend(const rs_model_run *r, const float *rab_pos, const float *rab_time,
                    const float *q, const float *keys, size_t ks, const float *values, size_t vs,
                    int i, int n, const int64_t *times, int64_t next, float *o, float *w);
/* HSTU: the uvqk projection's parts U, V, Q, K (rows of one weight). */
void rs_hstu_split_uvqk(const rs_model_config *c, const rs_proj *uvqk, rs_proj *u, rs_proj *v,
                        rs_proj *q, rs_proj *kp);
/* HSTU: the rest of block k on n rows. In: xl (block input), ol (attention
 * output), ul (SiLU(U)). Out: yl. */
void rs_hstu_rows_tail(const rs_model_run *r, const rs_proj *o_p, int k, int n, int last,
                       rs_rows *s);
/* HSTU's output of one row y (L2-normalised when the model says so). */
void rs_hstu_row_final(const rs_model_run *r, const float *y, float *out);

#endif
