/* The seccomp profile compiler (src/policy/seccomp_compile.c), judged by
 * the kernel: each profile is compiled, loaded into a forked child (with
 * no_new_privs), and the child reports the errno of real system calls.
 * The containers-common default profile (Podman's, Docker format) comes
 * from /usr/share/containers/seccomp.json (scripts/deps.sh installs it). */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/utils.h"
#include "policy/seccomp_compile.h"
#include "tap.h"

#define CAP_BIT(n) (UINT64_C (1) << (n))
#define SYS_ADMIN 21
#define DAC_READ_SEARCH 2

/* Compile TEXT for T; returns a memfd holding the program, or -1 (*msg
 * receives the error). */
static int
compile (const char *text, const struct capsa_seccomp_target *t, char **msg)
{
    capsa_error_t err = NULL;
    int fd = memfd_create ("prog", MFD_CLOEXEC);
    if (capsa_seccomp_compile ("test.json", text, strlen (text), t, fd, &err) < 0) {
        if (msg)
            *msg = xstrdup (err->msg);
        capsa_error_free (&err);
        close (fd);
        return -1;
    }
    return fd;
}

enum probe { P_ARCH_PRCTL, P_SETHOSTNAME, P_UNSHARE_USER, P_NOSUCH, P_AUDIT_SOCKET, P_OPEN_BY_HANDLE, P_GETPID, P_MKDIR };

/* Load the program in FD into a child and return the errno PROBE got
 * there (0: it succeeded, or failed for a reason of the kernel's other
 * than the filter, reported as -1 when it is not an errno we expect). */
static int
run_probe (int fd, enum probe p)
{
    pid_t pid = fork ();
    if (pid == 0) {
        struct stat st;
        fstat (fd, &st);
        void *prog = malloc ((size_t) st.st_size);
        if (pread (fd, prog, (size_t) st.st_size, 0) != st.st_size)
            _exit (200);
        struct sock_fprog f = { .len = (unsigned short) (st.st_size / 8), .filter = prog };
        if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || syscall (SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &f) < 0)
            _exit (201);
        long r = 0;
        errno = 0;
        switch (p) {
        case P_ARCH_PRCTL: {
            unsigned long fs;
            r = syscall (SYS_arch_prctl, 0x1003 /* ARCH_GET_FS */, &fs);
            break;
        }
        case P_SETHOSTNAME:
            r = syscall (SYS_sethostname, "x", 100000); /* EINVAL (too long) when allowed */
            break;
        case P_UNSHARE_USER:
            r = syscall (SYS_unshare, CLONE_NEWUSER);
            break;
        case P_NOSUCH:
            r = syscall (1000); /* no such system call: ENOSYS anyway */
            break;
        case P_AUDIT_SOCKET:
            r = syscall (SYS_socket, AF_NETLINK, SOCK_RAW, 9 /* NETLINK_AUDIT */);
            break;
        case P_OPEN_BY_HANDLE:
            r = syscall (SYS_open_by_handle_at, -1, NULL, 0); /* EBADF/EFAULT/EPERM when allowed */
            break;
        case P_GETPID:
            r = syscall (SYS_getpid);
            break;
        case P_MKDIR:
            r = syscall (SYS_mkdirat, AT_FDCWD, "/proc/capsa-test-x", 0700); /* ENOENT when allowed */
            break;
        }
        /* The raw system call: a sanitizer's _exit would run its own
         * checks under the filter. */
        syscall (SYS_exit_group, r >= 0 ? 0 : errno > 0 && errno < 150 ? errno : 199);
    }
    int status;
    waitpid (pid, &status, 0);
    if (WIFSIGNALED (status))
        return 1000 + WTERMSIG (status);
    return WEXITSTATUS (status);
}

static int
probe (const char *text, const struct capsa_seccomp_target *t, enum probe p)
{
    int fd = compile (text, t, NULL);
    if (fd < 0)
        return -2;
    int r = run_probe (fd, p);
    close (fd);
    return r;
}

static char *
slurp (const char *path)
{
    char *text = NULL;
    capsa_error_t err = NULL;
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read_fd_all (fd, 4 << 20, &text, NULL, &err) < 0) {
        capsa_error_free (&err);
        text = NULL;
    }
    if (fd >= 0)
        close (fd);
    return text;
}

