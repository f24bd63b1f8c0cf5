/* The engine's transcendental elementwise passes: the attention softmax, GELU and GLU.
 *
 * Swift compiles the engine for baseline x86-64 (SSE2), where its SIMD8<Float> code runs four
 * lanes at a time without FMA; on htdemucs these passes were 12% of the CPU time, mostly in exp and
 * erf. Here the kernels (vector_math_body.h) are compiled three times — for AVX-512, for
 * x86-64-v3 (AVX2 + FMA) and for the baseline — and each exported function picks the build for the
 * CPU it runs on, so one binary runs everywhere and uses the widest registers it finds. Each build
 * uses its registers' width: 16 lanes, 8 and 4. (The compiler's `target_clones` would do the
 * dispatch, but it leaves the inline helpers at the baseline, and wide vectors cannot cross that
 * boundary.)
 *
 * The arithmetic is the same as `VectorMath` in Swift: exp by range reduction and a degree-6
 * polynomial (about 2 ulp), erf by Abramowitz & Stegun 7.1.26 (1.5e-7 absolute). Lengths that are
 * not a multiple of the vector width finish through a zero-padded vector, so every element goes
 * through the same polynomial. */
#include "demucs_kernels.h"

#include <string.h>

#define INLINE static inline __attribute__((always_inline))
#define KERNEL(name) name##_baseline
#define LANES 4
#include "vector_math_body.h"
#undef LANES
#undef KERNEL

#define TABLE(suffix) { softmax_row_##suffix, gelu_##suffix, glu_##suffix, glu_add_##suffix }

static const struct demucs_vector_kernels baseline = TABLE(baseline);

#if defined(__x86_64__)
#define KERNEL(name) name##_avx2
#define LANES 8
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#include "vector_math_body.h"
#pragma clang attribute pop
#undef LANES
#undef KERNEL

#define KERNEL(name) name##_avx512
#define LANES 16
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#include "vector_math_body.h"
#pragma clang attribute pop
#undef LANES
#undef KERNEL

static const struct demucs_vector_kernels avx2 = TABLE(avx2), avx512 = TABLE(avx512);

static int best_level(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
    return 0;
}

const struct demucs_vector_kernels *demucs_vector_kernels(int level) {
    if (level > best_level()) return 0;
    return level == 2 ? &avx512 : level == 1 ? &avx2 : level == 0 ? &baseline : 0;
}
#else
const struct demucs_vector_kernels *demucs_vector_kernels(int level) { return level == 0 ? &baseline : 0; }
#endif

/* The table for this CPU, found on first use (threads racing here all store the same pointer). */
static const struct demucs_vector_kernels *kernels(void) {
    static const struct demucs_vector_kernels *found;
    const struct demucs_vector_kernels *table = __atomic_load_n(&found, __ATOMIC_RELAXED);
    if (!table) {
        int level = 2;
        while (!demucs_vector_kernels(level)) level--;
        table = demucs_vector_kernels(level);
        __atomic_store_n(&found, table, __ATOMIC_RELAXED);
    }
    return table;
}

float demucs_softmax_row(float *row, long n, int normalise) {
    return kernels()->softmax_row(row, n, normalise);
}

void demucs_gelu(float *x, long n, float scale, float shift) {
    kernels()->gelu(x, n, scale, shift);
}

void demucs_glu(const float *value, const float *gate, float *dst, long n,
                float valueScale, float valueShift, float gateScale, float gateShift) {
    kernels()->glu(value, gate, dst, n, valueScale, valueShift, gateScale, gateShift);
}

void demucs_glu_add(const float *value, const float *gate, float *dst, long n,
                    float valueScale, float valueShift, float gateScale, float gateShift, float outScale) {
    kernels()->glu_add(value, gate, dst, n, valueScale, valueShift, gateScale, gateShift, outScale);
}
