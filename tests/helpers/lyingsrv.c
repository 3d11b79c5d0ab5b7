/* A user's image server that lies, for tests/e2e/test_imageserver_attack.sh.
 *
 *   lyingsrv SOCKET ROOT TARGET MODE LOG
 *
 * Listens on SOCKET (SOCK_SEQPACKET, bound under a temporary name and
 * renamed, so that it never exists without a listener), takes one request
 * as capsa's image server protocol describes it (src/runtime/imageserver.h:
 * "CAPSAIMG", version, op, flags, reserved, offset, size; the container's
 * /dev/fuse descriptor first), answers 'R' and serves that FUSE connection
 * itself, read-only, from the directory ROOT, until the connection ends.
 *
 * The lie: the lookup of the entry "a" of the root is answered with a
 * symlink to TARGET (another node id) instead of ROOT/a, a directory,
 *   MODE "root":    when the request comes from uid 0,
 *   MODE "after:N": for every lookup after the N-th (0: always).
 * Every lookup of "a" appends "lookup a uid=U dir|symlink" to LOG.
 *
 * Nothing is cached by the kernel (entry and attribute timeouts 0): each
 * path walk through "a" asks again, as a server that wants to answer one
 * walk differently from the next would ask for. */
#define FUSE_USE_VERSION 35
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define ROOT_ID 1
#define LIE_ID 2

static int rootfd;
static const char *target;
static int lie_to_root;
static long lie_after;
static long lookups;
static FILE *logf;

/* Node ids: index + 1 into paths (relative to ROOT; "." is the root).
 * paths[1] is the lie, which is no path. */
static char **paths;
static size_t npaths, cap;

static fuse_ino_t
node_of (const char *path)
{
    for (size_t i = 0; i < npaths; i++)
        if (paths[i] && strcmp (paths[i], path) == 0)
            return i + 1;
    if (npaths == cap) {
        cap = cap ? 2 * cap : 64;
        paths = realloc (paths, cap * sizeof (*paths));
        if (paths == NULL)
            abort ();
    }
    paths[npaths] = strdup (path);
    if (paths[npaths] == NULL)
        abort ();
    return ++npaths;
}

static const char *
path_of (fuse_ino_t ino)
{
    return ino >= 1 && ino <= npaths ? paths[ino - 1] : NULL;
}

static void
lie_attr (struct stat *st)
{
    memset (st, 0, sizeof (*st));
    st->st_ino = LIE_ID;
    st->st_mode = S_IFLNK | 0777;
    st->st_nlink = 1;
    st->st_uid = getuid ();
    st->st_gid = getgid ();
    st->st_size = (off_t) strlen (target);
}

static int
attr_of (fuse_ino_t ino, struct stat *st)
{
    if (ino == LIE_ID) {
        lie_attr (st);
        return 0;
    }
    const char *p = path_of (ino);
    if (p == NULL)
        return ESTALE;
    if (fstatat (rootfd, p, st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno;
    st->st_ino = ino;
    return 0;
}

static void
op_lookup (fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fuse_entry_param e;
    const char *pp = path_of (parent);
    char path[PATH_MAX];

    memset (&e, 0, sizeof (e));
    if (pp == NULL || parent == LIE_ID) {
        fuse_reply_err (req, ENOENT);
        return;
    }
    if (parent == ROOT_ID && strcmp (name, "a") == 0) {
        lookups++;
        int lie = lie_to_root ? fuse_req_ctx (req)->uid == 0 : lookups > lie_after;
        fprintf (logf, "lookup a uid=%u %s\n", (unsigned) fuse_req_ctx (req)->uid, lie ? "symlink" : "dir");
        fflush (logf);
        if (lie) {
            e.ino = LIE_ID;
            lie_attr (&e.attr);
            fuse_reply_entry (req, &e);
            return;
        }
    }
    snprintf (path, sizeof (path), "%s/%s", pp, name);
    struct stat st;
    if (fstatat (rootfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        fuse_reply_err (req, errno);
        return;
    }
    e.ino = node_of (path);
    e.attr = st;
    e.attr.st_ino = e.ino;
    fuse_reply_entry (req, &e);
}

static void
op_getattr (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void) fi;
    struct stat st;
    int r = attr_of (ino, &st);
    if (r)
        fuse_reply_err (req, r);
    else
        fuse_reply_attr (req, &st, 0);
}

static void
op_readlink (fuse_req_t req, fuse_ino_t ino)
{
    char buf[PATH_MAX];
    if (ino == LIE_ID) {
        fuse_reply_readlink (req, target);
        return;
    }
    const char *p = path_of (ino);
    ssize_t n = p ? readlinkat (rootfd, p, buf, sizeof (buf) - 1) : -1;
    if (n < 0) {
        fuse_reply_err (req, p ? errno : ESTALE);
        return;
    }
    buf[n] = '\0';
    fuse_reply_readlink (req, buf);
}

static void
op_open (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    const char *p = path_of (ino);
    if ((fi->flags & O_ACCMODE) != O_RDONLY) {
        fuse_reply_err (req, EROFS);
        return;
    }
    int fd = p && ino != LIE_ID ? openat (rootfd, p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
    if (fd < 0) {
        fuse_reply_err (req, p ? errno : ESTALE);
        return;
    }
    fi->fh = (uint64_t) fd;
    fuse_reply_open (req, fi);
}

static void
op_read (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void) ino;
    char *buf = malloc (size ? size : 1);
    ssize_t n = buf ? pread ((int) fi->fh, buf, size, off) : -1;
    if (n < 0)
        fuse_reply_err (req, buf ? errno : ENOMEM);
    else
        fuse_reply_buf (req, buf, (size_t) n);
    free (buf);
}

static void
op_release (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void) ino;
    close ((int) fi->fh);
    fuse_reply_err (req, 0);
}

static void
op_opendir (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    const char *p = path_of (ino);
    int fd = p && ino != LIE_ID ? openat (rootfd, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    DIR *d = fd >= 0 ? fdopendir (fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close (fd);
        fuse_reply_err (req, p ? errno : ESTALE);
        return;
    }
    fi->fh = (uint64_t) (uintptr_t) d;
    fuse_reply_open (req, fi);
}

/* Entries from the OFF-th on (offsets are indexes: small directories). */
static void
op_readdir (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void) ino;
    DIR *d = (DIR *) (uintptr_t) fi->fh;
    char *buf = calloc (1, size ? size : 1);
    size_t used = 0;
    off_t i = 0;
    if (buf == NULL) {
        fuse_reply_err (req, ENOMEM);
        return;
    }
    rewinddir (d);
    for (struct dirent *de = readdir (d); de; de = readdir (d), i++) {
        if (i < off)
            continue;
        struct stat st = { .st_ino = de->d_ino, .st_mode = DTTOIF (de->d_type) };
        size_t n = fuse_add_direntry (req, buf + used, size - used, de->d_name, &st, i + 1);
        if (n > size - used)
            break;
        used += n;
    }
    fuse_reply_buf (req, buf, used);
    free (buf);
}

static void
op_releasedir (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void) ino;
    closedir ((DIR *) (uintptr_t) fi->fh);
    fuse_reply_err (req, 0);
}

