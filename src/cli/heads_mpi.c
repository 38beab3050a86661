/* MPI for `attnscope heads`: built when CMake found MPI (ATS_HAVE_MPI). MPI starts only when
 * the process was launched by mpirun/mpiexec, so the plain command never pays for it. */
#include "heads.h"

#include <stdlib.h>
#include <string.h>

#ifdef ATS_HAVE_MPI
#include <mpi.h>

static int launched_by_mpirun(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

int heads_mpi_available(void) {
    return 1;
}

void heads_mpi_start(heads_mpi *m, int *argc, char ***argv) {
    m->rank = 0;
    m->size = 1;
    m->active = 0;
    if (!launched_by_mpirun()) return;
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &m->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &m->size);
    m->active = 1;
}

void heads_mpi_stop(heads_mpi *m) {
    if (m->active) MPI_Finalize();
    m->active = 0;
}

void heads_mpi_abort(heads_mpi *m, int code) {
    if (m->active && m->size > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

/* Messages are cut into pieces of at most 2^30 doubles (MPI counts are int). */
#define PIECE ((size_t)1 << 30)

void heads_mpi_recv(heads_mpi *m, int from, size_t chunk, double *buf, size_t n) {
    if (!m->active) return;
    for (size_t off = 0; off < n; off += PIECE) {
        size_t k = n - off < PIECE ? n - off : PIECE;
        MPI_Recv(buf + off, (int)k, MPI_DOUBLE, from, (int)(chunk % 30000), MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
    }
}

void heads_mpi_send(heads_mpi *m, size_t chunk, const double *buf, size_t n) {
    if (!m->active) return;
    for (size_t off = 0; off < n; off += PIECE) {
        size_t k = n - off < PIECE ? n - off : PIECE;
        MPI_Send(buf + off, (int)k, MPI_DOUBLE, 0, (int)(chunk % 30000), MPI_COMM_WORLD);
    }
}

void heads_mpi_sum_counts(heads_mpi *m, unsigned long long *counts, size_t n) {
    if (!m->active || m->size < 2 || n == 0) return;
    MPI_Allreduce(MPI_IN_PLACE, counts, (int)n, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
}

void heads_mpi_bcast(heads_mpi *m, double *buf, size_t n) {
    if (!m->active || m->size < 2) return;
    for (size_t off = 0; off < n; off += PIECE) {
        size_t k = n - off < PIECE ? n - off : PIECE;
        MPI_Bcast(buf + off, (int)k, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    }
}

#else

int heads_mpi_available(void) {
    return 0;
}
void heads_mpi_start(heads_mpi *m, int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    m->rank = 0;
    m->size = 1;
    m->active = 0;
}
void heads_mpi_stop(heads_mpi *m) {
    (void)m;
}
void heads_mpi_abort(heads_mpi *m, int code) {
    (void)m;
    (void)code;
}
void heads_mpi_recv(heads_mpi *m, int from, size_t chunk, double *buf, size_t n) {
    (void)m;
    (void)from;
    (void)chunk;
    (void)buf;
    (void)n;
}
void heads_mpi_send(heads_mpi *m, size_t chunk, const double *buf, size_t n) {
    (void)m;
    (void)chunk;
    (void)buf;
    (void)n;
}
void heads_mpi_sum_counts(heads_mpi *m, unsigned long long *counts, size_t n) {
    (void)m;
    (void)counts;
    (void)n;
}
void heads_mpi_bcast(heads_mpi *m, double *buf, size_t n) {
    (void)m;
    (void)buf;
    (void)n;
}
#endif
