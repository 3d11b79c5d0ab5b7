/* fusermount-shim.so: preloaded (LD_PRELOAD) into fuse2fs only, by the
 * FUSE broker (src/runtime/fusebroker.c), never into anything privileged.
 *
 * Debian's fuse2fs is built on libfuse 2, which cannot serve a FUSE
 * connection somebody else mounted (libfuse 3 takes "/dev/fd/N" as the
 * mount point for that).  When its own mount(2) is refused (fuse2fs runs
 * as the user, in the host's mount namespace), libfuse 2 asks the
 * fusermount helper for the connection: it forks, sets _FUSE_COMMFD to one
 * end of a socket pair and executes /bin/fusermount, which mounts and
 * sends the /dev/fuse descriptor back over the socket.  This library
 * answers that exec in the forked child instead: it sends the descriptor
 * CAPSA_FUSE_FD (the connection the container's child mounted) and exits;
 * the unmount call ("fusermount -u") is answered with success, as the
 * mount belongs to the container's namespace and goes away with it.
 * Every other exec is passed on unchanged. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int
is_fusermount (const char *path)
{
    const char *base = strrchr (path, '/');
    base = base ? base + 1 : path;
    return strcmp (base, "fusermount") == 0 || strcmp (base, "fusermount3") == 0;
}

static int
number (const char *s)
{
    char *end;
    long v;
    if (s == NULL || *s == '\0')
        return -1;
    v = strtol (s, &end, 10);
    return *end == '\0' && v >= 0 && v < 1 << 20 ? (int) v : -1;
}

static void
answer (char *const argv[])
{
    for (int i = 0; argv && argv[i]; i++)
        if (strcmp (argv[i], "-u") == 0)
            _exit (0);
    int sock = number (getenv ("_FUSE_COMMFD")), fd = number (getenv ("CAPSA_FUSE_FD"));
    if (sock < 0 || fd < 0)
        _exit (1);
    char byte = 0;
    struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
    union {
        char buf[CMSG_SPACE (sizeof (int))];
        struct cmsghdr align;
    } u;
    memset (&u, 0, sizeof (u));
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof (u.buf) };
    struct cmsghdr *cm = CMSG_FIRSTHDR (&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN (sizeof (int));
    memcpy (CMSG_DATA (cm), &fd, sizeof (int));
    _exit (sendmsg (sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : 1);
}

int
execv (const char *path, char *const argv[])
{
    if (is_fusermount (path))
        answer (argv);
    int (*next) (const char *, char *const[]) = (int (*) (const char *, char *const[])) dlsym (RTLD_NEXT, "execv");
    return next ? next (path, argv) : -1;
}

int
execvp (const char *file, char *const argv[])
{
    if (is_fusermount (file))
        answer (argv);
    int (*next) (const char *, char *const[]) = (int (*) (const char *, char *const[])) dlsym (RTLD_NEXT, "execvp");
    return next ? next (file, argv) : -1;
}
