/* safetensors reading (hardened, over a byte buffer) and float32 writing;
 * see safetensors.h. */
#include "safetensors.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t n, const char *fmt, ...)
{
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

const char *st_dtype_name(enum st_dtype d)
{
    switch (d) {
    case ST_F32: return "F32";
    case ST_F16: return "F16";
    case ST_BF16: return "BF16";
    default: return "F64";
    }
}

static size_t dtype_size(enum st_dtype d)
{
    return d == ST_F32 ? 4 : d == ST_F64 ? 8 : 2;
}

void st_free(st_file *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    memset(f, 0, sizeof *f);
}

static int by_begin(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* One tensor entry of the header. */
static int parse_entry(const char *name, json_t *v, size_t data_len, st_tensor *t, char *err,
                       size_t en)
{
    if (!json_is_object(v)) return fail(err, en, "tensor \"%.64s\": not an object", name);
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
           *off = json_object_get(v, "data_offsets");
    if (!json_is_string(dt) || !json_is_array(sh) || !json_is_array(off))
        return fail(err, en, "tensor \"%.64s\": needs dtype, shape and data_offsets", name);
    if (json_object_size(v) != 3)
        return fail(err, en, "tensor \"%.64s\": unexpected fields", name);
    const char *d = json_string_value(dt);
    if (!strcmp(d, "F32")) t->dtype = ST_F32;
    else if (!strcmp(d, "F16")) t->dtype = ST_F16;
    else if (!strcmp(d, "BF16")) t->dtype = ST_BF16;
    else if (!strcmp(d, "F64")) t->dtype = ST_F64;
    else return fail(err, en, "tensor \"%.64s\": dtype \"%.16s\" is not supported (F32, F16, BF16, "
                     "F64)", name, d);
    size_t nd = json_array_size(sh);
    if (nd > ST_MAX_DIMS)
        return fail(err, en, "tensor \"%.64s\": %zu dims (at most %d)", name, nd, ST_MAX_DIMS);
    t->ndim = (int)nd;
    size_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *x = json_array_get(sh, i);
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return fail(err, en, "tensor \"%.64s\": shape[%zu] is not a non-negative integer",
                        name, i);
        json_int_t dim = json_integer_value(x);
        if ((unsigned long long)dim > SIZE_MAX / 16 ||
            (dim != 0 && numel > SIZE_MAX / 16 / (size_t)dim))
            return fail(err, en, "tensor \"%.64s\": shape too large", name);
        t->shape[i] = (int64_t)dim;
        numel *= (size_t)dim;
    }
    t->numel = numel;
    if (json_array_size(off) != 2 || !json_is_integer(json_array_get(off, 0)) ||
        !json_is_integer(json_array_get(off, 1)))
        return fail(err, en, "tensor \"%.64s\": data_offsets must be [begin, end]", name);
    json_int_t b = json_integer_value(json_array_get(off, 0)),
               e = json_integer_value(json_array_get(off, 1));
    if (b < 0 || e < b || (unsigned long long)e > data_len)
        return fail(err, en, "tensor \"%.64s\": data_offsets [%lld, %lld] outside the %zu data "
                    "bytes", name, (long long)b, (long long)e, data_len);
    t->begin = (size_t)b;
    t->end = (size_t)e;
    if (numel * dtype_size(t->dtype) != t->end - t->begin)
        return fail(err, en, "tensor \"%.64s\": %zu elements of %s need %zu bytes, data_offsets "
                    "give %zu", name, numel, st_dtype_name(t->dtype),
                    numel * dtype_size(t->dtype), t->end - t->begin);
    return 0;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

int st_parse(const unsigned char *buf, size_t len, st_file *out, char *err, size_t en)
{
    if (!out) return fail(err, en, "no output");
    memset(out, 0, sizeof *out);
    if (!buf || len < 8) return fail(err, en, "file too short for a safetensors header");
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)buf[i] << (8 * i);
    if (hl > ST_MAX_HEADER || hl > len - 8)
        return fail(err, en, "header length %llu exceeds the file (%zu bytes) or the limit",
                    (unsigned long long)hl, len);
    if (hl < 2) return fail(err, en, "header too short");
    json_error_t je;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)hl, JSON_REJECT_DUPLICATES, &je);
    if (!root) return fail(err, en, "header is not valid JSON: %s", je.text);
    int rc = 0;
    size_t data_len = len - 8 - (size_t)hl;
    st_tensor **order = NULL;
    if (!json_is_object(root)) {
        rc = fail(err, en, "header is not a JSON object");
        goto done;
    }
    size_t cap = json_object_size(root);
    out->t = calloc(cap ? cap : 1, sizeof *out->t);
    if (!out->t) {
        rc = fail(err, en, "out of memory");
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(v)) {
                rc = fail(err, en, "__metadata__ is not an object");
                goto done;
            }
            size_t nm = json_object_size(v);
            out->meta_keys = calloc(nm ? nm : 1, sizeof(char *));
            out->meta_vals = calloc(nm ? nm : 1, sizeof(char *));
            if (!out->meta_keys || !out->meta_vals) {
                rc = fail(err, en, "out of memory");
                goto done;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv)) {
                    rc = fail(err, en, "__metadata__ value \"%.64s\" is not a string", mk);
                    goto done;
                }
                out->meta_keys[out->n_meta] = dup_str(mk);
                out->meta_vals[out->n_meta] = dup_str(json_string_value(mv));
                out->n_meta++;
                if (!out->meta_keys[out->n_meta - 1] || !out->meta_vals[out->n_meta - 1]) {
                    rc = fail(err, en, "out of memory");
                    goto done;
                }
            }
            continue;
        }
        st_tensor *t = &out->t[out->n];
        if (!*key) {
            rc = fail(err, en, "a tensor has an empty name");
            goto done;
        }
        if ((rc = parse_entry(key, v, data_len, t, err, en))) goto done;
        if (!(t->name = dup_str(key))) {
            rc = fail(err, en, "out of memory");
            goto done;
        }
        out->n++;
    }
    /* Tensors must not overlap. */
    order = malloc(sizeof *order * (out->n ? out->n : 1));
    if (!order) {
        rc = fail(err, en, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < out->n; i++) order[i] = &out->t[i];
    qsort(order, out->n, sizeof *order, by_begin);
    for (size_t i = 1; i < out->n; i++)
        if (order[i]->begin < order[i - 1]->end) {
            rc = fail(err, en, "tensors \"%.64s\" and \"%.64s\" overlap", order[i - 1]->name,
                      order[i]->name);
            goto done;
        }
    out->data = buf + 8 + hl;
    out->data_len = data_len;
done:
    free(order);
    json_decref(root);
    if (rc) st_free(out);
    return rc;
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    for (size_t i = 0; f && i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

const char *st_meta(const st_file *f, const char *key)
{
    for (size_t i = 0; f && i < f->n_meta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_vals[i];
    return NULL;
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31u, m = h & 1023u;
    float v;
    if (e == 0) v = ldexpf((float)m, -24);                 /* zero, subnormal */
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 1024u), (int)e - 25);
    return sign ? -v : v;
}

int st_read_f32(const st_file *f, const st_tensor *t, float *dst, char *err, size_t en)
{
    const unsigned char *p = f->data + t->begin;
    for (size_t i = 0; i < t->numel; i++) {
        float v;
        if (t->dtype == ST_F32 || t->dtype == ST_BF16) {
            uint32_t u;
            if (t->dtype == ST_F32)
                u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                    (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
            else u = ((uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8) << 16;
            memcpy(&v, &u, 4);
        } else if (t->dtype == ST_F16) {
            v = half_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        } else {
            uint64_t u = 0;
            for (int k = 0; k < 8; k++) u |= (uint64_t)p[8 * i + k] << (8 * k);
            double dv;
            memcpy(&dv, &u, 8);
            if (isfinite(dv) && fabs(dv) > 3.4028234663852886e38)
                return fail(err, en, "tensor \"%.64s\": F64 value %zu outside the float range",
                            t->name, i);
            v = (float)dv;
        }
        if (!isfinite(v))
            return fail(err, en, "tensor \"%.64s\": value %zu is not finite", t->name, i);
        dst[i] = v;
    }
    return 0;
}

int st_write_f32(FILE *out, size_t n, const char *const *names, const int *ndims,
                 const int64_t *const *shapes, const float *const *data, size_t n_meta,
                 const char *const *meta_keys, const char *const *meta_vals, char *err, size_t en)
{
    json_t *root = json_object();
    int rc = root ? 0 : fail(err, en, "out of memory");
    size_t off = 0;
    if (!rc && n_meta) {
        json_t *m = json_object();
        for (size_t i = 0; m && i < n_meta; i++)
            json_object_set_new(m, meta_keys[i], json_string(meta_vals[i]));
        if (!m || json_object_set_new(root, "__metadata__", m)) rc = fail(err, en, "out of memory");
    }
    for (size_t i = 0; !rc && i < n; i++) {
        size_t numel = 1;
        json_t *sh = json_array(), *o = json_array(), *e = json_object();
        for (int k = 0; sh && k < ndims[i]; k++) {
            json_array_append_new(sh, json_integer(shapes[i][k]));
            numel *= (size_t)shapes[i][k];
        }
        json_array_append_new(o, json_integer((json_int_t)off));
        off += numel * 4;
        json_array_append_new(o, json_integer((json_int_t)off));
        json_object_set_new(e, "dtype", json_string("F32"));
        json_object_set_new(e, "shape", sh);
        json_object_set_new(e, "data_offsets", o);
        if (!sh || !o || !e || json_object_set_new(root, names[i], e))
            rc = fail(err, en, "out of memory");
    }
    char *hdr = rc ? NULL : json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (rc) return rc;
    if (!hdr) return fail(err, en, "out of memory");
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7; /* data 8-byte aligned */
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(lenb, 1, 8, out) == 8 && fwrite(hdr, 1, hl, out) == hl;
    for (size_t i = hl; ok && i < padded; i++) ok = fputc(' ', out) != EOF;
    free(hdr);
    for (size_t i = 0; ok && i < n; i++) {
        size_t numel = 1;
        for (int k = 0; k < ndims[i]; k++) numel *= (size_t)shapes[i][k];
        for (size_t j = 0; ok && j < numel; j++) {
            uint32_t u;
            memcpy(&u, &data[i][j], 4);
            unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8),
                                  (unsigned char)(u >> 16), (unsigned char)(u >> 24)};
            ok = fwrite(b, 1, 4, out) == 4;
        }
    }
    return ok ? 0 : fail(err, en, "write error");
}
