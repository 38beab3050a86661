/* The arithmetic ceiling of one core, per x86 kernel path (bench/fma_peak.h): bench/pipeline's
 * one-head bound uses it (a forward pass cannot beat its multiply-adds × 2 / this rate), and
 * bench/gemm reports the packed kernels' share of it.
 *
 *   gcc -O2 bench/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak */
#include "fma_peak.h"

#include <stdio.h>

int main(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        printf("avx2:   %.1f GFLOP/s on one core\n", fma_peak_avx2(80000000));
    if (__builtin_cpu_supports("avx512f"))
        printf("avx512: %.1f GFLOP/s on one core\n", fma_peak_avx512(40000000));
    return 0;
}
