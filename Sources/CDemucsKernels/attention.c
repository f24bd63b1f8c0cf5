/* One block of query rows of one attention head, for CPUs with AVX-512: the scores, their softmax
 * and the product with the values, in registers-sized tiles.
 *
 * Through OpenBLAS, each (head, 64-query block) task was two small products (64 x nk x 64 and
 * 64 x 64 x nk) and each call packed the head's keys or values again: 42 times per head for
 * htdemucs's 2,688 tokens, and the products ran at 70% of the FMA peak. Here the keys are packed
 * once per head (demucs_attention_pack_keys, shared by all the head's blocks) as panels of 32 keys,
 * and the values are read in place: their rows are already 64 contiguous floats.
 *
 * Scores: an 8-query x 32-key tile of 16 accumulators, one key panel row (2 vectors) and 8
 * broadcast query values per step of the head dimension. Values: an 8-query x 32-column tile, one
 * value row (2 vectors) and 8 broadcast weights per key. The softmax is vector_math.c's. */
#include "demucs_kernels.h"

#include <string.h>

#if defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>

#define PANEL 32
#define ROWS 8

int demucs_attention_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

long demucs_attention_panel_floats(long nk, long d) { return (nk + PANEL - 1) / PANEL * PANEL * d; }

long demucs_attention_scratch_floats(long rows, long nk, long d) {
    long padded = (rows + ROWS - 1) / ROWS * ROWS;
    long keys = (nk + PANEL - 1) / PANEL * PANEL;
    return padded * keys + padded * d;
}

void demucs_attention_pack_keys(const float *k, long ldk, long nk, long d, float *panels) {
    for (long p0 = 0; p0 < nk; p0 += PANEL) {
        long keys = nk - p0 < PANEL ? nk - p0 : PANEL;
        float *panel = panels + p0 * d;
        for (long t = 0; t < d; t++) {
            float *dst = panel + t * PANEL;
            for (long j = 0; j < keys; j++) dst[j] = k[(p0 + j) * ldk + t];
            for (long j = keys; j < PANEL; j++) dst[j] = 0;
        }
    }
}

/* scores[r][p0 .. p0+32) = scale * q[r] . keys, for ROWS rows of q (row stride d). */
__attribute__((target("avx512f")))
static void score_tile(const float *q, long d, const float *panel, float scale, float *scores, long lds) {
    __m512 acc[ROWS][2];
    for (int r = 0; r < ROWS; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (long t = 0; t < d; t++) {
        __m512 k0 = _mm512_loadu_ps(panel + t * PANEL), k1 = _mm512_loadu_ps(panel + t * PANEL + 16);
        for (int r = 0; r < ROWS; r++) {
            __m512 qv = _mm512_set1_ps(q[r * d + t]);
            acc[r][0] = _mm512_fmadd_ps(qv, k0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(qv, k1, acc[r][1]);
        }
    }
    __m512 s = _mm512_set1_ps(scale);
    for (int r = 0; r < ROWS; r++) {
        _mm512_storeu_ps(scores + r * lds, _mm512_mul_ps(acc[r][0], s));
        _mm512_storeu_ps(scores + r * lds + 16, _mm512_mul_ps(acc[r][1], s));
    }
}

/* out[r][c0 .. c0+width) = inv[r] * sum_j w[r][j] v[j][c0 ..], width 16 or 32, for ROWS rows of
 * weights (row stride ldw); only the first `rows` rows are stored. */
__attribute__((target("avx512f")))
static void value_tile(const float *w, long ldw, long nk, const float *v, long ldv, int width,
                       const float *inv, float *out, long ldo, long rows) {
    __m512 acc[ROWS][2];
    for (int r = 0; r < ROWS; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    if (width == 32) {
        for (long j = 0; j < nk; j++) {
            __m512 v0 = _mm512_loadu_ps(v + j * ldv), v1 = _mm512_loadu_ps(v + j * ldv + 16);
            for (int r = 0; r < ROWS; r++) {
                __m512 p = _mm512_set1_ps(w[r * ldw + j]);
                acc[r][0] = _mm512_fmadd_ps(p, v0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(p, v1, acc[r][1]);
            }
        }
    } else {
        for (long j = 0; j < nk; j++) {
            __m512 v0 = _mm512_loadu_ps(v + j * ldv);
            for (int r = 0; r < ROWS; r++) acc[r][0] = _mm512_fmadd_ps(_mm512_set1_ps(w[r * ldw + j]), v0, acc[r][0]);
        }
    }
    for (long r = 0; r < rows; r++) {
        __m512 s = _mm512_set1_ps(inv[r]);
        _mm512_storeu_ps(out + r * ldo, _mm512_mul_ps(acc[r][0], s));
        if (width == 32) _mm512_storeu_ps(out + r * ldo + 16, _mm512_mul_ps(acc[r][1], s));
    }
}

__attribute__((target("avx512f")))
void demucs_attention_block(const float *q, long ldq, long rows, const float *panels, long nk, long d,
                            float scale, const float *v, long ldv, float *scratch, float *out, long ldo) {
    long padded = (rows + ROWS - 1) / ROWS * ROWS;
    long keys = (nk + PANEL - 1) / PANEL * PANEL;
    float *scores = scratch, *qs = scratch + padded * keys;
    /* The block's queries, contiguous, with zero rows up to a whole tile. */
    for (long r = 0; r < padded; r++) {
        if (r < rows) memcpy(qs + r * d, q + r * ldq, (size_t)d * sizeof(float));
        else memset(qs + r * d, 0, (size_t)d * sizeof(float));
    }
    for (long p0 = 0; p0 < keys; p0 += PANEL)
        for (long r0 = 0; r0 < padded; r0 += ROWS)
            score_tile(qs + r0 * d, d, panels + p0 * d, scale, scores + r0 * keys + p0, keys);
    float inv[ROWS];
    for (long r0 = 0; r0 < padded; r0 += ROWS) {
        long live = rows - r0 < ROWS ? rows - r0 : ROWS;
        /* Rows past `live` (zero queries, zero scores) are multiplied but never stored. */
        for (long r = 0; r < live; r++) inv[r] = 1.0f / demucs_softmax_row(scores + (r0 + r) * keys, nk, 0);
        for (long c0 = 0; c0 < d; c0 += 32) {
            int width = d - c0 >= 32 ? 32 : 16;
            value_tile(scores + r0 * keys, keys, nk, v + c0, ldv, width, inv, out + r0 * ldo + c0, ldo, live);
        }
    }
}

#else

int demucs_attention_available(void) { return 0; }
long demucs_attention_panel_floats(long nk, long d) { (void)nk; (void)d; return 0; }
long demucs_attention_scratch_floats(long rows, long nk, long d) { (void)rows; (void)nk; (void)d; return 0; }
void demucs_attention_pack_keys(const float *k, long ldk, long nk, long d, float *panels) {
    (void)k; (void)ldk; (void)nk; (void)d; (void)panels;
}
void demucs_attention_block(const float *q, long ldq, long rows, const float *panels, long nk, long d,
                            float scale, const float *v, long ldv, float *scratch, float *out, long ldo) {
    (void)q; (void)ldq; (void)rows; (void)panels; (void)nk; (void)d; (void)scale; (void)v; (void)ldv;
    (void)scratch; (void)out; (void)ldo;
}

#endif
