/* C side of the Go callbacks: the library calls these, they call the
 * exported Go functions with the cgo.Handle passed as user data. */
#include <stdint.h>
#include <librecsys/recsys.h>
#include "_cgo_export.h"

static int progress_tramp(void *user, const recsys_progress *p)
{
    return goProgress((uintptr_t)user, (recsys_progress *)p);
}

recsys_status recsys_go_set_progress(recsys_trainer *t, uintptr_t handle)
{
    return recsys_trainer_set_progress(t, handle ? progress_tramp : NULL, (void *)handle);
}

static void log_tramp(void *user, int level, const char *msg)
{
    goLog((uintptr_t)user, level, (char *)msg);
}

recsys_status recsys_go_set_log(recsys_ctx *c, uintptr_t handle)
{
    return recsys_ctx_set_log(c, handle ? log_tramp : NULL, (void *)handle);
}
