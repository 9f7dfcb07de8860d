/* resources.max_memory: a configuration's buffers are estimated before any
 * is allocated, and a configuration over the limit fails with the estimate
 * in the message instead of filling memory first. */
#include "core/internal.h"

#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

double rs_memory_limit(const recsys_opts *opts, const char **why)
{
    int64_t set = rs_opt_int(opts, RS_OPT_RESOURCES_MAX_MEMORY);
    if (set > 0) {
        if (why) *why = "resources.max_memory";
        return (double)set;
    }
    double lim = 0;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) lim = 0.75 * (double)pages * (double)page;
    if (why) *why = "3/4 of the physical memory (resources.max_memory=0)";
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (lim <= 0 || (double)rl.rlim_cur < lim)) {
        lim = (double)rl.rlim_cur;
        if (why) *why = "the address-space limit (ulimit -v; resources.max_memory=0)";
    }
    return lim > 0 ? lim : 1e300;
}

recsys_status rs_check_memory(recsys_ctx *ctx, const recsys_opts *opts, double bytes,
                              const char *what)
{
    const char *why = NULL;
    double lim = rs_memory_limit(opts, &why);
    if (bytes <= lim) return RECSYS_OK;
    return rs_error(ctx, RECSYS_E_NOMEM,
                    "%s would need about %.1f MiB (estimate), more than the %.1f MiB allowed by "
                    "%s; make the configuration smaller or raise resources.max_memory",
                    what, bytes / 1048576.0, lim / 1048576.0, why);
}
