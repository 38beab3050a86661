/* The kernel tables (see kernels.h): kernels_impl.h instantiated for plain C (GCC vector
 * extensions, lowered to whatever the target has), AVX2+FMA and AVX-512, and the run-time
 * choice between them. */
#include "kernels.h"

#include "attnscope/core.h"

#include <float.h>
#include <stdint.h>
#include <string.h>

/* fdlibm's constants for log (e_log.c) */
#define ATS_LN2_HI 6.93147180369123816490e-01
#define ATS_LN2_LO 1.90821492927058770002e-10
#define ATS_LG1    6.666666666666735130e-01
#define ATS_LG2    3.999999999940941908e-01
#define ATS_LG3    2.857142874366239149e-01
#define ATS_LG4    2.222219843214978396e-01
#define ATS_LG5    1.818357216161805012e-01
#define ATS_LG6    1.531383769920937332e-01
#define ATS_LG7    1.479819860511658591e-01

/* ---- plain C: 2 doubles per vector (SSE2's width, so the x86-64 ABI is untouched; other
 * targets lower it to what they have), a·b + c unfused */
typedef double vd2 __attribute__((vector_size(16)));
typedef uint64_t vu2 __attribute__((vector_size(16)));
typedef int64_t vi2 __attribute__((vector_size(16)));
typedef double vd4 __attribute__((vector_size(32)));
typedef uint64_t vu4 __attribute__((vector_size(32)));
typedef int64_t vi4 __attribute__((vector_size(32)));

#define vd              vd2
#define vu              vu2
#define vi              vi2
#define KV(name)        name##_generic
#define KV_NAME         "generic"
#define KV_ATTR         /* none */
#define KV_W            2
#define KV_MAD(a, b, c) ((a) * (b) + (c))
#include "kernels_impl.h"
#undef vd
#undef vu
#undef vi
#undef KV
#undef KV_NAME
#undef KV_ATTR
#undef KV_W
#undef KV_MAD

#if defined(__x86_64__) && defined(__GNUC__)
#define ATS_HAVE_X86_VARIANTS 1
#include <immintrin.h>

/* ---- AVX2 + FMA: 4 doubles per vector */
#define vd              vd4
#define vu              vu4
#define vi              vi4
#define KV(name)        name##_avx2
#define KV_NAME         "avx2"
#define KV_ATTR         __attribute__((target("avx2,fma")))
#define KV_W            4
#define KV_MAD(a, b, c) ((vd4)_mm256_fmadd_pd((a), (b), (c)))
#include "kernels_impl.h"
#undef vd
#undef vu
#undef vi
#undef KV
#undef KV_NAME
#undef KV_ATTR
#undef KV_W
#undef KV_MAD

/* ---- AVX-512: 8 doubles per vector */
typedef double vd8 __attribute__((vector_size(64)));
typedef uint64_t vu8 __attribute__((vector_size(64)));
typedef int64_t vi8 __attribute__((vector_size(64)));
#define vd              vd8
#define vu              vu8
#define vi              vi8
#define KV(name)        name##_avx512
#define KV_NAME         "avx512"
#define KV_ATTR         __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma")))
#define KV_W            8
#define KV_MAD(a, b, c) ((vd8)_mm512_fmadd_pd((a), (b), (c)))
#include "kernels_impl.h"
#undef vd
#undef vu
#undef vi
#undef KV
#undef KV_NAME
#undef KV_ATTR
#undef KV_W
#undef KV_MAD
#endif

const atsm_kernels *atsm_kernels_variant(int variant) {
    switch (variant) {
    case 0:
        return &table_generic;
#ifdef ATS_HAVE_X86_VARIANTS
    case 1:
        return ats_kernel_path_supported(ATS_KERNEL_AVX2) ? &table_avx2 : NULL;
    case 2:
        return ats_kernel_path_supported(ATS_KERNEL_AVX512) ? &table_avx512 : NULL;
#endif
    default:
        return NULL;
    }
}

const atsm_kernels *atsm_kernels_in_use(void) {
    switch (ats_kernel_path_get()) {
#ifdef ATS_HAVE_X86_VARIANTS
    case ATS_KERNEL_AVX512:
        return &table_avx512;
    case ATS_KERNEL_AVX2:
        return &table_avx2;
#endif
    default: /* generic, and neon: the vector extensions lowered to Advanced SIMD */
        return &table_generic;
    }
}
