/* The body of vector_math.c, included once per instruction set: KERNEL(name) gives each function,
 * helper and vector type its per-target name, LANES the vector width. See vector_math.c. No include
 * guard, on purpose. */

#define vf KERNEL(vf)
#define vu KERNEL(vu)
#define splat KERNEL(splat)
#define load_partial KERNEL(load_partial)
#define store_partial KERNEL(store_partial)
#define load KERNEL(load)
#define store KERNEL(store)
#define hsum KERNEL(hsum)
#define vexp KERNEL(vexp)
#define verf KERNEL(verf)
#define vgelu KERNEL(vgelu)
#define vsigmoid KERNEL(vsigmoid)

typedef float vf __attribute__((vector_size(LANES * 4)));
typedef unsigned int vu __attribute__((vector_size(LANES * 4)));

INLINE vf splat(float x) { return (vf){0} + x; }

INLINE vf load(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
INLINE void store(float *p, vf v) { memcpy(p, &v, sizeof v); }

/* The first n (< LANES) floats of p in a vector whose other lanes are zero. */
INLINE vf load_partial(const float *p, long n) {
    vf v = splat(0);
    memcpy(&v, p, (size_t)n * sizeof(float));
    return v;
}
INLINE void store_partial(float *p, vf v, long n) { memcpy(p, &v, (size_t)n * sizeof(float)); }

/* Sum of the lanes, pairwise. */
INLINE float hsum(vf v) {
    float lanes[LANES];
    memcpy(lanes, &v, sizeof v);
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++) lanes[j] += lanes[j + w];
    return lanes[0];
}

INLINE vf vexp(vf x) {
    vf v = __builtin_elementwise_max(x, splat(-87.3f));
    v = __builtin_elementwise_min(v, splat(88.7f));
    /* Round v·log2(e) to the nearest integer n by adding 1.5·2^23: n sits in the low bits. */
    const vf magic = splat(12582912.0f);
    vf t = v * 1.44269504088896341f + magic;
    vf n = t - magic;
    vf r = v - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vf p = splat(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    vf y = p * (r * r) + r + 1.0f;
    /* 2^n: the integer n is bits(t) - bits(magic); the exponent field is n + 127. */
    vu bits = ((vu)t - 0x4B400000u + 127u) << 23;
    return y * (vf)bits;
}

INLINE vf verf(vf x) {
    vf a = __builtin_elementwise_abs(x);
    vf t = 1.0f / (1.0f + 0.3275911f * a);
    vf p = splat(1.061405429f);
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    vf y = 1.0f - p * t * vexp(-(a * a));
    vu sign = (vu)x & 0x80000000u;
    return (vf)((vu)y | sign);
}

INLINE vf vgelu(vf x, float scale, float shift) {
    vf y = x * scale + shift;
    return 0.5f * y * (1.0f + verf(y * 0.70710678118654752440f));
}

INLINE vf vsigmoid(vf x) { return 1.0f / (1.0f + vexp(-x)); }

float KERNEL(softmax_row)(float *row, long n, int normalise) {
    vf m = splat(-__builtin_inff());
    long i = 0;
    for (; i + LANES <= n; i += LANES) m = __builtin_elementwise_max(m, load(row + i));
    float mx = __builtin_reduce_max(m);
    for (; i < n; i++) mx = row[i] > mx ? row[i] : mx;

    vf sum = splat(0);
    for (i = 0; i + LANES <= n; i += LANES) {
        vf e = vexp(load(row + i) - mx);
        store(row + i, e);
        sum += e;
    }
    if (i < n) {
        long rest = n - i;
        vf e = vexp(load_partial(row + i, rest) - mx);
        store_partial(row + i, e, rest);
        memset((char *)&e + rest * sizeof(float), 0, (size_t)(LANES - rest) * sizeof(float));
        sum += e;
    }
    float total = hsum(sum);
    if (normalise) {
        float inv = 1.0f / total;
        for (i = 0; i + LANES <= n; i += LANES) store(row + i, load(row + i) * inv);
        for (; i < n; i++) row[i] *= inv;
    }
    return total;
}

void KERNEL(gelu)(float *x, long n, float scale, float shift) {
    long i = 0;
    for (; i + LANES <= n; i += LANES) store(x + i, vgelu(load(x + i), scale, shift));
    if (i < n) store_partial(x + i, vgelu(load_partial(x + i, n - i), scale, shift), n - i);
}

void KERNEL(glu)(const float *value, const float *gate, float *dst, long n,
                float valueScale, float valueShift, float gateScale, float gateShift) {
    long i = 0;
    for (; i + LANES <= n; i += LANES) {
        vf a = load(value + i) * valueScale + valueShift;
        vf g = load(gate + i) * gateScale + gateShift;
        store(dst + i, vsigmoid(g) * a);
    }
    if (i < n) {
        long rest = n - i;
        vf a = load_partial(value + i, rest) * valueScale + valueShift;
        vf g = load_partial(gate + i, rest) * gateScale + gateShift;
        store_partial(dst + i, vsigmoid(g) * a, rest);
    }
}

void KERNEL(glu_add)(const float *value, const float *gate, float *dst, long n,
                    float valueScale, float valueShift, float gateScale, float gateShift, float outScale) {
    long i = 0;
    for (; i + LANES <= n; i += LANES) {
        vf a = load(value + i) * valueScale + valueShift;
        vf g = load(gate + i) * gateScale + gateShift;
        store(dst + i, load(dst + i) + outScale * (vsigmoid(g) * a));
    }
    if (i < n) {
        long rest = n - i;
        vf a = load_partial(value + i, rest) * valueScale + valueShift;
        vf g = load_partial(gate + i, rest) * gateScale + gateShift;
        store_partial(dst + i, load_partial(dst + i, rest) + outScale * (vsigmoid(g) * a), rest);
    }
}

#undef vf
#undef vu
#undef splat
#undef load_partial
#undef store_partial
#undef load
#undef store
#undef hsum
#undef vexp
#undef verf
#undef vgelu
#undef vsigmoid
