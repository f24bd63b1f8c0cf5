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

/* The transcendental elementwise passes (vector_math.c), each built for AVX-512, AVX2 + FMA and
 * baseline x86-64 and picked at load time.
 *
 * demucs_softmax_row: row[i] = exp(row[i] - max(row)); returns their sum, and divides the row by it
 * when normalise is nonzero.
 * demucs_gelu: x[i] = GELU(x[i] * scale + shift), exact (erf) form.
 * demucs_glu: dst[i] = sigmoid(gate[i] * gateScale + gateShift) * (value[i] * valueScale + valueShift).
 * demucs_glu_add: dst[i] += outScale * (the same gated value). */
float demucs_softmax_row(float *row, long n, int normalise);
void demucs_gelu(float *x, long n, float scale, float shift);
void demucs_glu(const float *value, const float *gate, float *dst, long n,
                float valueScale, float valueShift, float gateScale, float gateShift);
void demucs_glu_add(const float *value, const float *gate, float *dst, long n,
                    float valueScale, float valueShift, float gateScale, float gateShift, float outScale);

/* The four functions above as built for one instruction set — level 0 baseline, 1 AVX2 + FMA,
 * 2 AVX-512 — or NULL where this CPU cannot run that build. The functions above use the highest
 * level available; tests call each level through this table. */
struct demucs_vector_kernels {
    float (*softmax_row)(float *row, long n, int normalise);
    void (*gelu)(float *x, long n, float scale, float shift);
    void (*glu)(const float *value, const float *gate, float *dst, long n,
                float valueScale, float valueShift, float gateScale, float gateShift);
    void (*glu_add)(const float *value, const float *gate, float *dst, long n,
                    float valueScale, float valueShift, float gateScale, float gateShift, float outScale);
};
const struct demucs_vector_kernels *demucs_vector_kernels(int level);

/* Attention for one head and one block of query rows (attention.c), for CPUs with AVX-512 and head
 * sizes that are a multiple of 16; demucs_attention_available() says whether the CPU has it.
 *
 * demucs_attention_pack_keys: the head's keys k[j * ldk + t] (j < nk, t < d) as panels of 32 keys,
 * into demucs_attention_panel_floats(nk, d) floats; done once per head.
 * demucs_attention_block: for the `rows` queries q[r * ldq + t],
 *   out[r * ldo + c] = sum_j softmax_j(scale * q[r] . k[j]) v[j * ldv + c]  (c < d),
 * with the softmax's exponentials unnormalised and the output divided by their sum, as the engine's
 * Swift path does; `scratch` holds demucs_attention_scratch_floats(rows, nk, d) floats. */
int demucs_attention_available(void);
long demucs_attention_panel_floats(long nk, long d);
long demucs_attention_scratch_floats(long rows, long nk, long d);
void demucs_attention_pack_keys(const float *k, long ldk, long nk, long d, float *panels);
void demucs_attention_block(const float *q, long ldq, long rows, const float *panels, long nk, long d,
                            float scale, const float *v, long ldv, float *scratch, float *out, long ldo);

/* Winograd F(2x2, 3x3) transforms for 3x3 convolutions with stride 1 and padding 1 (winograd.c).
 * Tiles are the 2x2 output blocks, ceil(height/2) x ceil(width/2) of them, numbered row by row.
 *
 * demucs_winograd_weights: w [cout][cin][3][3] -> u [16][cout][cin], output channels co0..co1.
 * demucs_winograd_input: for channels ci0..ci1 of x [cin][height][width] and the tile rows
 *   tileRow0 .. tileRow0 + tileRows, v [16][cin][tiles] with tiles = tileRows * ceil(width/2).
 * demucs_winograd_output: m [16][cout][tiles] (the 16 products u[xi] . v[xi]) -> output channels
 *   c0..c1, y[co * channelStride + row * width + col], rows 0 .. outRows of the block. */
void demucs_winograd_weights(const float *w, long cout, long cin, long co0, long co1, float *u);
void demucs_winograd_input(const float *x, long height, long width, long tileRow0, long tileRows,
                           long ci0, long ci1, long cin, float *v);
void demucs_winograd_output(const float *m, long cout, long tileRows, long width, long outRows,
                            long c0, long c1, float *y, long channelStride);

/* Direct 1-D convolution for few output or input channels (narrow_conv.c, AVX-512; see
 * demucs_narrow_conv_available). One signal row: input channel ci is x[ci * ldx + 0 .. length),
 * output channel co is out[co * ldo + 0 .. length) (same length: padding = dilation * (kernel - 1) / 2
 * for odd kernels), zero outside the row:
 *   out[co][t] = bias[co] + sum_ci sum_k w[co][ci][k] * x[ci][t + k * dilation - padding]
 * for t in t0 .. t1, where t0 is a multiple of 32 and t1 is one or `length` (so that callers
 * splitting a row never write each other's samples); bias may be NULL. The weights are first
 * packed by demucs_narrow_conv_pack into demucs_narrow_conv_packed_floats(cout, cin, kernel)
 * floats; kernel at most 8. */
int demucs_narrow_conv_available(void);
long demucs_narrow_conv_packed_floats(long cout, long cin, long kernel);
void demucs_narrow_conv_pack(const float *w, long cout, long cin, long kernel, float *packed);
void demucs_narrow_conv(const float *x, long ldx, long cin, long length, const float *packed, long cout,
                        long kernel, long dilation, long padding, const float *bias, long t0, long t1,
                        float *out, long ldo);

/* glibc malloc tuning for the activation buffers (see LargeBuffer.retainFreedBlocks): keep freed
 * large blocks in the heap for reuse instead of unmapping them; and give the heap's free blocks
 * back to the kernel. No-ops where the C library is not glibc. */
void demucs_retain_freed_blocks(void);
void demucs_release_retained_blocks(void);

#ifdef __cplusplus
}
#endif

#endif
