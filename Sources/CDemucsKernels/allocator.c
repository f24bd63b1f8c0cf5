/* glibc's malloc knobs, which Swift's Glibc module does not export (malloc.h). */
#include "demucs_kernels.h"
#include <stdlib.h> /* defines __GLIBC__ on glibc */

#if defined(__GLIBC__)
#include <malloc.h>
#include <limits.h>

void demucs_retain_freed_blocks(void) {
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
}

void demucs_release_retained_blocks(void) {
    malloc_trim(0);
}
#else
void demucs_retain_freed_blocks(void) {}
void demucs_release_retained_blocks(void) {}
#endif
