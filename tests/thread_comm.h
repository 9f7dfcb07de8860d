/*
 * A recsys_collective over threads of one process: the test implementation
 * that shows the interface is not MPI-shaped by accident. Each rank is a
 * thread; an operation publishes the rank's pointers, meets the others at
 * a barrier, copies what it needs straight from their buffers, and meets
 * them again. `fail_call`: when > 0, every rank's fail_call-th operation
 * fails (returns 1), to test the library's error path.
 */
#ifndef RS_THREAD_COMM_H
#define RS_THREAD_COMM_H

#include <librecsys/recsys.h>

typedef struct tc_group tc_group;

tc_group *tc_group_new(int n);
void tc_group_free(tc_group *g);
/* The table for rank r (user_data points into g). */
recsys_collective tc_collective(tc_group *g, int r);
/* Make operation number `call` (1-based, counted per rank) fail on `rank`
 * (-1: every rank). */
void tc_fail_at(tc_group *g, int rank, long call);

/* Run fn(rank, arg_of_rank) on n threads, one per rank, and join them. */
void tc_run(int n, void (*fn)(int rank, void *arg), void *args, size_t arg_size);

#endif
