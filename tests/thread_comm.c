/* Thread-backed recsys_collective for the tests (thread_comm.h). */
#include "thread_comm.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    const void *send;
    void *buf;
    const size_t *scounts, *sdispls;
} slot;

typedef struct member {
    tc_group *g;
    int rank;
    long calls, fail_call;
    char err[128];
} member;

struct tc_group {
    int n;
    pthread_barrier_t bar;
    slot *slots;
    member *members;
};

tc_group *tc_group_new(int n)
{
    tc_group *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->n = n;
    g->slots = calloc((size_t)n, sizeof *g->slots);
    g->members = calloc((size_t)n, sizeof *g->members);
    if (!g->slots || !g->members || pthread_barrier_init(&g->bar, NULL, (unsigned)n)) {
        free(g->slots);
        free(g->members);
        free(g);
        return NULL;
    }
    for (int r = 0; r < n; r++) g->members[r] = (member){g, r, 0, 0, ""};
    return g;
}

void tc_group_free(tc_group *g)
{
    if (!g) return;
    pthread_barrier_destroy(&g->bar);
    free(g->slots);
    free(g->members);
    free(g);
}

void tc_fail_at(tc_group *g, int rank, long call)
{
    for (int r = 0; r < g->n; r++)
        if (rank < 0 || r == rank) g->members[r].fail_call = call;
}

/* Counts the call; a rank told to fail fails before meeting the others
 * (as a dead peer would), so the others must not wait for it: the failing
 * call is made by every rank at the same count in the tests. */
static int enter(member *m, const char *op)
{
    m->calls++;
    if (m->fail_call && m->calls == m->fail_call) {
        snprintf(m->err, sizeof m->err, "injected failure of %s (call %ld)", op, m->calls);
        return 1;
    }
    return 0;
}

static void meet(tc_group *g) { pthread_barrier_wait(&g->bar); }

static int tc_rank(void *ud) { return ((member *)ud)->rank; }
static int tc_size(void *ud) { return ((member *)ud)->g->n; }

static int tc_allreduce(void *ud, float *buf, size_t n)
{
    member *m = ud;
    tc_group *g = m->g;
    if (enter(m, "allreduce")) return 1;
    float *tmp = malloc(sizeof(float) * (n ? n : 1));
    g->slots[m->rank].buf = buf;
    meet(g);
    for (size_t i = 0; i < n && tmp; i++) {
        float s = 0.0f;
        for (int r = 0; r < g->n; r++) s += ((const float *)g->slots[r].buf)[i];
        tmp[i] = s;
    }
    meet(g);
    if (tmp) memcpy(buf, tmp, sizeof(float) * n);
    free(tmp);
    return tmp ? 0 : 2;
}

static int tc_allgather(void *ud, const void *send, size_t bytes, void *recv)
{
    member *m = ud;
    tc_group *g = m->g;
    if (enter(m, "allgather")) return 1;
    g->slots[m->rank].send = send;
    meet(g);
    for (int r = 0; r < g->n; r++)
        memcpy((char *)recv + (size_t)r * bytes, g->slots[r].send, bytes);
    meet(g);
    return 0;
}

static int tc_allgatherv(void *ud, const void *send, size_t bytes, void *recv,
                         const size_t *counts, const size_t *displs)
{
    member *m = ud;
    tc_group *g = m->g;
    if (enter(m, "allgatherv")) return 1;
    if (bytes != counts[m->rank]) return 3;
    g->slots[m->rank].send = send;
    meet(g);
    for (int r = 0; r < g->n; r++) /* in place: this rank's part is there already */
        if (counts[r] && (char *)recv + displs[r] != g->slots[r].send)
            memcpy((char *)recv + displs[r], g->slots[r].send, counts[r]);
    meet(g);
    return 0;
}

static int tc_alltoallv(void *ud, const void *send, const size_t *scounts, const size_t *sdispls,
                        void *recv, const size_t *rcounts, const size_t *rdispls)
{
    member *m = ud;
    tc_group *g = m->g;
    if (enter(m, "alltoallv")) return 1;
    g->slots[m->rank] = (slot){send, NULL, scounts, sdispls};
    meet(g);
    int bad = 0;
    for (int r = 0; r < g->n; r++) {
        const slot *s = &g->slots[r];
        if (s->scounts[m->rank] != rcounts[r]) { bad = 1; continue; }
        if (rcounts[r])
            memcpy((char *)recv + rdispls[r], (const char *)s->send + s->sdispls[m->rank],
                   rcounts[r]);
    }
    meet(g);
    return bad ? 3 : 0;
}

static int tc_broadcast(void *ud, void *buf, size_t bytes, int root)
{
    member *m = ud;
    tc_group *g = m->g;
    if (enter(m, "broadcast")) return 1;
    g->slots[m->rank].buf = buf;
    meet(g);
    if (m->rank != root && bytes) memcpy(buf, g->slots[root].buf, bytes);
    meet(g);
    return 0;
}

static int tc_barrier(void *ud)
{
    member *m = ud;
    if (enter(m, "barrier")) return 1;
    meet(m->g);
    return 0;
}

static const char *tc_errmsg(void *ud) { return ((member *)ud)->err; }

recsys_collective tc_collective(tc_group *g, int r)
{
    recsys_collective c = {sizeof c,     &g->members[r], tc_rank,      tc_size,
                           tc_allreduce, tc_allgather,   tc_allgatherv, tc_alltoallv,
                           tc_broadcast, tc_barrier,     tc_errmsg};
    return c;
}

typedef struct run_arg {
    void (*fn)(int, void *);
    int rank;
    void *arg;
} run_arg;

static void *run_one(void *p)
{
    run_arg *a = p;
    a->fn(a->rank, a->arg);
    return NULL;
}

void tc_run(int n, void (*fn)(int rank, void *arg), void *args, size_t arg_size)
{
    pthread_t th[64];
    run_arg ra[64];
    for (int r = 0; r < n && r < 64; r++) {
        ra[r] = (run_arg){fn, r, (char *)args + (size_t)r * arg_size};
        pthread_create(&th[r], NULL, run_one, &ra[r]);
    }
    for (int r = 0; r < n && r < 64; r++) pthread_join(th[r], NULL);
}
