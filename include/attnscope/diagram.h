/* attnscope diagrams: persistence diagrams of one homology dimension, their files, and the
 * distances between two diagrams (bottleneck, q-Wasserstein). */
#ifndef ATTNSCOPE_DIAGRAM_H
#define ATTNSCOPE_DIAGRAM_H

#include "attnscope/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One persistence diagram: points (birth, death) with birth <= death; death == INFINITY for an
 * essential class. */
typedef struct ats_diagram {
    size_t count;
    double *pairs; /* [count][2] birth, death; owned */
} ats_diagram;

/* Releases d->pairs and zeroes d; NULL is a no-op. */
void ats_diagram_free(ats_diagram *d);

#ifdef __cplusplus
}
#endif
#endif
