/* A bfloat16 matrix multiply for CPUs with AVX512_BF16 (VDPBF16PS), the engine's optional
 * `--precision bf16` mode.
 *
 * Layout, in the usual GotoBLAS shape: the k dimension is cut in blocks of KC, n in blocks of NC,
 * m in blocks of MC; each block of op(B) is converted once to bf16 and packed as 16-column strips
 * holding the pairs (B[p][j], B[p+1][j]) that VDPBF16PS multiplies together; each block of op(A)
 * is packed as 8-row strips of the pairs (A[i][p], A[i][p+1]), broadcast one row at a time. The
 * microkernel keeps an 8 x 32 tile of C in 16 registers. Rounding to bf16 is round-to-nearest-even,
 * as PyTorch's float -> bfloat16 conversion. */
#include "demucs_kernels.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define MR 8
#define NR 32
#define KC 384   /* even */
#define MC 96    /* multiple of MR */
#define NC 1024  /* multiple of NR */

static inline uint16_t to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40); /* quiet NaN */
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

static inline float elem_a(const float *A, int lda, int transA, int i, int p) {
    return transA ? A[(long)p * lda + i] : A[(long)i * lda + p];
}

static inline float elem_b(const float *B, int ldb, int transB, int p, int j) {
    return transB ? B[(long)j * ldb + p] : B[(long)p * ldb + j];
}

/* Rounds 16 floats to bf16 and returns them in order as 16 words: consecutive pairs of them are
 * the (p, p+1) pairs the kernel multiplies. */
__attribute__((target("avx512f,avx512bw")))
static inline __m256i round16(__m512i bits) {
    const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
    bits = _mm512_add_epi32(bits, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(bits, 16), one)));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(bits, 16));
}

/* op(A)[i0 .. i0+mc, p0 .. p0+kc] -> strips of MR rows, each row's pairs contiguous:
 * [strip][row][pair] as 32-bit (lo = p, hi = p+1); rows past mc are zero. */
__attribute__((target("avx512f,avx512bw")))
static void pack_a(const float *A, int lda, int transA, int i0, int mc, int p0, int kc, uint32_t *out) {
    int pairs = (kc + 1) / 2;
    for (int s = 0; s < mc; s += MR) {
        for (int r = 0; r < MR; r++, out += pairs) {
            if (s + r >= mc) { memset(out, 0, (size_t)pairs * 4); continue; }
            int i = i0 + s + r;
            int q = 0;
            if (!transA) {
                const float *row = A + (long)i * lda + p0;
                for (; 2 * q + 16 <= kc; q += 8)
                    _mm256_storeu_si256((__m256i *)(out + q), round16(_mm512_castps_si512(_mm512_loadu_ps(row + 2 * q))));
            }
            for (; q < pairs; q++) {
                int p = p0 + 2 * q;
                uint32_t lo = to_bf16(elem_a(A, lda, transA, i, p));
                uint32_t hi = 2 * q + 1 < kc ? to_bf16(elem_a(A, lda, transA, i, p + 1)) : 0;
                out[q] = lo | (hi << 16);
            }
        }
    }
}

/* op(B)[p0 .. p0+kc, j0 .. j0+nc] -> strips of 16 columns: [strip][pair][column] as 32-bit pairs. */
__attribute__((target("avx512f,avx512bw,avx512dq")))
static void pack_b(const float *B, int ldb, int transB, int p0, int kc, int j0, int nc, uint32_t *out) {
    int pairs = (kc + 1) / 2;
    for (int s = 0; s < nc; s += 16) {
        int width = nc - s < 16 ? nc - s : 16;
        for (int q = 0; q < pairs; q++) {
            int p = p0 + 2 * q;
            int has_hi = 2 * q + 1 < kc;
            if (!transB && width == 16) {
                /* Two rows of 16 floats -> 16 rounded pairs, with integer lanes (no BF16 needed). */
                __m512i lo = _mm512_castps_si512(_mm512_loadu_ps(B + (long)p * ldb + j0 + s));
                __m512i hi = has_hi ? _mm512_castps_si512(_mm512_loadu_ps(B + (long)(p + 1) * ldb + j0 + s))
                                    : _mm512_setzero_si512();
                const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
                lo = _mm512_add_epi32(lo, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(lo, 16), one)));
                hi = _mm512_add_epi32(hi, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(hi, 16), one)));
                __m512i pair = _mm512_or_si512(_mm512_srli_epi32(lo, 16), _mm512_andnot_si512(_mm512_set1_epi32(0xffff), hi));
                if (!has_hi) pair = _mm512_and_si512(pair, _mm512_set1_epi32(0xffff));
                _mm512_storeu_si512((void *)out, pair);
                out += 16;
                continue;
            }
            if (transB && width == 16 && has_hi) {
                /* Column j's (p, p+1) floats are adjacent: gather them as 64-bit pairs. */
                const __m512i cols = _mm512_mullo_epi64(_mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi64((long long)ldb * 4));
                const char *base = (const char *)(B + (long)(j0 + s) * ldb + p);
                __m512i first = _mm512_i64gather_epi64(cols, base, 1);
                __m512i second = _mm512_i64gather_epi64(cols, base + (long)8 * ldb * 4, 1);
                __m256i w0 = round16(first), w1 = round16(second);
                _mm256_storeu_si256((__m256i *)out, w0);
                _mm256_storeu_si256((__m256i *)(out + 8), w1);
                out += 16;
                continue;
            }
            for (int c = 0; c < 16; c++) {
                uint32_t lo = 0, hi = 0;
                if (c < width) {
                    lo = to_bf16(elem_b(B, ldb, transB, p, j0 + s + c));
                    if (has_hi) hi = to_bf16(elem_b(B, ldb, transB, p + 1, j0 + s + c));
                }
                *out++ = lo | (hi << 16);
            }
        }
    }
}

