/* safetensors files (https://huggingface.co/docs/safetensors): reading a
 * byte buffer and writing float32 tensors. Layout: 8-byte little-endian
 * header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
 *    "__metadata__": {"key": "string", ...}}
 * then the data (offsets relative to its start), little-endian.
 *
 * st_parse never trusts the file: header length within the buffer (and at
 * most ST_MAX_HEADER), JSON object with unique keys, dtype one of F32, F16,
 * BF16, F64, shapes of at most ST_MAX_DIMS non-negative dims whose element
 * count times the dtype size (overflow-checked) equals e - b, 0 <= b <= e <=
 * data length, tensors not overlapping, metadata values strings. It works
 * on any bytes (tests/test_safetensors.c runs it over mutated files; a
 * libFuzzer entry point is in fuzz/fuzz_safetensors.c). */
#ifndef RECSYS_CLI_SAFETENSORS_H
#define RECSYS_CLI_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER ((uint64_t)100 << 20)

enum st_dtype { ST_F32 = 0, ST_F16 = 1, ST_BF16 = 2, ST_F64 = 3 };

typedef struct st_tensor {
    char *name;
    enum st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    size_t begin, end;        /* byte offsets into the data section */
} st_tensor;

typedef struct st_file {
    st_tensor *t;             /* in header order */
    size_t n;
    char **meta_keys, **meta_vals;
    size_t n_meta;
    const unsigned char *data; /* borrowed: points into the parsed buffer */
    size_t data_len;
} st_file;

/* Parse len bytes. On error returns non-zero, a message in err, out empty. */
int st_parse(const unsigned char *buf, size_t len, st_file *out, char *err, size_t err_size);
void st_free(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);
const char *st_meta(const st_file *f, const char *key);
/* Tensor t's values as float32 (F16/BF16/F64 converted; an F64 value outside
 * the float range is an error) into dst of t->numel floats. */
int st_read_f32(const st_file *f, const st_tensor *t, float *dst, char *err, size_t err_size);
/* Human name of a dtype ("F32"). */
const char *st_dtype_name(enum st_dtype d);

/* Write float32 tensors: names[i] with ndims[i] dims shapes[i], data[i]
 * numel floats; metadata as n_meta key/value strings. Returns 0 or -1 with
 * err set. */
int st_write_f32(FILE *out, size_t n, const char *const *names, const int *ndims,
                 const int64_t *const *shapes, const float *const *data,
                 size_t n_meta, const char *const *meta_keys, const char *const *meta_vals,
                 char *err, size_t err_size);

#endif
