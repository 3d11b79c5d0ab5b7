/* libexec/capsa/seccompc NAME: compile the seccomp profile on standard
 * input into a BPF program on standard output.  The starter runs it, as
 * nobody, for the administrator's 'seccomp profile' (it never parses JSON
 * itself, see src/runtime/security.c).  Installed mode 0711: a program its
 * caller cannot read starts not dumpable, so no other process of nobody can
 * trace it and change the filter it writes.  The starter does not say
 * which capabilities the container gets, so every capability condition of
 * the profile is unknown: rules that deny are kept, rules that allow are
 * left out (see src/policy/seccomp_compile.h). */
#include <linux/filter.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/utils.h"
#include "policy/seccomp_compile.h"

int
main (int argc, char **argv)
{
    capsa_error_t err = NULL;
    cleanup_free char *text = NULL;
    size_t len = 0;

    prctl (PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (argc != 2)
        capsa_die ("usage: seccompc NAME < PROFILE > PROGRAM");
    if (read_fd_all (STDIN_FILENO, 4 << 20, &text, &len, &err) < 0
        || capsa_seccomp_compile (argv[1], text, len, NULL, STDOUT_FILENO, &err) < 0)
        capsa_error_fatal (&err);
    /* The whole program, or nothing: it is made of 8-byte instructions and
     * ends with a return (a write cut short would leave a prefix). */
    struct stat st;
    struct sock_filter last;
    if (fstat (STDOUT_FILENO, &st) < 0 || st.st_size <= 0 || st.st_size % (off_t) sizeof (last) != 0
        || pread (STDOUT_FILENO, &last, sizeof (last), st.st_size - (off_t) sizeof (last)) != (ssize_t) sizeof (last)
        || BPF_CLASS (last.code) != BPF_RET)
        capsa_die ("%s: the compiled program was not written whole", argv[1]);
    return 0;
}
