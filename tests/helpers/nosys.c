/* nosys COMMAND [ARG...]: runs COMMAND under a seccomp filter that makes
 * openat2, close_range and mount_setattr fail with ENOSYS, as on a kernel
 * without them (crun's tests/no_openat2.c does the same for openat2).
 * tests/run.sh runs some end-to-end tests a second time under it, so that
 * capsa's fallbacks (or its clear refusals) are exercised.
 *
 * Must run as root: with CAP_SYS_ADMIN the filter needs no no_new_privs,
 * so setuid programs below it (runuser, capsa's setuid starter) still gain
 * their privileges, and the filter is inherited by all of them, across
 * fork and execve, and by the container's command. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "nosys: add this architecture's AUDIT_ARCH_ value"
#endif

#ifndef __NR_openat2
#define __NR_openat2 437
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif

#define NR(n) offsetof (struct seccomp_data, n)

int
main (int argc, char **argv)
{
    struct sock_filter filter[] = {
        /* Another ABI (i386, x32 on x86_64): left alone. */
        BPF_STMT (BPF_LD | BPF_W | BPF_ABS, NR (arch)),
        BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
        BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT (BPF_LD | BPF_W | BPF_ABS, NR (nr)),
        BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, __NR_openat2, 3, 0),
        BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, __NR_close_range, 2, 0),
        BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, __NR_mount_setattr, 1, 0),
        BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
    };
    struct sock_fprog prog = { .len = sizeof (filter) / sizeof (filter[0]), .filter = filter };

    if (argc < 2) {
        fprintf (stderr, "usage: nosys COMMAND [ARG...]\n");
        return 2;
    }
    if (geteuid () != 0) {
        fprintf (stderr, "nosys: must run as root (the filter is installed without no_new_privs)\n");
        return 2;
    }
    if (syscall (SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) {
        fprintf (stderr, "nosys: seccomp: %s\n", strerror (errno));
        return 2;
    }
    execvp (argv[1], argv + 1);
    fprintf (stderr, "nosys: %s: %s\n", argv[1], strerror (errno));
    return 127;
}
