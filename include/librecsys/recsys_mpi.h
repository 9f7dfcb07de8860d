/*
 * librecsys-mpi — a recsys_collective backed by Open MPI (docs/DISTRIBUTED.md).
 *
 * A separate library (librecsys-mpi.so, built when meson finds MPI), so a
 * program that never trains across machines never loads MPI: librecsys.so
 * itself only knows the recsys_collective table of <librecsys/recsys.h>.
 *
 *     recsys_mpi *mpi;
 *     if (recsys_mpi_new(600.0, &mpi)) { ... recsys_mpi_errmsg(mpi) ...; }
 *     recsys_trainer_set_collective(t, recsys_mpi_collective(mpi));
 *     ... train, evaluate (recsys_evaluate_distributed) ...
 *     recsys_mpi_free(mpi);   // MPI_Finalize when recsys_mpi_new initialised MPI
 *
 * Timeouts: every collective is started non-blocking and waited for with a
 * deadline of timeout_seconds (<= 0: wait forever). When a rank dies, Open
 * MPI's launcher (mpirun) ends the job; when a rank stalls or takes another
 * path, the others fail after the deadline with a message naming the
 * operation. After any failure the job cannot continue (a started
 * collective cannot be cancelled): report it and call recsys_mpi_abort.
 *
 * Thread safety: MPI is initialised with MPI_THREAD_FUNNELED; use a
 * recsys_mpi from the thread that created it.
 */
#ifndef RECSYS_MPI_H
#define RECSYS_MPI_H

#include <librecsys/recsys.h>

#ifndef RECSYS_MPI_API
#  if defined(__GNUC__) && __GNUC__ >= 4
#    define RECSYS_MPI_API __attribute__((visibility("default")))
#  else
#    define RECSYS_MPI_API
#  endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct recsys_mpi recsys_mpi;

/**
 * Initialise MPI if the program has not, and make a collective over a
 * duplicate of MPI_COMM_WORLD (errors returned, not fatal).
 * *out is set even on failure (except RECSYS_E_NOMEM), so that
 * recsys_mpi_errmsg can tell why; free it with recsys_mpi_free.
 * @return RECSYS_OK, RECSYS_E_IO (MPI could not start), RECSYS_E_NOMEM,
 *         RECSYS_E_INVALID (out NULL).
 */
RECSYS_MPI_API recsys_status recsys_mpi_new(double timeout_seconds, recsys_mpi **out);
/** The operation table (owned by m, valid while m lives). */
RECSYS_MPI_API const recsys_collective *recsys_mpi_collective(const recsys_mpi *m);
RECSYS_MPI_API int recsys_mpi_rank(const recsys_mpi *m);
RECSYS_MPI_API int recsys_mpi_size(const recsys_mpi *m);
/** Text of the last failure ("" when none), owned by m. */
RECSYS_MPI_API const char *recsys_mpi_errmsg(const recsys_mpi *m);
/**
 * End every process of the job (MPI_Abort with code): what a program does
 * after a failure on one rank, so that no rank waits for it. Does not
 * return. The only librecsys call that ends the process, and only on request.
 */
RECSYS_MPI_API void recsys_mpi_abort(recsys_mpi *m, int code);
/** Free m; finalises MPI when recsys_mpi_new initialised it. NULL is a no-op. */
RECSYS_MPI_API void recsys_mpi_free(recsys_mpi *m);

#ifdef __cplusplus
}
#endif
#endif /* RECSYS_MPI_H */
