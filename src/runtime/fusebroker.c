/* FUSE mounts served by the user's own servers: see fusebroker.h. */
#include "runtime/fusebroker.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "lib/log.h"
#include "runtime/imageserver.h"
#include "runtime/mount.h"
#include "runtime/privs.h"

#ifndef CAPSA_SQUASHFUSE
#define CAPSA_SQUASHFUSE "/usr/bin/squashfuse_ll"
#endif
#define CAPSA_CRYPTFUSE CAPSA_LIBEXECDIR "/cryptfuse"
#ifndef CAPSA_FUSE2FS
#define CAPSA_FUSE2FS "/usr/bin/fuse2fs"
#endif
#ifndef CAPSA_FUSE_OVERLAYFS
#define CAPSA_FUSE_OVERLAYFS "/usr/bin/fuse-overlayfs"
#endif
/* Makes libfuse2's fusermount step hand fuse2fs the connection the
 * container's child already mounted (src/fuseshim/shim.c). */
#define CAPSA_FUSERMOUNT_SHIM CAPSA_LIBEXECDIR "/fusermount-shim.so"

static int
send_request (int sock, const struct capsa_fuse_request *req, int fds[2], const char *data)
{
    struct iovec iov[2] = { { .iov_base = (void *) req, .iov_len = sizeof (*req) },
                            { .iov_base = (void *) data, .iov_len = req->datalen } };
    union {
        char buf[CMSG_SPACE (2 * sizeof (int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = req->datalen ? 2 : 1, .msg_control = u.buf,
                          .msg_controllen = sizeof (u.buf) };
    struct cmsghdr *cm = CMSG_FIRSTHDR (&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN (2 * sizeof (int));
    memcpy (CMSG_DATA (cm), fds, 2 * sizeof (int));
    return sendmsg (sock, &msg, MSG_NOSIGNAL) == (ssize_t) (sizeof (*req) + req->datalen) ? 0 : -1;
}

/* Returns 1 with the request and fds, 0 at end of stream, -1 on error. */
int
capsa_fuse_recv_request (int sock, struct capsa_fuse_request *req, int fds[2], char **data)
{
    struct iovec iov = { .iov_base = req, .iov_len = sizeof (*req) };
    union {
        char buf[CMSG_SPACE (2 * sizeof (int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof (u.buf) };
    ssize_t r;
    do
        r = recvmsg (sock, &msg, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r <= 0)
        return (int) r;
    struct cmsghdr *cm = CMSG_FIRSTHDR (&msg);
    if (r != (ssize_t) sizeof (*req) || cm == NULL || cm->cmsg_type != SCM_RIGHTS
        || cm->cmsg_len != CMSG_LEN (2 * sizeof (int)))
        return -1;
    memcpy (fds, CMSG_DATA (cm), 2 * sizeof (int));
    *data = NULL;
    if (req->datalen > 0) {
        if (req->datalen > CAPSA_FUSE_DATA_MAX)
            return -1;
        char *buf = xmalloc (req->datalen + 1);
        if (read_all (sock, buf, req->datalen) != (ssize_t) req->datalen || memchr (buf, '\0', req->datalen)) {
            free (buf);
            return -1;
        }
        buf[req->datalen] = '\0';
        *data = buf;
    }
    return 1;
}

/* Mount /dev/fuse on TARGET (FLAGS: read-only, nosuid, nodev...) and ask
 * the monitor to serve it as REQ says, from FILEFD; wait for its answer
 * ('R': served). */
static int
mount_served (struct capsa_container *c, int sock, int target, const char *fstype, struct capsa_fuse_request *req,
              int filefd, const char *data, unsigned long flags, capsa_error_t *err)
{
    /* The device is opened here, in the container's user namespace, which
     * must own the connection; it is a fixed path of the host (no user
     * choice), opened with the privilege of the mount it is for. */
    capsa_privs_mount_begin ();
    int fusefd_ = open ("/dev/fuse", O_RDWR | O_CLOEXEC);
    int e = errno;
    capsa_privs_mount_end ();
    cleanup_close int fusefd = fusefd_;
    if (fusefd < 0)
        return capsa_error_make (err, e, "cannot open /dev/fuse");
    cleanup_free char *opts = xasprintf ("fd=%d,rootmode=40000,user_id=%u,group_id=%u,allow_other,default_permissions",
                                         fusefd, c->user.uid, c->user.gid);
    if (capsa_mount_fd (fstype, target, fstype, flags, opts, "the image with FUSE", err) < 0)
        return -1;
    int fds[2] = { fusefd, filefd };
    char answer = 0;
    req->datalen = data ? (uint32_t) strlen (data) : 0;
    if (req->datalen > CAPSA_FUSE_DATA_MAX)
        return capsa_error_make (err, 0, "too many overlay layers");
    if (send_request (sock, req, fds, data) < 0)
        return capsa_error_make (err, errno, "cannot pass the FUSE descriptor to the monitor");
    if (read (sock, &answer, 1) != 1 || answer != 'R')
        return capsa_error_make (err, 0, "the image could not be served");
    return 0;
}

int
capsa_fuse_mount_served (struct capsa_container *c, int sock, int target, const char *fstype, enum capsa_fuse_server server,
                   int filefd, uint64_t offset, uint64_t size, unsigned long flags, capsa_error_t *err)
{
    struct capsa_fuse_request req = { .server = server, .offset = offset, .size = size,
                                      .flags = ((flags & MS_RDONLY) ? FUSE_REQ_RO : 0)
                                               | (server == SERVER_IMAGE && c->image.encrypted ? FUSE_REQ_ENCRYPTED : 0) };
    return mount_served (c, sock, target, fstype, &req, filefd, NULL, flags, err);
}

int
capsa_fuse_request_etc (int sock, int rootfd, int filesfd, const char *home, capsa_error_t *err)
{
    /* The home directory in the container is the child's to decide (it
     * is the user's entry's sixth field): it travels as the data. */
    struct capsa_fuse_request req = { .server = SERVER_ETC, .datalen = (uint32_t) strlen (home) };
    int fds[2] = { rootfd, filesfd };
    if (req.datalen > CAPSA_FUSE_DATA_MAX)
        return capsa_error_make (err, 0, "home directory too long");
    if (send_request (sock, &req, fds, home) < 0)
        return capsa_error_make (err, errno, "cannot pass the image's root to the monitor");
    return 0;
}

int
capsa_fuse_request_etc_done (int sock, capsa_error_t *err)
{
    char answer = 0;
    if (read (sock, &answer, 1) != 1 || answer != 'R')
        return capsa_error_make (err, 0, "the monitor could not write them");
    return 0;
}

int
capsa_fuse_mount_overlayfs (struct capsa_container *c, int sock, int target, const char *layers, unsigned long flags,
                            capsa_error_t *err)
{
    struct capsa_fuse_request req = { .server = SERVER_OVERLAYFS };
    /* (No file to serve: the target itself travels as the second
     * descriptor, to keep one message format.) */
    return mount_served (c, sock, target, "fuse.fuse-overlayfs", &req, target, layers, flags, err);
}

/* capsa's image server, shared or of its own; squashfuse_ll for a clear
 * image it cannot serve. */
static pid_t
serve_image (struct capsa_container *c, pid_t container, const struct capsa_fuse_request *req, int fusefd, int filefd,
             capsa_error_t *err)
{
    static const char *const how_name[] = {
        [IMGSRV_HOW_JOINED] = "joined the running server",
        [IMGSRV_HOW_STARTED] = "started a shared server",
        [IMGSRV_HOW_PRIVATE] = "started a server of its own",
    };
    const bool encrypted = (req->flags & FUSE_REQ_ENCRYPTED) != 0;
    enum capsa_imgsrv_how how;
    pid_t pid;

    if (capsa_imgsrv_serve (c, fusefd, filefd, req->offset, req->size, encrypted, &pid, &how, err) == 0) {
        verbosef ("image server: %s of %s", how_name[how], c->opts->image);
        return pid > 0 ? pid : 0;
    }
    if (encrypted)
        return -1;
    verbosef ("image server: %s: squashfuse_ll serves %s", *err ? (*err)->msg : "failed", c->opts->image);
    capsa_error_free (err);
    struct capsa_fuse_request sq = *req;
    sq.server = SERVER_SQUASHFS;
    sq.flags = req->flags & FUSE_REQ_RO;
    return capsa_fuse_spawn_server (c, container, &sq, fusefd, filefd, NULL, err);
}

/* Start the FUSE server REQ asks for, as the user (the monitor already is
 * the user), outside the container's namespaces, with only the descriptors
 * it serves.  For the decrypting server, wait until it says the key opened
 * the image ('R' on a pipe) and return -1 if it does not; for
 * fuse-overlayfs, until it has its own copy of the container's mount
 * namespace (the child waits meanwhile, so the copy has every layer and
 * no later change). */
pid_t
capsa_fuse_spawn_server (struct capsa_container *c, pid_t container, const struct capsa_fuse_request *req, int fusefd,
                   int filefd, const char *data, capsa_error_t *err)
{
    int ready[2] = { -1, -1 };
    if (req->server == SERVER_ETC) {
        if (c->mode != MODE_SETUID || geteuid () == 0 || data == NULL || data[0] != '/' || strpbrk (data, ":\n"))
            return capsa_error_make (err, 0, "unexpected request from the container");
        char *saved = c->home_dst;
        c->home_dst = (char *) data;
        int r = capsa_etc_generate (c, fusefd, filefd, err);
        c->home_dst = saved;
        if (r < 0)
            return capsa_error_wrap (err, "/etc/passwd and /etc/group");
        return 0;
    }
    if (req->server == SERVER_IMAGE)
        return serve_image (c, container, req, fusefd, filefd, err);
    bool userns_only = req->server == SERVER_FUSE2FS || req->server == SERVER_OVERLAYFS;
    if (userns_only && c->mode != MODE_USERNS)
        return capsa_error_make (err, 0, "unexpected request from the container");
    if (req->server == SERVER_OVERLAYFS && (data == NULL || strchr (data, ' ') != NULL))
        return capsa_error_make (err, 0, "unexpected request from the container");
    /* (The server's own messages go to /dev/null without -d: say it here.) */
    if (req->server == SERVER_FUSE2FS && (access (CAPSA_FUSE2FS, X_OK) < 0 || access (CAPSA_FUSERMOUNT_SHIM, R_OK) < 0))
        return capsa_error_make (err, errno, "ext3 overlays in a user namespace need %s (Debian's fuse2fs) and %s",
                                 CAPSA_FUSE2FS, CAPSA_FUSERMOUNT_SHIM);
    if (req->server == SERVER_OVERLAYFS && access (CAPSA_FUSE_OVERLAYFS, X_OK) < 0)
        return capsa_error_make (err, errno, "this container's root needs %s (Debian's fuse-overlayfs)",
                                 CAPSA_FUSE_OVERLAYFS);
    if (req->server == SERVER_CRYPT && (c->opts->key_fd < 0 || pipe2 (ready, O_CLOEXEC) < 0))
        return capsa_error_make (err, c->opts->key_fd < 0 ? 0 : errno, "no key for the encrypted image");
    if (req->server == SERVER_OVERLAYFS && pipe2 (ready, O_CLOEXEC) < 0)
        return capsa_error_make (err, errno, "pipe");
    pid_t pid = fork ();
    if (pid < 0)
        return capsa_error_make (err, errno, "fork");
    if (pid == 0) {
        char mnt[32], file[32], opt[96], off[32], size[32], key[32], rdy[32], fdenv[48];
        int devnull = open ("/dev/null", O_RDWR | O_CLOEXEC);
        /* This process parses what the user brought: it must be the user
         * (for fuse2fs and fuse-overlayfs never root: libfuse 2 would
         * unmount its "mount point" as root). */
        if (geteuid () != c->user.uid || getuid () != c->user.uid || (userns_only && getuid () == 0))
            _exit (CAPSA_EXIT_FATAL);
        /* A FUSE mount made in the container's user namespace serves only
         * processes inside that namespace (allow_other is limited to it):
         * join it.  The caller owns it, so this needs no privilege, and the
         * exec below drops whatever it grants. */
        if (c->mode == MODE_USERNS) {
            char ns[64];
            snprintf (ns, sizeof (ns), "/proc/%d/ns/user", container);
            int nsfd = open (ns, O_RDONLY | O_CLOEXEC);
            if (nsfd < 0 || setns (nsfd, CLONE_NEWUSER) < 0) {
                capsa_log (CAPSA_LOG_FATAL, "cannot join the container's user namespace: %s", strerror (errno));
                _exit (CAPSA_EXIT_FATAL);
            }
            close (nsfd);
        }
        /* fuse-overlayfs works on the container's layer directories by
         * path: it takes a private copy of the container's mount namespace
         * (the user's own, in the user's own user namespace), so that the
         * child's pivot_root and later mounts do not touch its view. */
        if (req->server == SERVER_OVERLAYFS) {
            char ns[64];
            snprintf (ns, sizeof (ns), "/proc/%d/ns/mnt", container);
            int nsfd = open (ns, O_RDONLY | O_CLOEXEC);
            if (nsfd < 0 || setns (nsfd, CLONE_NEWNS) < 0 || unshare (CLONE_NEWNS) < 0 || chdir ("/") < 0) {
                capsa_log (CAPSA_LOG_FATAL, "cannot enter the container's mount namespace: %s", strerror (errno));
                _exit (CAPSA_EXIT_FATAL);
            }
            close (nsfd);
            if (write (ready[1], "R", 1) != 1)
                _exit (CAPSA_EXIT_FATAL);
        }
        /* fuse2fs writes back its cache when asked to stop: give it the
         * chance when the monitor dies. */
        prctl (PR_SET_PDEATHSIG, req->server == SERVER_FUSE2FS ? SIGTERM : SIGKILL);
        if (devnull >= 0) {
            dup2 (devnull, STDIN_FILENO);
            if (capsa_log_get_level () < CAPSA_LOG_DEBUG) {
                dup2 (devnull, STDOUT_FILENO);
                /* squashfuse_ll reports the end of its connection when the
                 * container's namespace goes away, fuse2fs that it does not
                 * use the journal; only -d shows that.  A bad image still
                 * shows, as the root mount failing. */
                if (req->server != SERVER_CRYPT)
                    dup2 (devnull, STDERR_FILENO);
            }
        }
        /* Descriptors it may keep: not close-on-exec copies above 10. */
        int f = fcntl (fusefd, F_DUPFD, 10), i = fcntl (filefd, F_DUPFD, 10);
        if (f < 0 || i < 0)
            _exit (CAPSA_EXIT_FATAL);
        snprintf (mnt, sizeof (mnt), "/dev/fd/%d", f);
        char *envp[] = { (char *) "PATH=/usr/bin:/bin", NULL, NULL, NULL };
        if (req->server == SERVER_SQUASHFS) {
            snprintf (file, sizeof (file), "/dev/fd/%d", i);
            snprintf (opt, sizeof (opt), "offset=%llu", (unsigned long long) req->offset);
            char *argv[] = { (char *) "squashfuse_ll", (char *) "-f", (char *) "-o", opt, file, mnt, NULL };
            execve (CAPSA_SQUASHFUSE, argv, envp);
            capsa_log (CAPSA_LOG_FATAL, "cannot run %s: %s", CAPSA_SQUASHFUSE, strerror (errno));
            _exit (CAPSA_EXIT_FATAL);
        }
        if (req->server == SERVER_FUSE2FS) {
            /* libfuse2 cannot take a mounted descriptor: it tries to mount
             * (refused: the host's mount namespace is not the user's), then
             * asks fusermount, which the shim answers with descriptor F.
             * The "mount point" only has to exist; nothing is mounted
             * there.  fakeroot: fuse2fs leaves permission checks to the
             * kernel (default_permissions on the child's mount). */
            snprintf (file, sizeof (file), "/dev/fd/%d", i);
            snprintf (opt, sizeof (opt), "nonempty,fakeroot%s,offset=%llu",
                      (req->flags & FUSE_REQ_RO) ? ",ro" : "", (unsigned long long) req->offset);
            snprintf (fdenv, sizeof (fdenv), "CAPSA_FUSE_FD=%d", f);
            envp[1] = (char *) "LD_PRELOAD=" CAPSA_FUSERMOUNT_SHIM;
            envp[2] = fdenv;
            char *argv[] = { (char *) "fuse2fs", file, (char *) "/proc/self/fdinfo", (char *) "-f", (char *) "-o", opt, NULL };
            execve (CAPSA_FUSE2FS, argv, envp);
            capsa_log (CAPSA_LOG_FATAL, "cannot run %s: %s (install Debian's fuse2fs)", CAPSA_FUSE2FS, strerror (errno));
            _exit (CAPSA_EXIT_FATAL);
        }
        if (req->server == SERVER_OVERLAYFS) {
            cleanup_free char *o = xasprintf ("%s,noacl", data);
            char *argv[] = { (char *) "fuse-overlayfs", (char *) "-f", (char *) "-o", o, mnt, NULL };
            execve (CAPSA_FUSE_OVERLAYFS, argv, envp);
            capsa_log (CAPSA_LOG_FATAL, "cannot run %s: %s (install Debian's fuse-overlayfs)", CAPSA_FUSE_OVERLAYFS,
                       strerror (errno));
            _exit (CAPSA_EXIT_FATAL);
        }
        int k = fcntl (c->opts->key_fd, F_DUPFD, 10), r = fcntl (ready[1], F_DUPFD, 10);
        if (k < 0 || r < 0)
            _exit (CAPSA_EXIT_FATAL);
        snprintf (file, sizeof (file), "%d", i);
        snprintf (off, sizeof (off), "%llu", (unsigned long long) req->offset);
        snprintf (size, sizeof (size), "%llu", (unsigned long long) req->size);
        snprintf (key, sizeof (key), "%d", k);
        snprintf (rdy, sizeof (rdy), "%d", r);
        char *argv[] = { (char *) "capsa-cryptfuse", (char *) "--image-fd", file, (char *) "--offset", off,
                         (char *) "--size", size, (char *) "--volume-key-fd", key, (char *) "--ready-fd", rdy,
                         (char *) "--allow-other", mnt, NULL };
        execve (CAPSA_CRYPTFUSE, argv, envp);
        capsa_log (CAPSA_LOG_FATAL, "cannot run %s: %s", CAPSA_CRYPTFUSE, strerror (errno));
        _exit (CAPSA_EXIT_FATAL);
    }
    if (req->server == SERVER_CRYPT || req->server == SERVER_OVERLAYFS) {
        /* The key is used once. */
        if (req->server == SERVER_CRYPT) {
            close (c->opts->key_fd);
            c->opts->key_fd = -1;
        }
        close (ready[1]);
        char byte = 0;
        ssize_t n;
        do
            n = read (ready[0], &byte, 1);
        while (n < 0 && errno == EINTR);
        close (ready[0]);
        if (n != 1 || byte != 'R') {
            /* capsa-cryptfuse said why (wrong key, corrupt header). */
            waitpid (pid, NULL, 0);
            return capsa_error_make (err, 0, req->server == SERVER_CRYPT ? "the encrypted image could not be opened"
                                                                          : "the overlay server could not start");
        }
    }
    return pid;
}
