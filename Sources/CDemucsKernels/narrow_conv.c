/* 1-D convolutions with few output channels, computed directly (AVX-512).
 *
 * The DConv branches of every encoder and decoder layer squeeze C channels to C/8 (6 to 48 in
 * htdemucs) with a dilated kernel-3 convolution. As a matrix product that has M = C/8: OpenBLAS ran
 * it at 20-60 GFLOPS (a quarter to a half of its rate on square shapes), and the im2col it needs
 * copies the input three times. Here each
 * 6-channel x 32-sample output tile lives in 12 registers; for every input channel and tap the kernel
 * loads 32 input samples (masked at the row's edges, which is the zero padding) and broadcasts 6
 * weights: 12 multiply-adds per 8 loads, no unfolded copy. Same sums as the product, in the order
 * input channel by input channel, tap by tap. */
#include "demucs_kernels.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>

#define CO 6   /* output channels per tile */
#define TW 32  /* samples per tile */

int demucs_narrow_conv_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

/* Lanes of [start, start + 16) that fall inside [0, length). */
static inline __mmask16 inside(long start, long length) {
    if (start >= 0 && start + 16 <= length) return 0xFFFF;
    __mmask16 m = 0;
    for (int i = 0; i < 16; i++)
        if (start + i >= 0 && start + i < length) m |= (__mmask16)(1u << i);
    return m;
}

__attribute__((target("avx512f")))
static void tile(const float *x, long ldx, long cin, long length, const float *wp, long coutp, long kernel,
                 long dilation, long padding, long co0, int nco, long t, const float *bias,
                 float *out, long ldo) {
    __m512 acc[CO][2];
    for (int j = 0; j < CO; j++) {
        __m512 b = _mm512_set1_ps(bias && j < nco ? bias[co0 + j] : 0.0f);
        acc[j][0] = acc[j][1] = b;
    }
    __mmask16 m0[8], m1[8];
    for (long k = 0; k < kernel; k++) {
        long start = t + k * dilation - padding;
        m0[k] = inside(start, length);
        m1[k] = inside(start + 16, length);
    }
    for (long ci = 0; ci < cin; ci++) {
        const float *row = x + ci * ldx;
        for (long k = 0; k < kernel; k++) {
            long start = t + k * dilation - padding;
            /* Masked-off lanes are not read, so `start` may point before or past the row. */
            __m512 v0 = _mm512_maskz_loadu_ps(m0[k], (const char *)row + start * (long)sizeof(float));
            __m512 v1 = _mm512_maskz_loadu_ps(m1[k], (const char *)row + (start + 16) * (long)sizeof(float));
            const float *w = wp + (ci * kernel + k) * coutp + co0;
            for (int j = 0; j < CO; j++) {
                __m512 wv = _mm512_set1_ps(w[j]);
                acc[j][0] = _mm512_fmadd_ps(wv, v0, acc[j][0]);
                acc[j][1] = _mm512_fmadd_ps(wv, v1, acc[j][1]);
            }
        }
    }
    __mmask16 s0 = inside(t, length), s1 = inside(t + 16, length);
    for (int j = 0; j < nco; j++) {
        float *dst = out + (co0 + j) * ldo;
        _mm512_mask_storeu_ps(dst + t, s0, acc[j][0]);
        _mm512_mask_storeu_ps(dst + t + 16, s1, acc[j][1]);
    }
}

long demucs_narrow_conv_packed_floats(long cout, long cin, long kernel) {
    return cin * kernel * ((cout + CO - 1) / CO * CO);
}

void demucs_narrow_conv_pack(const float *w, long cout, long cin, long kernel, float *packed) {
    long coutp = (cout + CO - 1) / CO * CO;
    for (long ci = 0; ci < cin; ci++)
        for (long k = 0; k < kernel; k++) {
            float *dst = packed + (ci * kernel + k) * coutp;
            for (long co = 0; co < coutp; co++) dst[co] = co < cout ? w[(co * cin + ci) * kernel + k] : 0.0f;
        }
}

void demucs_narrow_conv(const float *x, long ldx, long cin, long length, const float *packed, long cout,
                        long kernel, long dilation, long padding, const float *bias, long t0, long t1,
                        float *out, long ldo) {
    long coutp = (cout + CO - 1) / CO * CO;
    for (long t = t0; t < t1; t += TW) {
        for (long co0 = 0; co0 < cout; co0 += CO) {
            int nco = cout - co0 < CO ? (int)(cout - co0) : CO;
            tile(x, ldx, cin, length, packed, coutp, kernel, dilation, padding, co0, nco, t, bias, out, ldo);
        }
    }
}

#else

int demucs_narrow_conv_available(void) { return 0; }
long demucs_narrow_conv_packed_floats(long cout, long cin, long kernel) { (void)cout; (void)cin; (void)kernel; return 0; }
void demucs_narrow_conv_pack(const float *w, long cout, long cin, long kernel, float *packed) {
    (void)w; (void)cout; (void)cin; (void)kernel; (void)packed;
}
void demucs_narrow_conv(const float *x, long ldx, long cin, long length, const float *packed, long cout,
                        long kernel, long dilation, long padding, const float *bias, long t0, long t1,
                        float *out, long ldo) {
    (void)x; (void)ldx; (void)cin; (void)length; (void)packed; (void)cout; (void)kernel; (void)dilation;
    (void)padding; (void)bias; (void)t0; (void)t1; (void)out; (void)ldo;
}

#endif
