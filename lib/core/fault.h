/* Allocation-failure injection (meson -Dfault_injection=true only): this
 * header is force-included (-include) into every library source of that
 * test build, so that every allocation the library makes goes through one
 * counter, and the N-th one can be made to fail (tests/test_fault.c, as
 * SQLite tests itself). Never part of a normal build. */
#ifndef RS_FAULT_H
#define RS_FAULT_H

#include <stdlib.h>
#include <string.h>

void *rs_fi_malloc(size_t n);
void *rs_fi_calloc(size_t n, size_t size);
void *rs_fi_realloc(void *p, size_t n);
char *rs_fi_strdup(const char *s);
char *rs_fi_strndup(const char *s, size_t n);
int rs_fi_posix_memalign(void **p, size_t align, size_t n);

/* Control, for the test: the n-th allocation from now fails (once); 0
 * disables. rs_fi_triggered says whether it has happened. */
void rs_fi_fail_at(long n);
int rs_fi_triggered(void);
long rs_fi_count(void);

#define malloc(n) rs_fi_malloc(n)
#define calloc(n, s) rs_fi_calloc(n, s)
#define realloc(p, n) rs_fi_realloc(p, n)
#define strdup(s) rs_fi_strdup(s)
#define strndup(s, n) rs_fi_strndup(s, n)
#define posix_memalign(p, a, n) rs_fi_posix_memalign(p, a, n)

#endif