int
main (void)
{
    struct capsa_seccomp_target none = { 0 };
    struct capsa_seccomp_target admin = { .caps_have = CAP_BIT (SYS_ADMIN) | CAP_BIT (DAC_READ_SEARCH) };
    struct capsa_seccomp_target maybe_admin = { .caps_maybe = CAP_BIT (SYS_ADMIN) };
    char *msg = NULL;

    /* ---- containers-common (Podman's default) ---- */
    cleanup_free char *cc = slurp ("/usr/share/containers/seccomp.json");
    CHECK (cc != NULL, "containers-common profile installed (/usr/share/containers/seccomp.json)");
    if (cc != NULL) {
        int fd = compile (cc, &none, &msg);
        CHECK (fd >= 0, "containers-common profile compiles");
        if (fd >= 0)
            close (fd);
        CHECK (probe (cc, &none, P_ARCH_PRCTL) == 0, "containers-common: arch_prctl allowed (includes.arches amd64)");
        CHECK (probe (cc, &none, P_GETPID) == 0, "containers-common: getpid allowed");
        CHECK (probe (cc, &none, P_NOSUCH) == ENOSYS, "containers-common: defaultErrnoRet 38 (ENOSYS)");
        CHECK (probe (cc, &none, P_SETHOSTNAME) == EPERM,
               "containers-common: sethostname denied without CAP_SYS_ADMIN (excludes.caps)");
        CHECK (probe (cc, &admin, P_SETHOSTNAME) == EINVAL,
               "containers-common: sethostname allowed with CAP_SYS_ADMIN (includes.caps)");
        CHECK (probe (cc, &maybe_admin, P_SETHOSTNAME) == EPERM,
               "containers-common: CAP_SYS_ADMIN unknown: the denying rule is kept, the allowing one left out");
        CHECK (probe (cc, &none, P_AUDIT_SOCKET) == EINVAL,
               "containers-common: audit netlink socket gets errnoRet 22 without CAP_AUDIT_WRITE");
        CHECK (probe (cc, &none, P_OPEN_BY_HANDLE) == EPERM,
               "containers-common: open_by_handle_at denied without CAP_DAC_READ_SEARCH");
        int r = probe (cc, &admin, P_OPEN_BY_HANDLE);
        CHECK (r != EPERM && r >= 0 && r < 1000, "containers-common: open_by_handle_at passes the filter with CAP_DAC_READ_SEARCH");
    }

    /* ---- conditions ---- */
    const char *arches = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
                         "{\"names\":[\"getpid\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":5,"
                         "\"includes\":{\"arches\":[\"arm64\",\"s390x\"]}},"
                         "{\"names\":[\"mkdirat\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":6,"
                         "\"includes\":{\"arches\":[\"amd64\"]}},"
                         "{\"names\":[\"unshare\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":7,"
                         "\"excludes\":{\"arches\":[\"amd64\"]}}]}";
    CHECK (probe (arches, &none, P_GETPID) == 0, "includes.arches of other machines: rule left out");
    CHECK (probe (arches, &none, P_MKDIR) == 6, "includes.arches with this machine's: rule applied");
    CHECK (probe (arches, &none, P_UNSHARE_USER) != 7, "excludes.arches with this machine's: rule left out");

    const char *kern_old = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdirat\"],"
                           "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":9,\"includes\":{\"minKernel\":\"3.10\"}}]}";
    const char *kern_new = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdirat\"],"
                           "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":9,\"includes\":{\"minKernel\":\"99.0\"}}]}";
    struct capsa_seccomp_target k510 = { .kernel_major = 5, .kernel_minor = 10 };
    struct capsa_seccomp_target k419 = { .kernel_major = 4, .kernel_minor = 19 };
    const char *kern_510 = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdirat\"],"
                           "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":9,\"includes\":{\"minKernel\":\"5.10\"}}]}";
    CHECK (probe (kern_old, &none, P_MKDIR) == 9, "minKernel 3.10 on this kernel: rule applied");
    CHECK (probe (kern_new, &none, P_MKDIR) == ENOENT, "minKernel 99.0: rule left out");
    CHECK (probe (kern_510, &k510, P_MKDIR) == 9, "minKernel 5.10 on 5.10: applied");
    CHECK (probe (kern_510, &k419, P_MKDIR) == ENOENT, "minKernel 5.10 on 4.19: left out");

    /* Docker's pattern for user namespaces: unshare and clone(CLONE_NEWUSER)
     * only with CAP_SYS_ADMIN; several conditions on one argument are ORed. */
    const char *userns = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
                         "{\"names\":[\"unshare\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":1,"
                         "\"excludes\":{\"caps\":[\"CAP_SYS_ADMIN\"]}}]}";
    CHECK (probe (userns, &none, P_UNSHARE_USER) == EPERM, "excludes.caps CAP_SYS_ADMIN, none: unshare denied");
    CHECK (probe (userns, &maybe_admin, P_UNSHARE_USER) == EPERM, "excludes.caps CAP_SYS_ADMIN, unknown: denied");
    CHECK (probe (userns, &admin, P_UNSHARE_USER) != EPERM, "excludes.caps CAP_SYS_ADMIN, present: allowed");
    const char *allow_admin = "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":13,\"syscalls\":["
                              "{\"names\":[\"exit\",\"exit_group\",\"getpid\"],\"action\":\"SCMP_ACT_ALLOW\"},"
                              "{\"names\":[\"unshare\"],\"action\":\"SCMP_ACT_ALLOW\","
                              "\"includes\":{\"caps\":[\"CAP_SYS_ADMIN\",\"CAP_DAC_READ_SEARCH\"]}}]}";
    int r1 = probe (allow_admin, &admin, P_UNSHARE_USER), r2 = probe (allow_admin, &maybe_admin, P_UNSHARE_USER);
    int r3 = probe (allow_admin, &none, P_UNSHARE_USER), r4 = probe (allow_admin, NULL, P_UNSHARE_USER);
    CHECK (r1 != EACCES, "includes.caps all present: allowed");
    CHECK (r2 == EACCES, "includes.caps one unknown: the ALLOW is left out");
    CHECK (r3 == EACCES, "includes.caps absent: default action (errno 13)");
    CHECK (r4 == EACCES, "no target: every capability unknown");

    const char *ored = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdirat\"],"
                       "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":11,\"args\":["
                       "{\"index\":0,\"value\":1,\"op\":\"SCMP_CMP_EQ\"},"
                       "{\"index\":0,\"value\":" "-100" ",\"op\":\"SCMP_CMP_NE\"}]}]}";
    int fd = compile (ored, &none, &msg);
    CHECK (fd >= 0, "two conditions on one argument compile (runc's OR)");
    if (fd >= 0)
        close (fd);

    const char *archmap = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"archMap\":["
                          "{\"architecture\":\"SCMP_ARCH_AARCH64\",\"subArchitectures\":[\"SCMP_ARCH_ARM\"]},"
                          "{\"architecture\":\"SCMP_ARCH_X86_64\",\"subArchitectures\":[\"SCMP_ARCH_X86\",\"SCMP_ARCH_X32\"]}],"
                          "\"syscalls\":[{\"names\":[\"mkdirat\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":12}]}";
    CHECK (probe (archmap, &none, P_MKDIR) == 12, "archMap: compiles and filters");

    /* ---- refused ---- */
    free (msg);
    msg = NULL;
    const char *both = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_X86_64\"],"
                       "\"archMap\":[{\"architecture\":\"SCMP_ARCH_X86_64\",\"subArchitectures\":[]}]}";
    CHECK (compile (both, &none, &msg) < 0 && strstr (msg, "not both") != NULL, "architectures and archMap: refused");
    free (msg);
    msg = NULL;
    const char *badcond = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getpid\"],"
                          "\"action\":\"SCMP_ACT_ERRNO\",\"includes\":{\"kernelish\":\"x\"}}]}";
    CHECK (compile (badcond, &none, &msg) < 0 && strstr (msg, "unknown condition \"kernelish\"") != NULL,
           "an unknown condition is refused, never ignored");
    free (msg);
    msg = NULL;
    const char *badkern = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getpid\"],"
                          "\"action\":\"SCMP_ACT_ERRNO\",\"includes\":{\"minKernel\":\"five\"}}]}";
    CHECK (compile (badkern, &none, &msg) < 0 && strstr (msg, "MAJOR.MINOR") != NULL, "minKernel that is no version: refused");
    free (msg);
    msg = NULL;
    const char *notify = "{\"defaultAction\":\"SCMP_ACT_NOTIFY\"}";
    CHECK (compile (notify, &none, &msg) < 0 && strstr (msg, "listener") != NULL, "SCMP_ACT_NOTIFY: refused");
    free (msg);
    return tap_done ();
}
