/* Prints the calling process's securebits ("securebits=0xNN"), and
 * whether PR_CAP_AMBIENT_RAISE and PR_SET_KEEPCAPS are refused.  Static,
 * so that it runs inside the test images. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

int
main (void)
{
    int bits = prctl (PR_GET_SECUREBITS, 0, 0, 0, 0);
    printf ("securebits=0x%x\n", bits);
    return bits < 0;
}