static const struct fuse_lowlevel_ops ops = {
    .lookup = op_lookup,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .open = op_open,
    .read = op_read,
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
};

/* One request on the socket SOCKPATH: the /dev/fuse descriptor, or -1. */
static int
take_request (const char *sockpath)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    char tmp[sizeof (addr.sun_path)];
    int l = snprintf (tmp, sizeof (tmp), "%s.tmp", sockpath);
    if (l < 0 || (size_t) l >= sizeof (tmp))
        return -1;
    memcpy (addr.sun_path, tmp, (size_t) l + 1);
    int s = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    unlink (tmp);
    if (s < 0 || bind (s, (struct sockaddr *) &addr, sizeof (addr)) < 0 || listen (s, 4) < 0
        || rename (tmp, sockpath) < 0) {
        perror ("lyingsrv: socket");
        return -1;
    }
    int c = accept4 (s, NULL, NULL, SOCK_CLOEXEC);
    unlink (sockpath);
    close (s);
    if (c < 0)
        return -1;
    char req[40];
    union {
        char buf[CMSG_SPACE (3 * sizeof (int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = { .iov_base = req, .iov_len = sizeof (req) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof (u.buf) };
    ssize_t n = recvmsg (c, &msg, MSG_CMSG_CLOEXEC);
    struct cmsghdr *cm = CMSG_FIRSTHDR (&msg);
    int fds[3] = { -1, -1, -1 };
    size_t nfds = 0;
    if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
        nfds = (cm->cmsg_len - CMSG_LEN (0)) / sizeof (int);
        memcpy (fds, CMSG_DATA (cm), (nfds > 3 ? 3 : nfds) * sizeof (int));
    }
    uint32_t op;
    memcpy (&op, req + 12, sizeof (op));
    if (n != (ssize_t) sizeof (req) || memcmp (req, "CAPSAIMG", 8) != 0 || op != 1 || nfds < 2) {
        fprintf (stderr, "lyingsrv: not a serve request\n");
        return -1;
    }
    for (size_t i = 1; i < nfds && i < 3; i++)
        close (fds[i]);
    if (send (c, "R", 1, MSG_NOSIGNAL) != 1)
        return -1;
    close (c);
    return fds[0];
}

int
main (int argc, char **argv)
{
    if (argc != 6) {
        fprintf (stderr, "usage: lyingsrv SOCKET ROOT TARGET root|after:N LOG\n");
        return 2;
    }
    target = argv[3];
    if (strcmp (argv[4], "root") == 0)
        lie_to_root = 1;
    else if (strncmp (argv[4], "after:", 6) == 0)
        lie_after = strtol (argv[4] + 6, NULL, 10);
    else
        return 2;
    rootfd = open (argv[2], O_PATH | O_DIRECTORY | O_CLOEXEC);
    logf = fopen (argv[5], "a");
    if (rootfd < 0 || logf == NULL) {
        perror ("lyingsrv");
        return 1;
    }
    node_of ("."); /* ROOT_ID */
    node_of ("");  /* LIE_ID: never a path looked up */
    free (paths[1]);
    paths[1] = NULL;
    alarm (60); /* never left behind by a test that went wrong */

    int fuse = take_request (argv[1]);
    if (fuse < 0)
        return 1;
    char *fargv[] = { (char *) "lyingsrv", NULL }, mnt[32];
    struct fuse_args args = FUSE_ARGS_INIT (1, fargv);
    struct fuse_session *se = fuse_session_new (&args, &ops, sizeof (ops), NULL);
    snprintf (mnt, sizeof (mnt), "/dev/fd/%d", fuse);
    if (se == NULL || fuse_session_mount (se, mnt) != 0) {
        fprintf (stderr, "lyingsrv: cannot serve the connection\n");
        return 1;
    }
    fuse_session_loop (se);
    fuse_session_destroy (se);
    return 0;
}
