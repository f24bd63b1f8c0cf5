/* The float32 multiply-add peak of this CPU, per core and for all cores: the ceiling for any
 * matrix multiply, and so for the engine (docs/PERFORMANCE.md, "Why 0.5x in float32 is out of
 * reach here"). Twelve independent 512-bit (or 256-bit) FMA chains per thread, no memory traffic.
 *
 *     cc -O2 -pthread tools/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak
 */
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static const long iterations = 100000000;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define FMA12(reg) \
    "vfmadd231ps %%" reg "12,%%" reg "13,%%" reg "0\n\t" "vfmadd231ps %%" reg "12,%%" reg "13,%%" reg "1\n\t" \
    "vfmadd231ps %%" reg "12,%%" reg "13,%%" reg "2\n\t" "vfmadd231ps %%" reg "12,%%" reg "13,%%" reg "3\n\t" \
    "vfmadd231ps %%" reg "12,%%" reg "13,%%" reg "4\n\t" "vfmadd231ps %%" reg "12,%%" reg "13,%%" reg "5\n\t" \
    "vfmadd231ps %%" reg "12,%%" reg "13,%%" reg "6\n\t" "vfmadd231ps %%" reg "12,%%" reg "13,%%" reg "7\n\t" \
    "vfmadd231ps %%" reg "12,%%" reg "13,%%" reg "8\n\t" "vfmadd231ps %%" reg "12,%%" reg "13,%%" reg "9\n\t" \
    "vfmadd231ps %%" reg "12,%%" reg "13,%%" reg "10\n\t" "vfmadd231ps %%" reg "12,%%" reg "13,%%" reg "11\n\t"

__attribute__((target("avx512f"))) static void *chains512(void *unused) {
    for (long i = 0; i < iterations; i++)
        __asm__ volatile(FMA12("zmm") ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
                         "xmm8", "xmm9", "xmm10", "xmm11");
    return unused;
}

__attribute__((target("avx2,fma"))) static void *chains256(void *unused) {
    for (long i = 0; i < iterations; i++)
        __asm__ volatile(FMA12("ymm") ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
                         "xmm8", "xmm9", "xmm10", "xmm11");
    return unused;
}

/* Best of three runs of `threads` threads, in GFLOPS (an FMA counts as two). */
static double measure(void *(*body)(void *), int threads, int lanes) {
    double best = 0;
    for (int run = 0; run < 3; run++) {
        pthread_t ids[256];
        double start = now();
        for (int t = 0; t < threads; t++) pthread_create(&ids[t], NULL, body, NULL);
        for (int t = 0; t < threads; t++) pthread_join(ids[t], NULL);
        double gflops = (double)threads * iterations * 12 * lanes * 2 / (now() - start) / 1e9;
        if (gflops > best) best = gflops;
    }
    return best;
}

int main(void) {
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (cores > 256) cores = 256;
    __builtin_cpu_init();
    int wide = __builtin_cpu_supports("avx512f");
    void *(*body)(void *) = wide ? chains512 : chains256;
    int lanes = wide ? 16 : 8;
    printf("float32 FMA peak (%s): 1 core %.1f GFLOPS, %d cores %.1f GFLOPS\n", wide ? "AVX-512" : "AVX2",
           measure(body, 1, lanes), cores, measure(body, cores, lanes));
    return 0;
}
