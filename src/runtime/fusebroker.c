/* FUSE mounts served by the user's own servers: see fusebroker.h. */
#include "runtime/fusebroker.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
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

static int
send_request (int sock, const struct capsa_fuse_request *req, int fds[2])
{
    struct iovec iov = { .iov_base = (void *) req, .iov_len = sizeof (*req) };
    union {
        char buf[CMSG_SPACE (2 * sizeof (int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof (u.buf) };
    struct cmsghdr *cm = CMSG_FIRSTHDR (&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN (2 * sizeof (int));
    memcpy (CMSG_DATA (cm), fds, 2 * sizeof (int));
    return sendmsg (sock, &msg, MSG_NOSIGNAL) == (ssize_t) sizeof (*req) ? 0 : -1;
}

/* Returns 1 with the request and fds, 0 at end of stream, -1 on error. */
int
capsa_fuse_recv_request (int sock, struct capsa_fuse_request *req, int fds[2])
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
    return 1;
}

/* Mount /dev/fuse on TARGET (read-only, nosuid, nodev) and ask the monitor
 * to serve it from FILEFD; wait for its answer ('R': served). */
int
capsa_fuse_mount_served (struct capsa_container *c, int sock, int target, const char *fstype, enum capsa_fuse_server server,
                   int filefd, uint64_t offset, uint64_t size, unsigned long flags, capsa_error_t *err)
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
    cleanup_free char *data = xasprintf ("fd=%d,rootmode=40000,user_id=%u,group_id=%u,allow_other,default_permissions",
                                         fusefd, c->user.uid, c->user.gid);
    if (capsa_mount_fd (fstype, target, fstype, flags, data, "the image with FUSE", err) < 0)
        return -1;
    struct capsa_fuse_request req = { .server = server, .offset = offset, .size = size,
                                      .flags = server == SERVER_IMAGE && c->image.encrypted ? FUSE_REQ_ENCRYPTED : 0 };
    int fds[2] = { fusefd, filefd };
    char answer = 0;
    if (send_request (sock, &req, fds) < 0)
        return capsa_error_make (err, errno, "cannot pass the FUSE descriptor to the monitor");
    if (read (sock, &answer, 1) != 1 || answer != 'R')
        return capsa_error_make (err, 0, "the image could not be served");
    return 0;
}

/* Start the FUSE server REQ asks for, as the user (the monitor already is
 * the user), outside the container's namespaces, with only the descriptors
 * it serves.  For the decrypting server, wait until it says the key opened
 * the image ('R' on a pipe) and return -1 if it does not. */
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
    sq.flags = 0;
    return capsa_fuse_spawn_server (c, container, &sq, fusefd, filefd, err);
}

pid_t
capsa_fuse_spawn_server (struct capsa_container *c, pid_t container, const struct capsa_fuse_request *req, int fusefd,
                   int filefd, capsa_error_t *err)
{
    int ready[2] = { -1, -1 };
    if (req->server == SERVER_IMAGE)
        return serve_image (c, container, req, fusefd, filefd, err);
    if (req->server == SERVER_CRYPT && (c->opts->key_fd < 0 || pipe2 (ready, O_CLOEXEC) < 0))
        return capsa_error_make (err, c->opts->key_fd < 0 ? 0 : errno, "no key for the encrypted image");
    pid_t pid = fork ();
    if (pid < 0)
        return capsa_error_make (err, errno, "fork");
    if (pid == 0) {
        char mnt[32], file[32], opt[64], off[32], size[32], key[32], rdy[32];
        int devnull = open ("/dev/null", O_RDWR | O_CLOEXEC);
        /* This process parses what the user brought: it must be the user. */
        if (geteuid () != c->user.uid || getuid () != c->user.uid)
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
        prctl (PR_SET_PDEATHSIG, SIGKILL);
        if (devnull >= 0) {
            dup2 (devnull, STDIN_FILENO);
            if (capsa_log_get_level () < CAPSA_LOG_DEBUG) {
                dup2 (devnull, STDOUT_FILENO);
                /* squashfuse_ll reports the end of its connection when the
                 * container's namespace goes away; only -d shows that.  A
                 * bad image still shows, as the root mount failing. */
                if (req->server == SERVER_SQUASHFS)
                    dup2 (devnull, STDERR_FILENO);
            }
        }
        /* Descriptors it may keep: not close-on-exec copies above 10. */
        int f = fcntl (fusefd, F_DUPFD, 10), i = fcntl (filefd, F_DUPFD, 10);
        if (f < 0 || i < 0)
            _exit (CAPSA_EXIT_FATAL);
        snprintf (mnt, sizeof (mnt), "/dev/fd/%d", f);
        char *envp[] = { (char *) "PATH=/usr/bin:/bin", NULL };
        if (req->server == SERVER_SQUASHFS) {
            snprintf (file, sizeof (file), "/dev/fd/%d", i);
            snprintf (opt, sizeof (opt), "offset=%llu", (unsigned long long) req->offset);
            char *argv[] = { (char *) "squashfuse_ll", (char *) "-f", (char *) "-o", opt, file, mnt, NULL };
            execve (CAPSA_SQUASHFUSE, argv, envp);
            capsa_log (CAPSA_LOG_FATAL, "cannot run %s: %s", CAPSA_SQUASHFUSE, strerror (errno));
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
    if (req->server == SERVER_CRYPT) {
        /* The key is used once. */
        close (c->opts->key_fd);
        c->opts->key_fd = -1;
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
            return capsa_error_make (err, 0, "the encrypted image could not be opened");
        }
    }
    return pid;
}

