#ifndef DEMUCSD_SYSTEM_SHIMS_H
#define DEMUCSD_SYSTEM_SHIMS_H

/// renameat2(2) flags, as in <linux/fs.h>.
#define DEMUCSD_RENAME_NOREPLACE 1u
#define DEMUCSD_RENAME_EXCHANGE 2u

/// renameat2(2) through syscall(2): glibc declares it only under _GNU_SOURCE, which Swift's
/// Glibc module does not see, and syscall(2) is variadic. Returns 0, or -1 with errno set
/// (EINVAL or ENOSYS where the filesystem or kernel lacks the flag).
int demucsd_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);

/// The filesystem magic number (`f_type` of statfs(2), <sys/vfs.h>, which Swift's Glibc module
/// does not include) of the filesystem holding `path`. Returns 0 and sets *magic, or -1 with
/// errno set.
int demucsd_filesystem_magic(const char *path, long *magic);

/// 1 when this code was compiled with AddressSanitizer or ThreadSanitizer (tools/sanitize.sh),
/// else 0. Their shadow memory is terabytes of reserved address space, so such a build cannot
/// run under an RLIMIT_AS.
int demucsd_sanitizer_reserves_address_space(void);

#endif
