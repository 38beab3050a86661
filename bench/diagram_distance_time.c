/* bench/diagram_distance's timing driver: reads two diagrams once, then times the library calls
 * in this process (no parsing, no process start): the exact bottleneck distance and the
 * q-Wasserstein distance (q = 1 and 2, internal p = inf, delta = 0.01, default exact/auction
 * choice), each `repeat` times. Prints one line per computation:
 *   NAME VALUE SECONDS...
 * usage: diagram_distance_time A B REPEAT */
#include "attnscope/diagram.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: diagram_distance_time A B REPEAT\n");
        return 2;
    }
    int repeat = atoi(argv[3]);
    ats_diagram a, b;
    ats_error err;
    if (ats_diagram_read(argv[1], -1, &a, &err) || ats_diagram_read(argv[2], -1, &b, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 2;
    }
    const char *names[3] = {"bottleneck", "wasserstein_q1", "wasserstein_q2"};
    for (int k = 0; k < 3; k++) {
        printf("%s", names[k]);
        double d = NAN;
        for (int r = 0; r < repeat; r++) {
            double t0 = now();
            ats_status st;
            if (k == 0) {
                st = ats_bottleneck_distance(&a, &b, &d, NULL, &err);
            } else {
                ats_wasserstein_options o;
                ats_wasserstein_options_init(&o);
                o.q = k;
                o.internal_p = INFINITY;
                o.delta = 0.01;
                st = ats_wasserstein_distance(&a, &b, &o, &d, NULL, &err);
            }
            double t = now() - t0;
            if (st) {
                fprintf(stderr, "%s\n", err.message);
                return 1;
            }
            if (r == 0) printf(" %.17g", d);
            printf(" %.6f", t);
        }
        printf("\n");
        fflush(stdout);
    }
    ats_diagram_free(&a);
    ats_diagram_free(&b);
    return 0;
}
