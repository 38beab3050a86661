/* Template of one kernel table, included by kernels.c once per instruction set with:
 *   KV(name)   the variant's name for a function, e.g. name##_avx2
 *   KV_ATTR    function attributes (target)
 *   KV_W       vector width in doubles (4 or 8); vd/vi are that many doubles / int64
 *   KV_MAD(a, b, c)  a·b + c (fused where the variant has FMA)
 * Loads and stores go through memcpy so that no alignment or aliasing is assumed. */

static inline KV_ATTR __attribute__((always_inline)) vd KV(splat)(double x) {
    vd v = {0};
    return v + x;
}

static inline KV_ATTR __attribute__((always_inline)) vd KV(load)(const double *p) {
    vd v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline KV_ATTR __attribute__((always_inline)) void KV(store)(double *p, vd v) {
    memcpy(p, &v, sizeof v);
}

/* mask ? a : b, mask lanes all-ones or zero */
static inline KV_ATTR __attribute__((always_inline)) vd KV(select)(vi mask, vd a, vd b) {
    return (vd)((mask & (vi)a) | (~mask & (vi)b));
}

/* x + DBL_MIN for x >= 0: a normal positive number to take the log of. It is x itself for
 * x >= 2^-969; below that x·log x changes by less than 1e-290, and 0 stays 0 in x·log(x'). */
static inline KV_ATTR __attribute__((always_inline)) vd KV(clamp_min)(vd x) {
    return x + DBL_MIN;
}

static inline KV_ATTR __attribute__((always_inline)) double KV(hsum)(vd v) {
    double r = 0;
    for (int i = 0; i < KV_W; i++) r += v[i];
    return r;
}

/* Natural log of normal positive doubles (see kernels.h). */
static inline KV_ATTR __attribute__((always_inline)) vd KV(vlog)(vd x) {
    vu t = (vu)x + 0x00095f619980c433ULL; /* bits(1) − bits(√½): exponent of x/√½ */
    vd de = (vd)((t >> 52) | 0x4330000000000000ULL);
    vd m = (vd)((t & 0x000fffffffffffffULL) + 0x3fe6a09e667f3bcdULL); /* m ∈ [√½, √2) */
    vd dk = de - KV(splat)(0x1p52 + 1023.0);
    vd f = m - 1.0;
    vd hfsq = 0.5 * f * f;
    vd s = f / (2.0 + f);
    vd z = s * s;
    /* fdlibm's R(z) = Lg1·z + ... + Lg7·z^7, in Horner form (fewer operations; the loops that
     * call this have independent iterations to hide the latency) */
    vd r = KV_MAD(z, KV(splat)(ATS_LG7), KV(splat)(ATS_LG6));
    r = KV_MAD(z, r, KV(splat)(ATS_LG5));
    r = KV_MAD(z, r, KV(splat)(ATS_LG4));
    r = KV_MAD(z, r, KV(splat)(ATS_LG3));
    r = KV_MAD(z, r, KV(splat)(ATS_LG2));
    r = KV_MAD(z, r, KV(splat)(ATS_LG1));
    r = r * z;
    return dk * ATS_LN2_HI - ((hfsq - KV_MAD(s, hfsq + r, dk * ATS_LN2_LO)) - f);
}

/* exp(x) for x <= 709 (x < −708.39 gives 0: no subnormal results). x = k·ln2 + r, |r| <= ln2/2,
 * exp(r) by its Taylor polynomial to degree 13 (truncation < 5e-18 relative), 2^k by building
 * the exponent. Within 2 ulp of expl (test_measure_kernels.c). */
static inline KV_ATTR __attribute__((always_inline)) vd KV(vexp)(vd x) {
    const vd lo = KV(splat)(-708.39), shift = KV(splat)(0x1.8p52);
    vi under = x < lo;
    x = KV(select)(under, lo, x);
    vd t = KV_MAD(x, KV(splat)(1.4426950408889634074), shift); /* round(x/ln2) + 1.5·2^52 */
    vd kd = t - shift;
    vd r = KV_MAD(kd, KV(splat)(-ATS_LN2_HI), x); /* exact: LN2_HI has 21 trailing zero bits */
    r = KV_MAD(kd, KV(splat)(-ATS_LN2_LO), r);
    vd p = KV(splat)(1.0 / 6227020800.0); /* 1/13! */
    p = KV_MAD(p, r, KV(splat)(1.0 / 479001600.0));
    p = KV_MAD(p, r, KV(splat)(1.0 / 39916800.0));
    p = KV_MAD(p, r, KV(splat)(1.0 / 3628800.0));
    p = KV_MAD(p, r, KV(splat)(1.0 / 362880.0));
    p = KV_MAD(p, r, KV(splat)(1.0 / 40320.0));
    p = KV_MAD(p, r, KV(splat)(1.0 / 5040.0));
    p = KV_MAD(p, r, KV(splat)(1.0 / 720.0));
    p = KV_MAD(p, r, KV(splat)(1.0 / 120.0));
    p = KV_MAD(p, r, KV(splat)(1.0 / 24.0));
    p = KV_MAD(p, r, KV(splat)(1.0 / 6.0));
    p = KV_MAD(p, r, KV(splat)(0.5));
    p = KV_MAD(p, r, KV(splat)(1.0));
    p = KV_MAD(p, r, KV(splat)(1.0));
    /* 2^k: the low bits of t hold k + 2^51 */
    vd scale = (vd)((((vu)t - 0x4338000000000000ULL) + 1023) << 52);
    return KV(select)(under, KV(splat)(0.0), p * scale);
}

static KV_ATTR void KV(exp_block)(const double *x, double *y, size_t count) {
    for (size_t k = 0; k < count; k += KV_W) KV(store)(y + k, KV(vexp)(KV(load)(x + k)));
}

static KV_ATTR void KV(log_block)(const double *x, double *y, size_t count) {
    for (size_t k = 0; k < count; k += KV_W) KV(store)(y + k, KV(vlog)(KV(load)(x + k)));
}

static KV_ATTR void KV(xlogx_block)(const double *x, double *y, size_t count) {
    for (size_t k = 0; k < count; k += KV_W) {
        vd v = KV(load)(x + k);
        KV(store)(y + k, v * KV(vlog)(KV(clamp_min)(v)));
    }
}

/* s·log s for the KV_W entries at xi + k + off, xj + k + off */
#define KV_SLOG(off) KV(slog1)(KV(load)(xi + k + (off)) + KV(load)(xj + k + (off)))

static inline KV_ATTR __attribute__((always_inline)) vd KV(slog1)(vd s) {
    return s * KV(vlog)(KV(clamp_min)(s));
}

/* Kahan step: acc + v, the lost low part carried in cmp. */
#define KV_KAHAN(acc, cmp, v)                                                                      \
    do {                                                                                           \
        vd y_ = (v)-cmp;                                                                           \
        vd t_ = acc + y_;                                                                          \
        cmp = (t_ - acc) - y_;                                                                     \
        acc = t_;                                                                                  \
    } while (0)

/* Two vectors of terms are added before each compensated step (one rounding of eps·|t| more
 * per term, counted in atsm_js_pair's bound), which halves the dependent chain. */
static KV_ATTR void KV(slog_rows)(const double *xi, size_t lim_i, const double *X, size_t stride,
                                  const size_t *lim, size_t j0, size_t j1, double *out) {
    for (size_t j = j0; j < j1; j++) {
        const double *xj = X + j * stride;
        size_t n = lim_i < lim[j] ? lim_i : lim[j];
        vd a0 = KV(splat)(0.0), c0 = a0;
#if KV_W == 8
        for (size_t k = 0; k < n; k += ATS_KBLOCK) KV_KAHAN(a0, c0, KV_SLOG(0) + KV_SLOG(8));
#elif KV_W == 4
        vd a1 = a0, c1 = a0;
        for (size_t k = 0; k < n; k += ATS_KBLOCK) {
            KV_KAHAN(a0, c0, KV_SLOG(0) + KV_SLOG(4));
            KV_KAHAN(a1, c1, KV_SLOG(8) + KV_SLOG(12));
        }
        a0 += a1;
        c0 += c1;
#else
        vd a1 = a0, c1 = a0;
        for (size_t k = 0; k < n; k += ATS_KBLOCK) {
            KV_KAHAN(a0, c0, KV_SLOG(0) + KV_SLOG(2));
            KV_KAHAN(a1, c1, KV_SLOG(4) + KV_SLOG(6));
            KV_KAHAN(a0, c0, KV_SLOG(8) + KV_SLOG(10));
            KV_KAHAN(a1, c1, KV_SLOG(12) + KV_SLOG(14));
        }
        a0 += a1;
        c0 += c1;
#endif
        out[j - j0] = KV(hsum)(a0 - c0);
    }
}
#undef KV_SLOG

static KV_ATTR double KV(jsacc_pair)(const double *p, const double *q, size_t lim) {
    vd acc = KV(splat)(0.0), cmp = acc;
    const vd one = KV(splat)(1.0);
    vu absmask = (vu)KV(splat)(0.0) + 0x7fffffffffffffffULL;
    for (size_t k = 0; k < lim; k += KV_W) {
        vd a = KV(load)(p + k), b = KV(load)(q + k);
        vd s = a + b;
        vd x = (a - b) / KV(clamp_min)(s); /* s = 0 only where a = b = 0: x = 0 */
        vd y = x * x;
        /* g(x) = Σ_{j>=1} y^j / (2j(2j−1)), 12 terms: relative error < 2e-17 for y <= 1/16 */
        vd ser = KV(splat)(1.0 / (24.0 * 23.0));
        ser = KV_MAD(ser, y, KV(splat)(1.0 / (22.0 * 21.0)));
        ser = KV_MAD(ser, y, KV(splat)(1.0 / (20.0 * 19.0)));
        ser = KV_MAD(ser, y, KV(splat)(1.0 / (18.0 * 17.0)));
        ser = KV_MAD(ser, y, KV(splat)(1.0 / (16.0 * 15.0)));
        ser = KV_MAD(ser, y, KV(splat)(1.0 / (14.0 * 13.0)));
        ser = KV_MAD(ser, y, KV(splat)(1.0 / (12.0 * 11.0)));
        ser = KV_MAD(ser, y, KV(splat)(1.0 / (10.0 * 9.0)));
        ser = KV_MAD(ser, y, KV(splat)(1.0 / (8.0 * 7.0)));
        ser = KV_MAD(ser, y, KV(splat)(1.0 / (6.0 * 5.0)));
        ser = KV_MAD(ser, y, KV(splat)(1.0 / (4.0 * 3.0)));
        ser = KV_MAD(ser, y, KV(splat)(1.0 / (2.0 * 1.0)));
        ser = ser * y;
        vd u1 = one + x, u2 = one - x;
        vd direct = 0.5 * (u1 * KV(vlog)(KV(clamp_min)(u1)) + u2 * KV(vlog)(KV(clamp_min)(u2)));
        vd ax = (vd)((vu)x & absmask);
        vd g = KV(select)(ax <= 0.25, ser, direct);
        vd term = s * g;
        vd yy = term - cmp;
        vd tt = acc + yy;
        cmp = (tt - acc) - yy;
        acc = tt;
    }
    return KV(hsum)(acc) - KV(hsum)(cmp);
}

static KV_ATTR void KV(dot4_rows)(const double *const P[4], size_t lim, const double *Y,
                                  size_t stride, size_t j0, size_t j1, double *out,
                                  size_t out_stride) {
    const double *p0 = P[0], *p1 = P[1], *p2 = P[2], *p3 = P[3];
    for (size_t j = j0; j < j1; j++) {
        const double *yj = Y + j * stride;
        vd a0 = KV(splat)(0.0), a1 = a0, a2 = a0, a3 = a0;
        for (size_t k = 0; k < lim; k += KV_W) {
            vd v = KV(load)(yj + k);
            a0 = KV_MAD(KV(load)(p0 + k), v, a0);
            a1 = KV_MAD(KV(load)(p1 + k), v, a1);
            a2 = KV_MAD(KV(load)(p2 + k), v, a2);
            a3 = KV_MAD(KV(load)(p3 + k), v, a3);
        }
        out[j - j0] = KV(hsum)(a0);
        out[out_stride + (j - j0)] = KV(hsum)(a1);
        out[2 * out_stride + (j - j0)] = KV(hsum)(a2);
        out[3 * out_stride + (j - j0)] = KV(hsum)(a3);
    }
}

static const atsm_kernels KV(table) = {
    .name = KV_NAME,
    .log_block = KV(log_block),
    .exp_block = KV(exp_block),
    .xlogx_block = KV(xlogx_block),
    .slog_rows = KV(slog_rows),
    .jsacc_pair = KV(jsacc_pair),
    .dot4_rows = KV(dot4_rows),
};
#undef KV_KAHAN
