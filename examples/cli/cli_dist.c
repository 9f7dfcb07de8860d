/* cli_dist.h: MPI start/stop for recsys train, or a message when the CLI
 * was built without librecsys-mpi. */
#include "cli_dist.h"

#include <stdio.h>
#include <string.h>

#ifdef RECSYS_CLI_HAVE_MPI
#include <librecsys/recsys_mpi.h>
#endif

int cli_dist_start(const char *kind, double timeout_seconds, cli_dist *d)
{
    memset(d, 0, sizeof *d);
    d->size = 1;
    if (!kind || !strcmp(kind, "none")) return 0;
    if (strcmp(kind, "mpi")) {
        fprintf(stderr, "recsys train: --distributed expects mpi or none, not '%s'\n", kind);
        return 1;
    }
#ifdef RECSYS_CLI_HAVE_MPI
    recsys_mpi *m = NULL;
    if (recsys_mpi_new(timeout_seconds, &m)) {
        fprintf(stderr, "recsys train: cannot start MPI: %s\n", recsys_mpi_errmsg(m));
        recsys_mpi_free(m);
        return 1;
    }
    d->impl = m;
    d->c = recsys_mpi_collective(m);
    d->rank = recsys_mpi_rank(m);
    d->size = recsys_mpi_size(m);
    return 0;
#else
    (void)timeout_seconds;
    fprintf(stderr, "recsys train: --distributed mpi: this recsys was built without MPI "
                    "(install libopenmpi-dev and reconfigure)\n");
    return 1;
#endif
}

void cli_dist_abort(cli_dist *d, int code)
{
#ifdef RECSYS_CLI_HAVE_MPI
    if (d->impl && d->size > 1) {
        fprintf(stderr, "recsys train: rank %d of %d failed: ending the job\n", d->rank, d->size);
        fflush(stderr);
        recsys_mpi_abort(d->impl, code);
    }
#else
    (void)d;
    (void)code;
#endif
}

void cli_dist_end(cli_dist *d)
{
#ifdef RECSYS_CLI_HAVE_MPI
    recsys_mpi_free(d->impl);
#endif
    memset(d, 0, sizeof *d);
}
