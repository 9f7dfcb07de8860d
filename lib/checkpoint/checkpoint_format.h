/* The checkpoint file format shared by the writer and the reader
 * (docs/CHECKPOINT.md): constants, little-endian encoding, section tags and
 * the tensor directory. Internal to lib/checkpoint_*.c. */
#ifndef RS_CHECKPOINT_FORMAT_H
#define RS_CHECKPOINT_FORMAT_H

#include "checkpoint/checkpoint.h"

#include <stdlib.h>
#include <string.h>

#define CK_MAGIC "RECSYSCK"
#define CK_VERSION 2u               /* 2: adds IIDS and META; 1 still loads */
#define CK_HEADER_SIZE 16u           /* magic 8, version 4, flags 4 */
#define CK_SECTION_HEAD 12u          /* tag 4, length 8 */
#define CK_SECTION_OVERHEAD 16u      /* head + CRC 4 */
#define CK_END_PAYLOAD 12u           /* total length 8, file CRC 4 */
#define CK_CONF_MAX ((uint64_t)1 << 20)  /* config text: a few hundred bytes in practice */
#define CK_TENS_MAX ((uint64_t)16 << 20) /* tensor directory */
#define CK_NAME_MAX 255u             /* tensor name bytes */
#define CK_OPTS_VERSION 1u
#define CK_OPTS_HEAD 64u             /* version, flags, epoch, step, rng[4], n */
#define CK_IO_CHUNK ((size_t)1 << 16)

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define CK_BIG_ENDIAN 1
#else
#define CK_BIG_ENDIAN 0
/* The model's config as the "key=value\n" text of the CONF section (malloc'd;
 * NULL with *st set on failure). */
char *rs_ck_conf_text(const recsys_model *m, recsys_status *st);

#endif

/* ------------------------------------------------------------ encoding */

static inline void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static inline void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static inline uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static inline void swap_f32(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        u = (u >> 24) | ((u >> 8) & 0xFF00u) | ((u << 8) & 0xFF0000u) | (u << 24);
        memcpy(&x[i], &u, 4);
    }
}

static inline int tag_is_valid(const char *tag)
{
    for (int i = 0; i < 4; i++)
        if (tag[i] < 0x20 || tag[i] > 0x7E) return 0;
    return 1;
}

static inline int tag_is_reserved(const char *tag)
{
    return !memcmp(tag, "CONF", 4) || !memcmp(tag, "TENS", 4) || !memcmp(tag, "WGHT", 4) ||
           !memcmp(tag, "END ", 4);
}


/* ----------------------------------------------------- tensor directory */

typedef struct tensor_dir {
    int n;
    const char **names;
    size_t *offsets, *sizes;
} tensor_dir;

static inline void tensor_dir_free(tensor_dir *t)
{
    free(t->names);
    free(t->offsets);
    free(t->sizes);
    memset(t, 0, sizeof *t);
}

static inline recsys_status tensor_dir_of(const recsys_model *m, tensor_dir *t)
{
    memset(t, 0, sizeof *t);
    if (!m->ops->tensors) return RECSYS_OK;
    int n = m->ops->tensors(&m->cfg, NULL, NULL, NULL);
    if (n <= 0) return RECSYS_OK;
    t->names = calloc((size_t)n, sizeof *t->names);
    t->offsets = calloc((size_t)n, sizeof *t->offsets);
    t->sizes = calloc((size_t)n, sizeof *t->sizes);
    if (!t->names || !t->offsets || !t->sizes) {
        tensor_dir_free(t);
        return RECSYS_E_NOMEM;
    }
    t->n = m->ops->tensors(&m->cfg, t->names, t->offsets, t->sizes);
    return RECSYS_OK;
}

/* The model's config as the "key=value\n" text of the CONF section (malloc'd;
 * NULL with *st set on failure). */
char *rs_ck_conf_text(const recsys_model *m, recsys_status *st);

#endif
