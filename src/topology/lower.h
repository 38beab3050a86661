/* The index of d(i, j) in a strict lower triangle (rips.h), inline for the kernels of this
 * module; every other module calls ats_lower_index / ats_lower_at, which are these. */
#ifndef ATS_TOPOLOGY_LOWER_H
#define ATS_TOPOLOGY_LOWER_H

#include <stddef.h>

/* i != j, either order: row max(i, j), column min(i, j). */
static inline size_t lower_index(size_t i, size_t j) {
    return i > j ? i * (i - 1) / 2 + j : j * (j - 1) / 2 + i;
}

#endif
