/* The arithmetic ceiling of one core: AVX-512 fused multiply-adds with 24 independent
 * accumulators (no loads), in GFLOP/s. bench/pipeline's one-head bound uses it: a forward pass
 * cannot beat (its multiply-adds × 2) / this rate.
 *
 *   gcc -O2 -mavx512f bench/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

int main(void) {
    __m512 acc[24];
    for (int i = 0; i < 24; i++) acc[i] = _mm512_set1_ps((float)i);
    const __m512 a = _mm512_set1_ps(1.0000001f), b = _mm512_set1_ps(0.9999999f);
    const long iters = 40000000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; k < iters; k++) {
#pragma GCC unroll 24
        for (int i = 0; i < 24; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    float sum = 0;
    for (int i = 0; i < 24; i++) sum += _mm512_reduce_add_ps(acc[i]);
    printf("%.1f GFLOP/s on one core (checksum %g)\n", (double)iters * 24 * 32 / s / 1e9, sum);
    return 0;
}
