/* recsys train --distributed mpi: the CLI's side of distributed training.
 * With MPI found at build time the CLI links librecsys-mpi (so libmpi is
 * loaded with the CLI, but MPI starts only when --distributed mpi asks). */
#ifndef RECSYS_CLI_DIST_H
#define RECSYS_CLI_DIST_H

#include <librecsys/recsys.h>
#include <stddef.h>

typedef struct cli_dist {
    void *impl;                  /* recsys_mpi, or NULL when not distributed */
    const recsys_collective *c;  /* NULL when not distributed */
    int rank, size;
} cli_dist;

/* kind "mpi": start MPI and fill d; "none": d stays single-process.
 * Returns 0, or 1 with a message on stderr. */
int cli_dist_start(const char *kind, double timeout_seconds, cli_dist *d);
/* After a failure on this rank: end the whole job (MPI_Abort) so that no
 * other rank waits; single-process: returns. */
void cli_dist_abort(cli_dist *d, int code);
void cli_dist_end(cli_dist *d);

#endif
