/* The allocation counter of the fault-injection test build (see fault.h).
 * This file is compiled only with -Dfault_injection=true: the global state
 * below never exists in a normal build of the library. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* fault.h is force-included here too: call the real allocator. */
#undef malloc
#undef calloc
#undef realloc
#undef strdup
#undef strndup
#undef posix_memalign

/* (The prototypes come from the force-included fault.h.) */

static atomic_long countdown; /* > 0: allocations left before the failing one */
static atomic_long total;
static atomic_int triggered;

static int fail_now(void)
{
    atomic_fetch_add(&total, 1);
    if (atomic_load(&countdown) <= 0) return 0;
    if (atomic_fetch_sub(&countdown, 1) == 1) {
        atomic_store(&triggered, 1);
        return 1;
    }
    return 0;
}

void rs_fi_fail_at(long n)
{
    atomic_store(&countdown, n);
    atomic_store(&triggered, 0);
}

int rs_fi_triggered(void) { return atomic_load(&triggered); }
long rs_fi_count(void) { return atomic_load(&total); }

void *rs_fi_malloc(size_t n) { return fail_now() ? NULL : malloc(n); }
void *rs_fi_calloc(size_t n, size_t size) { return fail_now() ? NULL : calloc(n, size); }
void *rs_fi_realloc(void *p, size_t n) { return fail_now() ? NULL : realloc(p, n); }
char *rs_fi_strdup(const char *s) { return fail_now() ? NULL : strdup(s); }
char *rs_fi_strndup(const char *s, size_t n) { return fail_now() ? NULL : strndup(s, n); }
int rs_fi_posix_memalign(void **p, size_t align, size_t n)
{
    return fail_now() ? 12 /* ENOMEM */ : posix_memalign(p, align, n);
}
