/* The arithmetic ceiling of one core per x86 kernel path: fused multiply-adds on independent
 * accumulators (no loads; more than the FMA latency × ports in flight), in GFLOP/s. A kernel's
 * efficiency is its rate / this. Header-only: bench/fma_peak.c and bench/gemm.c include it.
 * Each function is compiled for its instruction set alone; call only what the CPU has. */
#ifndef ATS_BENCH_FMA_PEAK_H
#define ATS_BENCH_FMA_PEAK_H

#include <immintrin.h>
#include <time.h>

/* this thread's CPU time: on a shared machine the time it waited for a core does not count */
static double fma_peak_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* 24 zmm accumulators: 16 floats × 2 flops a lane */
__attribute__((target("avx512f"), noinline)) static double fma_peak_avx512(long iters) {
    __m512 acc[24];
    for (int i = 0; i < 24; i++) acc[i] = _mm512_set1_ps((float)i);
    const __m512 a = _mm512_set1_ps(1.0000001f), b = _mm512_set1_ps(0.9999999f);
    double t0 = fma_peak_seconds();
    for (long k = 0; k < iters; k++) {
#pragma GCC unroll 24
        for (int i = 0; i < 24; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    }
    double s = fma_peak_seconds() - t0;
    volatile float sink = 0;
    for (int i = 0; i < 24; i++) sink += _mm512_reduce_add_ps(acc[i]);
    (void)sink;
    return (double)iters * 24 * 32 / s / 1e9;
}

/* 12 ymm accumulators (of 16 registers): 8 floats × 2 flops a lane */
__attribute__((target("avx2,fma"), noinline)) static double fma_peak_avx2(long iters) {
    __m256 acc[12];
    for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps((float)i);
    const __m256 a = _mm256_set1_ps(1.0000001f), b = _mm256_set1_ps(0.9999999f);
    double t0 = fma_peak_seconds();
    for (long k = 0; k < iters; k++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    }
    double s = fma_peak_seconds() - t0;
    float lanes[8];
    volatile float sink = 0;
    for (int i = 0; i < 12; i++) {
        _mm256_storeu_ps(lanes, acc[i]);
        sink += lanes[0];
    }
    (void)sink;
    return (double)iters * 12 * 16 / s / 1e9;
}

#endif
