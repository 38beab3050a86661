/* The packed matrix product (src/model/gemm.c) per kernel path against the core's FMA peak
 * (bench/fma_peak.h), on the products of a forward pass: MiniLM (d 384, f 1536, d_head 32) and
 * GPT-2 size (d 768, f 3072, d_head 64) at n = 16 and 128 tokens, one thread. Prints GFLOP/s and
 * the share of the path's peak; the best of several timed runs counts (a shared machine).
 *
 *   cmake --build build --target bench_gemm && build/bench_gemm [PATH ...] */
#include "fma_peak.h"
#include "model_internal.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct shape {
    const char *name;
    size_t n, K, o;
} shape;

static const shape SHAPES[] = {
    {"MiniLM qkv n16", 16, 384, 1152},      {"MiniLM ffn-in n16", 16, 384, 1536},
    {"MiniLM ffn-out n16", 16, 1536, 384},  {"MiniLM qkv n128", 128, 384, 1152},
    {"MiniLM ffn-in n128", 128, 384, 1536}, {"MiniLM ffn-out n128", 128, 1536, 384},
    {"MiniLM QK^T n128", 128, 32, 128},     {"MiniLM PV n128", 128, 128, 32},
    {"GPT-2 qkv n128", 128, 768, 2304},     {"GPT-2 ffn-in n128", 128, 768, 3072},
    {"GPT-2 ffn-out n128", 128, 3072, 768}, {"GPT-2 QK^T n128", 128, 64, 128},
};

/* GFLOP/s of out[n][o] = in[n][K] · W[K][o] + b, best of `runs` timings of `reps` calls */
static double rate(const shape *s, int runs) {
    float *in = malloc(s->n * s->K * sizeof *in), *w = malloc(s->K * s->o * sizeof *w);
    float *out = malloc(s->n * s->o * sizeof *out), *b = calloc(s->o, sizeof *b);
    packed_w pw;
    if (!in || !w || !out || !b || !k_pack(&pw, w, s->o, s->K, s->o, 1)) {
        fprintf(stderr, "bench_gemm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < s->n * s->K; i++) in[i] = (float)(i % 7) * 0.125f - 0.375f;
    for (size_t i = 0; i < s->K * s->o; i++) w[i] = (float)(i % 5) * 0.25f - 0.5f;
    k_pack_into(&pw, pw.p, w, s->o, s->K, s->o, 1);
    double flops = 2.0 * (double)s->n * (double)s->K * (double)s->o, best = 0.0;
    long reps = (long)(5e7 / flops) + 1; /* about 0.05 GFLOP a timing */
    for (int r = 0; r < runs; r++) {
        double t0 = fma_peak_seconds();
        for (long i = 0; i < reps; i++) k_linear_packed(out, s->o, in, s->K, &pw, b, s->n, s->o);
        double g = flops * (double)reps / (fma_peak_seconds() - t0) / 1e9;
        best = g > best ? g : best;
    }
    k_pack_free(&pw);
    free(in);
    free(w);
    free(out);
    free(b);
    return best;
}

int main(int argc, char **argv) {
    omp_set_num_threads(1);
    __builtin_cpu_init();
    const ats_kernel_path all[] = {ATS_KERNEL_AVX2, ATS_KERNEL_AVX512};
    for (size_t p = 0; p < sizeof all / sizeof *all; p++) {
        ats_kernel_path path = all[p];
        const char *name = ats_kernel_path_name(path);
        int wanted = argc < 2;
        for (int a = 1; a < argc; a++) wanted |= !strcmp(argv[a], name);
        if (!wanted || !ats_kernel_path_supported(path)) continue;
        ats_error err;
        if (ats_kernel_path_set(path, &err)) {
            fprintf(stderr, "bench_gemm: %s\n", err.message);
            return 2;
        }
        double peak = 0.0;
        for (int r = 0; r < 3; r++) {
            double g =
                path == ATS_KERNEL_AVX512 ? fma_peak_avx512(20000000) : fma_peak_avx2(40000000);
            peak = g > peak ? g : peak;
        }
        printf("%s: FMA peak %.1f GFLOP/s (one core)\n", name, peak);
        printf("  %-22s %9s %7s\n", "product (n, K, o)", "GFLOP/s", "peak");
        double sum = 0.0;
        size_t count = sizeof SHAPES / sizeof *SHAPES;
        for (size_t i = 0; i < count; i++) {
            double g = rate(&SHAPES[i], 9);
            sum += g / peak;
            printf("  %-22s %9.1f %6.0f%%\n", SHAPES[i].name, g, 100.0 * g / peak);
        }
        printf("  %-22s %9s %6.0f%%\n", "mean", "", 100.0 * sum / (double)count);
    }
    return 0;
}
