/* Loading compiled seccomp programs: the only seccomp code the starter
 * has.  Profiles are compiled elsewhere (src/policy/seccomp_compile.c). */
#include "runtime/seccomp.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/utils.h"

#define BPF_MAX_INSNS 4096

int
capsa_seccomp_read (int fd, void **prog, size_t *len, capsa_error_t *err)
{
    struct stat st;
    if (fstat (fd, &st) < 0)
        return capsa_error_make (err, errno, "seccomp program");
    if (!S_ISREG (st.st_mode) || st.st_size <= 0 || st.st_size % (off_t) sizeof (struct sock_filter) != 0
        || st.st_size > (off_t) (BPF_MAX_INSNS * sizeof (struct sock_filter)))
        return capsa_error_make (err, 0, "seccomp program: not a compiled filter (%lld bytes)", (long long) st.st_size);
    *len = (size_t) st.st_size;
    *prog = xmalloc (*len);
    if (pread_all (fd, *prog, *len, 0) < 0) {
        free (*prog);
        *prog = NULL;
        return capsa_error_make (err, errno, "seccomp program");
    }
    return 0;
}

int
capsa_seccomp_load (const void *prog, size_t len, capsa_error_t *err)
{
    struct sock_fprog fprog = {
        .len = (unsigned short) (len / sizeof (struct sock_filter)),
        .filter = (struct sock_filter *) prog,
    };
    if (syscall (SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0)
        return capsa_error_make (err, errno, "cannot load the seccomp filter");
    return 0;
}
