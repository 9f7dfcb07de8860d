/* Reading files safely (lib/core/files.c). */
#include "core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

recsys_status rs_open_regular(recsys_ctx *ctx, const char *path, const char *what, int *fd_out)
{
    *fd_out = -1;
    /* Non-blocking, so that opening a FIFO cannot hang; then refuse it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return rs_error_at(ctx, RECSYS_E_IO, path, 0, 0, "cannot open: %s", strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return rs_error_at(ctx, RECSYS_E_IO, path, 0, 0, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return rs_error_at(ctx, RECSYS_E_IO, path, 0, 0,
                           "not a regular file (%s): %s is read only from regular files",
                           S_ISDIR(sb.st_mode) ? "a directory" : S_ISFIFO(sb.st_mode) ? "a FIFO"
                           : S_ISCHR(sb.st_mode) ? "a character device"
                           : S_ISBLK(sb.st_mode) ? "a block device"
                           : S_ISSOCK(sb.st_mode) ? "a socket" : "a special file", what);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    *fd_out = fd;
    return RECSYS_OK;
}
