/* Shared by the libFuzzer harnesses: input bytes as a regular file that the
 * library opens by path (a memfd seen through /proc/self/fd), so the real
 * loaders run unchanged. */
#ifndef RS_FUZZ_COMMON_H
#define RS_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct fuzz_file {
    int fd;
    char path[64];
} fuzz_file;

static inline int fuzz_file_open(fuzz_file *f, const uint8_t *data, size_t n)
{
    f->fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (f->fd < 0) return -1;
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(f->fd, data + off, n - off);
        if (w <= 0) { close(f->fd); return -1; }
        off += (size_t)w;
    }
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
    return 0;
}

static inline void fuzz_file_close(fuzz_file *f) { close(f->fd); }

/* One ctx for the whole run (a ctx starts a worker pool: too slow to make
 * per input); every call clears or overwrites its error. */
#include "librecsys/recsys.h"
static inline recsys_ctx *fuzz_ctx(void)
{
    static recsys_ctx *ctx;
    if (!ctx) {
        if (recsys_ctx_new(&ctx)) abort();
        recsys_ctx_set_threads(ctx, 1);
    }
    return ctx;
}

#endif
