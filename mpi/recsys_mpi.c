/* recsys_collective over Open MPI (include/librecsys/recsys_mpi.h). Every
 * operation is a non-blocking MPI collective waited for with a deadline, on
 * a duplicate of MPI_COMM_WORLD whose errors are returned, not fatal. */
#include <librecsys/recsys_mpi.h>

#include <mpi.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct recsys_mpi {
    recsys_collective table;
    MPI_Comm comm;
    int rank, size, initialised_here, have_comm;
    double timeout;
    int *icounts, *idispls, *icounts2, *idispls2;
    char err[512];
};

static int fail(recsys_mpi *m, int rc, const char *op)
{
    char text[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    if (rc != MPI_SUCCESS) MPI_Error_string(rc, text, &len);
    snprintf(m->err, sizeof m->err, "MPI %s failed on rank %d of %d: %s", op, m->rank, m->size,
             text);
    return 1;
}

/* Wait for a started collective, polling, until timeout seconds passed. */
static int wait_for(recsys_mpi *m, MPI_Request *rq, const char *op)
{
    double t0 = MPI_Wtime();
    for (long spin = 0;; spin++) {
        int done = 0;
        int rc = MPI_Test(rq, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return fail(m, rc, op);
        if (done) return 0;
        if (m->timeout > 0 && MPI_Wtime() - t0 > m->timeout) {
            snprintf(m->err, sizeof m->err,
                     "MPI %s did not complete within %g s on rank %d of %d (dist.timeout): "
                     "another rank died, stalled or left the collective sequence",
                     op, m->timeout, m->rank, m->size);
            return 2;
        }
        if (spin > 200) { /* let the other ranks on this machine run */
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
        }
    }
}

#define START(m, op, call)                                         \
    do {                                                            \
        MPI_Request rq_;                                            \
        int rc_ = (call);                                           \
        if (rc_ != MPI_SUCCESS) return fail((m), rc_, (op));        \
        if (wait_for((m), &rq_, (op))) return 1;                    \
    } while (0)

/* Pieces of at most CHUNK bytes keep MPI's int counts in range. */
#define CHUNK ((size_t)1 << 30)

static int op_rank(void *ud) { return ((recsys_mpi *)ud)->rank; }
static int op_size(void *ud) { return ((recsys_mpi *)ud)->size; }

static int op_allreduce(void *ud, float *buf, size_t n)
{
    recsys_mpi *m = ud;
    for (size_t o = 0; o < n; o += CHUNK / sizeof(float)) {
        size_t k = n - o < CHUNK / sizeof(float) ? n - o : CHUNK / sizeof(float);
        START(m, "allreduce",
              MPI_Iallreduce(MPI_IN_PLACE, buf + o, (int)k, MPI_FLOAT, MPI_SUM, m->comm, &rq_));
    }
    return 0;
}

static int op_allgather(void *ud, const void *send, size_t bytes, void *recv)
{
    recsys_mpi *m = ud;
    if (bytes > INT_MAX) {
        snprintf(m->err, sizeof m->err, "allgather of %zu bytes: more than 2 GiB", bytes);
        return 1;
    }
    START(m, "allgather", MPI_Iallgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE,
                                         m->comm, &rq_));
    return 0;
}

static int to_int(recsys_mpi *m, const size_t *in, int *out, const char *op)
{
    for (int r = 0; r < m->size; r++) {
        if (in[r] > INT_MAX) {
            snprintf(m->err, sizeof m->err, "%s: a part over 2 GiB", op);
            return 1;
        }
        out[r] = (int)in[r];
    }
    return 0;
}

static int op_allgatherv(void *ud, const void *send, size_t bytes, void *recv,
                         const size_t *counts, const size_t *displs)
{
    recsys_mpi *m = ud;
    if (bytes > INT_MAX || to_int(m, counts, m->icounts, "allgatherv") ||
        to_int(m, displs, m->idispls, "allgatherv"))
        return 1;
    const void *s = (const char *)recv + displs[m->rank] == send ? MPI_IN_PLACE : send;
    START(m, "allgatherv", MPI_Iallgatherv(s, (int)bytes, MPI_BYTE, recv, m->icounts,
                                           m->idispls, MPI_BYTE, m->comm, &rq_));
    return 0;
}

static int op_alltoallv(void *ud, const void *send, const size_t *scounts, const size_t *sdispls,
                        void *recv, const size_t *rcounts, const size_t *rdispls)
{
    recsys_mpi *m = ud;
    if (to_int(m, scounts, m->icounts, "alltoallv") || to_int(m, sdispls, m->idispls, "alltoallv") ||
        to_int(m, rcounts, m->icounts2, "alltoallv") || to_int(m, rdispls, m->idispls2, "alltoallv"))
        return 1;
    START(m, "alltoallv", MPI_Ialltoallv(send, m->icounts, m->idispls, MPI_BYTE, recv,
                                         m->icounts2, m->idispls2, MPI_BYTE, m->comm, &rq_));
    return 0;
}

static int op_broadcast(void *ud, void *buf, size_t bytes, int root)
{
    recsys_mpi *m = ud;
    for (size_t o = 0; o < bytes; o += CHUNK) {
        size_t k = bytes - o < CHUNK ? bytes - o : CHUNK;
        START(m, "broadcast", MPI_Ibcast((char *)buf + o, (int)k, MPI_BYTE, root, m->comm, &rq_));
    }
    return 0;
}

static int op_barrier(void *ud)
{
    recsys_mpi *m = ud;
    START(m, "barrier", MPI_Ibarrier(m->comm, &rq_));
    return 0;
}

static const char *op_errmsg(void *ud) { return ((recsys_mpi *)ud)->err; }

recsys_status recsys_mpi_new(double timeout_seconds, recsys_mpi **out)
{
    if (!out) return RECSYS_E_INVALID;
    recsys_mpi *m = calloc(1, sizeof *m);
    *out = m;
    if (!m) return RECSYS_E_NOMEM;
    m->timeout = timeout_seconds;
    m->comm = MPI_COMM_NULL;
    int inited = 0, provided = 0, rc;
    MPI_Initialized(&inited);
    if (!inited) {
        rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) {
            snprintf(m->err, sizeof m->err, "MPI_Init_thread failed (code %d)", rc);
            return RECSYS_E_IO;
        }
        m->initialised_here = 1;
    }
    rc = MPI_Comm_dup(MPI_COMM_WORLD, &m->comm);
    if (rc != MPI_SUCCESS) {
        fail(m, rc, "Comm_dup");
        return RECSYS_E_IO;
    }
    m->have_comm = 1;
    MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(m->comm, &m->rank);
    MPI_Comm_size(m->comm, &m->size);
    size_t n = (size_t)m->size;
    m->icounts = calloc(n, sizeof(int));
    m->idispls = calloc(n, sizeof(int));
    m->icounts2 = calloc(n, sizeof(int));
    m->idispls2 = calloc(n, sizeof(int));
    if (!m->icounts || !m->idispls || !m->icounts2 || !m->idispls2) {
        snprintf(m->err, sizeof m->err, "out of memory");
        return RECSYS_E_NOMEM;
    }
    m->table = (recsys_collective){sizeof m->table, m,           op_rank,      op_size,
                                   op_allreduce,     op_allgather, op_allgatherv, op_alltoallv,
                                   op_broadcast,     op_barrier,  op_errmsg};
    return RECSYS_OK;
}

const recsys_collective *recsys_mpi_collective(const recsys_mpi *m)
{
    return m && m->have_comm && m->icounts2 ? &m->table : NULL;
}
int recsys_mpi_rank(const recsys_mpi *m) { return m ? m->rank : 0; }
int recsys_mpi_size(const recsys_mpi *m) { return m ? m->size : 0; }
const char *recsys_mpi_errmsg(const recsys_mpi *m) { return m ? m->err : "recsys_mpi is NULL"; }

void recsys_mpi_abort(recsys_mpi *m, int code)
{
    MPI_Abort(m && m->have_comm ? m->comm : MPI_COMM_WORLD, code);
}

void recsys_mpi_free(recsys_mpi *m)
{
    if (!m) return;
    if (m->have_comm) MPI_Comm_free(&m->comm);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (m->initialised_here && !finalized) MPI_Finalize();
    free(m->icounts);
    free(m->idispls);
    free(m->icounts2);
    free(m->idispls2);
    free(m);
}
