/* The forward pass's kernels: plain loops over plain arrays, matrix products through OpenBLAS.
 * Each says its shapes. OpenMP splits rows; BLAS is never called inside a parallel region, so
 * OpenBLAS's and OpenMP's threads never run at the same time. */
#include "model_internal.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* out[n][o] = in[n][i] · Wᵀ + b, W Linear [o][i] (torch.nn.Linear)
 *        or = in[n][i] · W + b,  W Conv1D [i][o] (GPT-2); b [o] or NULL */
void k_linear(float *out, const float *in, const float *w, const float *b, size_t n, size_t i,
              size_t o, int conv1d) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, conv1d ? CblasNoTrans : CblasTrans, (int)n, (int)o,
                (int)i, 1.0f, in, (int)i, w, conv1d ? (int)o : (int)i, 0.0f, out, (int)o);
    if (b) {
        long rows = (long)n;
#pragma omp parallel for if (n * o > 65536) schedule(static)
        for (long r = 0; r < rows; r++) {
            float *y = out + (size_t)r * o;
            for (size_t c = 0; c < o; c++) y[c] += b[c];
        }
    }
}

/* out[n][d] = (x[n][d] - mean) / sqrt(var + eps) · w[d] + b[d] per row; out may be x */
void k_layernorm(float *out, const float *x, const float *w, const float *b, size_t n, size_t d,
                 float eps) {
    long rows = (long)n;
#pragma omp parallel for if (n * d > 65536) schedule(static)
    for (long r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * d;
        float *yr = out + (size_t)r * d;
        double mean = 0.0, var = 0.0;
        for (size_t c = 0; c < d; c++) mean += xr[c];
        mean /= (double)d;
        for (size_t c = 0; c < d; c++) {
            double t = xr[c] - mean;
            var += t * t;
        }
        var /= (double)d;
        float inv = (float)(1.0 / sqrt(var + (double)eps));
        float fm = (float)mean;
        for (size_t c = 0; c < d; c++) yr[c] = (xr[c] - fm) * inv * w[c] + b[c];
    }
}

static float act1(float x, act_kind a) {
    switch (a) {
    case ACT_GELU:
        return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case ACT_GELU_TANH:
        return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case ACT_RELU:
        return x > 0.0f ? x : 0.0f;
    case ACT_SILU:
        return x / (1.0f + expf(-x));
    case ACT_GELU_QUICK:
        return x / (1.0f + expf(-1.702f * x));
    }
    return x;
}

/* x[count] = act(x) */
void k_activation(float *x, size_t count, act_kind act) {
    long cnt = (long)count;
#pragma omp parallel for if (count > 65536) schedule(static)
    for (long k = 0; k < cnt; k++) x[k] = act1(x[k], act);
}

/* x[rows][n]: each row = exp(row - max) / Σ exp(row - max); -inf entries become 0 */
void k_softmax_rows(float *x, size_t rows, size_t n) {
    long nr = (long)rows;
#pragma omp parallel for if (rows * n > 32768) schedule(static)
    for (long r = 0; r < nr; r++) {
        float *row = x + (size_t)r * n;
        float mx = -INFINITY;
        for (size_t j = 0; j < n; j++) mx = row[j] > mx ? row[j] : mx;
        float sum = 0.0f;
        for (size_t j = 0; j < n; j++) {
            float e = expf(row[j] - mx);
            row[j] = e;
            sum += e;
        }
        float inv = 1.0f / sum;
        for (size_t j = 0; j < n; j++) row[j] *= inv;
    }
}

/* x[count] += y[count] */
void k_add(float *x, const float *y, size_t count) {
    long cnt = (long)count;
#pragma omp parallel for if (count > 65536) schedule(static)
    for (long k = 0; k < cnt; k++) x[k] += y[k];
}
