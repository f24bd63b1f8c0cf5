#define _GNU_SOURCE
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/vfs.h>
#include "system_shims.h"

int demucsd_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
}

int demucsd_filesystem_magic(const char *path, long *magic) {
    struct statfs info;
    if (statfs(path, &info) != 0) return -1;
    *magic = (long)info.f_type;
    return 0;
}

int demucsd_sanitizer_reserves_address_space(void) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return 1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    return 1;
#else
    return 0;
#endif
#else
    return 0;
#endif
}
