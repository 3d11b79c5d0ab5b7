/* memfd [-s] FD FILE COMMAND [ARG...]: copies FILE into a new memfd, puts it
 * on descriptor FD, seals it (-s: against writes, growing, shrinking and
 * further seals, as capsa's front end seals a compiled seccomp program)
 * and runs COMMAND.  Lets the tests hand the starter a --seccomp-fd of the
 * right kind (a sealed memfd) and of a wrong one (an unsealed memfd). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int
main (int argc, char **argv)
{
    int seal = argc > 1 && strcmp (argv[1], "-s") == 0;
    char buf[65536];
    ssize_t n;

    if (argc < 4 + seal) {
        fprintf (stderr, "usage: memfd [-s] FD FILE COMMAND [ARG...]\n");
        return 2;
    }
    int target = atoi (argv[1 + seal]);
    int in = open (argv[2 + seal], O_RDONLY | O_CLOEXEC);
    int mfd = memfd_create ("capsa-test", MFD_ALLOW_SEALING);
    if (in < 0 || mfd < 0) {
        perror ("memfd");
        return 2;
    }
    while ((n = read (in, buf, sizeof (buf))) > 0)
        if (write (mfd, buf, (size_t) n) != n) {
            perror ("memfd: write");
            return 2;
        }
    if (n < 0 || (seal && fcntl (mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)) {
        perror ("memfd");
        return 2;
    }
    if (mfd != target && (dup2 (mfd, target) < 0 || close (mfd) < 0)) {
        perror ("memfd: dup2");
        return 2;
    }
    execvp (argv[3 + seal], argv + 3 + seal);
    fprintf (stderr, "memfd: %s: %s\n", argv[3 + seal], strerror (errno));
    return 127;
}
