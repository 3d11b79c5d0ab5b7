/* swap A B: exchanges the directory entries A and B atomically
 * (renameat2 RENAME_EXCHANGE), over and over until killed.  The race of
 * tests/e2e/test_attacks.sh: a directory that is a real directory when
 * capsa checks it and a symlink when capsa uses it. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

int
main (int argc, char **argv)
{
    if (argc != 3) {
        fprintf (stderr, "usage: swap A B\n");
        return 2;
    }
    for (;;)
        if (renameat2 (AT_FDCWD, argv[1], AT_FDCWD, argv[2], RENAME_EXCHANGE) < 0) {
            perror ("swap: renameat2");
            return 1;
        }
}
