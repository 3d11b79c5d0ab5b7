/* libexec/capsa/seccompc NAME: compile the seccomp profile on standard
 * input into a BPF program on standard output.  The starter runs it, as
 * nobody, for the administrator's 'seccomp profile' (it never parses JSON
 * itself, see src/runtime/security.c).  Installed mode 0711: a program its
 * caller cannot read starts not dumpable, so no other process of nobody can
 * trace it and change the filter it writes.  The starter does not say
 * which capabilities the container gets, so every capability condition of
 * the profile is unknown: rules that deny are kept, rules that allow are
 * left out (see src/policy/seccomp_compile.h). */
#include <stdlib.h>
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
    return 0;
}
