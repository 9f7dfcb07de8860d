/* Internal checkpoint API (lib/checkpoint/checkpoint_write.c, lib/checkpoint/checkpoint_read.c, lib/checkpoint/crc32c.c). The file format
 * is specified byte by byte in docs/CHECKPOINT.md.
 *
 * A checkpoint is a model (config + weights) plus optional extra sections.
 * The trainer stores its optimiser state in an "OPTS" section with
 * rs_checkpoint_save_train / rs_checkpoint_load_train; the result is still
 * an ordinary model file for recsys_model_load, which skips extra sections
 * (after checking their CRC). */
#ifndef RS_CHECKPOINT_H
#define RS_CHECKPOINT_H

#include "models/model.h"

#include <stdint.h>

/* CRC-32C (Castagnoli, reflected 0x82F63B78), software. Start with crc = 0
 * and pass the previous result to continue over more bytes:
 * rs_crc32c(rs_crc32c(0, a, na), b, nb) == rs_crc32c(0, a||b, na+nb). */
uint32_t rs_crc32c(uint32_t crc, const void *data, size_t len);
/* Entry b of slicing table k (0..7), for the table test. */
uint32_t rs_crc32c_table(int k, int b);

/* An extra section: a tag of 4 printable ASCII characters (not one of the
 * reserved CONF, TENS, WGHT, END) and opaque bytes. */
typedef struct rs_ck_section {
    char tag[5];       /* NUL-terminated */
    void *data;        /* save: read only, borrowed; load: owned, see rs_ck_sections_free */
    size_t size;
} rs_ck_section;

/* Write model and the extra sections (in order; tags must be distinct) to
 * path atomically: a temp file in the same directory, fsync, rename,
 * directory fsync. On any error an existing file at path is untouched and
 * no temp file remains. RECSYS_E_INVALID, RECSYS_E_IO, RECSYS_E_NOMEM. */
recsys_status rs_checkpoint_save_ex(recsys_ctx *ctx, const recsys_model *model,
                                    const char *path, const rs_ck_section *extra, int n_extra);

/* Load a checkpoint: a new model (refs 1) and, when extra is non-NULL, its
 * extra sections in file order (*extra may be NULL when there are none;
 * free with rs_ck_sections_free). With extra NULL the sections are checked
 * and dropped. RECSYS_E_FORMAT for any damage, RECSYS_E_IO, RECSYS_E_NOMEM. */
recsys_status rs_checkpoint_load_ex(recsys_ctx *ctx, const char *path, recsys_model **out,
                                    rs_ck_section **extra, int *n_extra);
void rs_ck_sections_free(rs_ck_section *sections, int n);

/* Trainer state kept in the "OPTS" section. */
typedef struct rs_train_state {
    int64_t epoch;      /* epochs completed */
    int64_t step;       /* optimiser steps taken (Adam's t) */
    uint64_t rng[4];    /* the trainer's rs_rng state */
    float *m, *v;       /* Adam first and second moments, model->n_params each */
} rs_train_state;

/* Save model + trainer state (atomically, as rs_checkpoint_save_ex). */
recsys_status rs_checkpoint_save_train(recsys_ctx *ctx, const recsys_model *model,
                                       const char *path, const rs_train_state *state);

/* Resume: read a checkpoint written by rs_checkpoint_save_train into an
 * existing model, whose config must be the file's (else RECSYS_E_FORMAT),
 * and into state (state->m and state->v must point to model->n_params
 * floats each; epoch, step and rng are filled). A file without an OPTS
 * section is RECSYS_E_FORMAT. On error model and state are unchanged. */
recsys_status rs_checkpoint_load_train(recsys_ctx *ctx, const char *path, recsys_model *model,
                                       rs_train_state *state);

#endif
