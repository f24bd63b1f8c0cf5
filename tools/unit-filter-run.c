/*
 * Runs a command under the system-call restrictions that systemd puts on demucsd.service, so
 * that the daemon and its ffmpeg child can be checked against them on a machine where systemd
 * is not PID 1 (containers, CI):
 *
 *   SystemCallFilter=  every call not named in ALLOWED (one name per line, as
 *                      `systemd-analyze syscall-filter` expands the unit's sets) fails with
 *                      EPERM (SystemCallErrorNumber=EPERM);
 *   MemoryDenyWriteExecute=yes
 *                      mmap / mprotect / pkey_mprotect asking for a writable and executable
 *                      mapping, and shmat with SHM_EXEC, fail with EPERM, as systemd's filter
 *                      does it;
 *   NoNewPrivileges=yes (needed to install a filter without privileges).
 *
 * The filter is inherited across fork and exec, as under systemd.
 *
 *   cc -O2 -o unit-filter-run tools/unit-filter-run.c -lseccomp
 *   unit-filter-run ALLOWED COMMAND [ARG...]
 *
 * Exit status 111 when the filter cannot be set up; otherwise the command's (exec replaces us).
 */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <unistd.h>

static int fail(const char *what, int code) {
    fprintf(stderr, "unit-filter-run: %s: %s\n", what, strerror(code < 0 ? -code : code));
    return 111;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: unit-filter-run ALLOWED COMMAND [ARG...]\n");
        return 64;
    }
    FILE *list = fopen(argv[1], "r");
    if (!list) return fail(argv[1], errno);
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!ctx) return fail("seccomp_init", ENOMEM);
    char name[128];
    int allowed = 0;
    while (fscanf(list, "%127s", name) == 1) {
        int nr = seccomp_syscall_resolve_name(name);
        if (nr == __NR_SCMP_ERROR) continue; /* not a call of this architecture */
        if (strcmp(name, "mmap") == 0 || strcmp(name, "mprotect") == 0 || strcmp(name, "pkey_mprotect") == 0
            || strcmp(name, "shmat") == 0)
            continue; /* allowed below, with MemoryDenyWriteExecute's conditions */
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        if (rc < 0) return fail(name, rc);
        allowed++;
    }
    fclose(list);
    if (allowed == 0) return fail("no system call is allowed", EINVAL);
    const scmp_datum_t wx = PROT_WRITE | PROT_EXEC;
    const char *prot_calls[] = {"mmap", "mprotect", "pkey_mprotect"};
    for (int i = 0; i < 3; i++) {
        int nr = seccomp_syscall_resolve_name(prot_calls[i]);
        if (nr == __NR_SCMP_ERROR) continue;
        /* Allowed unless both PROT_WRITE and PROT_EXEC are asked for. */
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, wx, 0));
        if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, wx, PROT_WRITE));
        if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, wx, PROT_EXEC));
        if (rc < 0) return fail(prot_calls[i], rc);
    }
    int shmat_nr = seccomp_syscall_resolve_name("shmat");
    if (shmat_nr != __NR_SCMP_ERROR) {
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, shmat_nr, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, SHM_EXEC, 0));
        if (rc < 0) return fail("shmat", rc);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail("PR_SET_NO_NEW_PRIVS", errno);
    int rc = seccomp_load(ctx);
    if (rc < 0) return fail("seccomp_load", rc);
    seccomp_release(ctx);
    execvp(argv[2], argv + 2);
    return fail(argv[2], errno);
}
