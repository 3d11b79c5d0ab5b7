/* Prints the real and effective ids; installed setuid-root inside test
 * images to show that a setuid binary in an image gives nothing. */
#include <stdio.h>
#include <unistd.h>

int
main (void)
{
    printf ("uid=%u euid=%u\n", (unsigned) getuid (), (unsigned) geteuid ());
    return 0;
}
