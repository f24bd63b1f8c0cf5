#ifndef DEMUCS_KERNELS_H
#define DEMUCS_KERNELS_H

/* Kernels the engine cannot express in Swift because they need CPU instructions Swift's SIMD types
 * do not reach. Each is compiled for its instruction set with a function attribute and chosen at
 * run time, so the binary runs on any x86-64 CPU (and builds elsewhere, where they report absent). */

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when this CPU can run demucs_bf16_gemm (x86-64 with AVX512F, BW, DQ and AVX512_BF16). */
int demucs_bf16_available(void);

/* C[m x n] = alpha * op(A)[m x k] * op(B)[k x n] + beta * C, row-major like cblas_sgemm, with the
 * products taken in bfloat16 (both operands rounded to nearest even) and the sums in float32.
 * op(A)[i][p] = transA ? A[p * lda + i] : A[i * lda + p]; op(B)[p][j] = transB ? B[j * ldb + p] : B[p * ldb + j].
 * Call only when demucs_bf16_available() is 1. */
void demucs_bf16_gemm(int transA, int transB, int m, int n, int k, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* glibc malloc tuning for the activation buffers (see LargeBuffer.retainFreedBlocks): keep freed
 * large blocks in the heap for reuse instead of unmapping them; and give the heap's free blocks
 * back to the kernel. No-ops where the C library is not glibc. */
void demucs_retain_freed_blocks(void);
void demucs_release_retained_blocks(void);

#ifdef __cplusplus
}
#endif

#endif