/* C tile (rows x cols, at most MR x NR) += alpha * (A strip . B strips), or = when first with beta. */
__attribute__((target("avx512f,avx512bw,avx512bf16")))
static void kernel(int pairs, const uint32_t *a, const uint32_t *b0, const uint32_t *b1,
                   float *c, int ldc, int rows, int cols, float alpha, float beta, int first) {
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) { acc[r][0] = _mm512_setzero_ps(); acc[r][1] = _mm512_setzero_ps(); }
    for (int q = 0; q < pairs; q++) {
        __m512bh x0 = (__m512bh)_mm512_loadu_si512((const void *)(b0 + 16 * q));
        __m512bh x1 = (__m512bh)_mm512_loadu_si512((const void *)(b1 + 16 * q));
        for (int r = 0; r < MR; r++) {
            __m512bh w = (__m512bh)_mm512_set1_epi32((int)a[(size_t)r * pairs + q]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], w, x0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], w, x1);
        }
    }
    __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    __mmask16 m1 = cols >= 32 ? 0xffff : (cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1));
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int r = 0; r < rows; r++) {
        float *row = c + (long)r * ldc;
        __m512 old0 = _mm512_maskz_loadu_ps(m0, row), old1 = _mm512_maskz_loadu_ps(m1, row + 16);
        __m512 new0, new1;
        if (first && beta == 0.0f) {
            new0 = _mm512_mul_ps(va, acc[r][0]);
            new1 = _mm512_mul_ps(va, acc[r][1]);
        } else if (first) {
            new0 = _mm512_fmadd_ps(va, acc[r][0], _mm512_mul_ps(vb, old0));
            new1 = _mm512_fmadd_ps(va, acc[r][1], _mm512_mul_ps(vb, old1));
        } else {
            new0 = _mm512_fmadd_ps(va, acc[r][0], old0);
            new1 = _mm512_fmadd_ps(va, acc[r][1], old1);
        }
        _mm512_mask_storeu_ps(row, m0, new0);
        if (m1) _mm512_mask_storeu_ps(row + 16, m1, new1);
    }
}

int demucs_bf16_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512bf16");
}

/* 64-byte aligned memory of at least `bytes`: aligned_alloc wants a size that is a multiple of
 * the alignment (C11 7.22.3.1; AddressSanitizer reports any other), so the size is rounded up. */
static void *alloc_cache_lines(size_t bytes) {
    return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
}

void demucs_bf16_gemm(int transA, int transB, int m, int n, int k, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) C[(long)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(long)i * ldc + j];
        return;
    }
    int kcMax = k < KC ? k : KC, ncMax = n < NC ? n : NC, mcMax = m < MC ? m : MC;
    size_t bStrips = (size_t)(ncMax + 15) / 16 + 1;  /* one spare zero strip for odd strip counts */
    uint32_t *packedB = alloc_cache_lines(bStrips * 16 * ((kcMax + 1) / 2) * 4 + 64);
    uint32_t *packedA = alloc_cache_lines((size_t)((mcMax + MR - 1) / MR) * MR * ((kcMax + 1) / 2) * 4 + 64);
    for (int j0 = 0; j0 < n; j0 += NC) {
        int nc = n - j0 < NC ? n - j0 : NC;
        int strips = (nc + 15) / 16;
        for (int p0 = 0; p0 < k; p0 += KC) {
            int kc = k - p0 < KC ? k - p0 : KC;
            int pairs = (kc + 1) / 2;
            pack_b(B, ldb, transB, p0, kc, j0, nc, packedB);
            memset(packedB + (size_t)strips * 16 * pairs, 0, (size_t)16 * pairs * 4);
            for (int i0 = 0; i0 < m; i0 += MC) {
                int mc = m - i0 < MC ? m - i0 : MC;
                pack_a(A, lda, transA, i0, mc, p0, kc, packedA);
                for (int s = 0; s < nc; s += NR) {
                    const uint32_t *b0 = packedB + (size_t)(s / 16) * 16 * pairs;
                    const uint32_t *b1 = b0 + (size_t)16 * pairs;
                    int cols = nc - s < NR ? nc - s : NR;
                    for (int r = 0; r < mc; r += MR) {
                        int rows = mc - r < MR ? mc - r : MR;
                        kernel(pairs, packedA + (size_t)r * pairs, b0, b1,
                               C + (long)(i0 + r) * ldc + j0 + s, ldc, rows, cols, alpha, beta, p0 == 0);
                    }
                }
            }
        }
    }
    free(packedA);
    free(packedB);
}

#else

int demucs_bf16_available(void) { return 0; }

void demucs_bf16_gemm(int transA, int transB, int m, int n, int k, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    (void)transA; (void)transB; (void)m; (void)n; (void)k; (void)alpha;
    (void)A; (void)lda; (void)B; (void)ldb; (void)beta; (void)C; (void)ldc;
    abort();
}

#endif
