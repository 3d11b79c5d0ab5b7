/* A preload library that leaves a mark when loaded: the starter must never
 * load it (LD_PRELOAD is ignored for setuid programs). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

__attribute__ ((constructor)) static void
mark (void)
{
    char buf[128];
    int fd = open ("/tmp/capsa-evil-marker", O_WRONLY | O_CREAT | O_APPEND, 0666);
    if (fd >= 0) {
        int n = snprintf (buf, sizeof (buf), "loaded pid=%d euid=%u\n", getpid (), (unsigned) geteuid ());
        (void) !write (fd, buf, (size_t) n);
        close (fd);
    }
}
