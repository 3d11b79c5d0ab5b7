/* The image server's connections: one thread per FUSE connection (libfuse's
 * multi-threaded loop under it), the shared socket where the user's monitors
 * bring new ones, and the linger after the last one ended.
 *
 * The main thread waits (poll) for a client on the socket, a finished
 * connection, a signal or the end of the linger; nothing else runs on it,
 * so a client is answered while other connections are busy. */
#include "imagefuse/server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "crypt/crypt.h"
#include "lib/log.h"
#include "lib/utils.h"
#include "runtime/imageserver.h"

/* More connections than this get IMGSRV_BUSY (libfuse takes a thread key
 * per session, of which a process has 1024). */
#define MAX_SESSIONS 512
/* A client that does not finish its request in this time is dropped. */
#define CLIENT_TIMEOUT_MS 5000
/* Worker threads per connection. */
#define SESSION_THREADS 8

static void *
session_main (void *arg)
{
    struct session *s = arg;
    struct server *srv = s->srv;
    struct fuse_loop_config *cfg = fuse_loop_cfg_create ();

    if (cfg) {
        fuse_loop_cfg_set_max_threads (cfg, SESSION_THREADS);
        fuse_session_loop_mt (s->se, cfg);
        fuse_loop_cfg_destroy (cfg);
    }
    /* The container's mount namespace is gone (or the kernel aborted the
     * connection): nothing more will come. */
    fuse_session_destroy (s->se);
    s->se = NULL;
    pthread_mutex_lock (&srv->lock);
    s->done = true;
    pthread_mutex_unlock (&srv->lock);
    uint64_t one = 1;
    (void) !write (srv->event_fd, &one, sizeof (one));
    return NULL;
}

int
server_add_session (struct server *srv, int fd)
{
    char mnt[32], *fargv[] = { (char *) "imagefuse", NULL };
    struct fuse_args args = FUSE_ARGS_INIT (1, fargv);
    struct session *s = calloc (1, sizeof (*s));

    if (s == NULL) {
        close (fd);
        return -1;
    }
    s->srv = srv;
    s->img = srv->img;
    s->se = fuse_session_new (&args, &imagefuse_ops, sizeof (imagefuse_ops), s);
    fuse_opt_free_args (&args);
    snprintf (mnt, sizeof (mnt), "/dev/fd/%d", fd);
    if (s->se == NULL || fuse_session_mount (s->se, mnt) != 0) {
        if (s->se)
            fuse_session_destroy (s->se);
        close (fd);
        free (s);
        return -1;
    }
    /* From here on the session owns FD. */
    pthread_mutex_lock (&srv->lock);
    if (pthread_create (&s->thread, NULL, session_main, s) != 0) {
        pthread_mutex_unlock (&srv->lock);
        fuse_session_destroy (s->se);
        free (s);
        return -1;
    }
    s->next = srv->sessions;
    srv->sessions = s;
    srv->nsessions++;
    srv->total++;
    pthread_mutex_unlock (&srv->lock);
    debugf ("imagefuse: connection %u started (%u serving)", srv->total, srv->nsessions);
    return 0;
}

/* Join the threads of finished connections. */
static void
reap_sessions (struct server *srv)
{
    pthread_mutex_lock (&srv->lock);
    struct session **pp = &srv->sessions;
    while (*pp) {
        struct session *s = *pp;
        if (!s->done) {
            pp = &s->next;
            continue;
        }
        *pp = s->next;
        srv->nsessions--;
        pthread_mutex_unlock (&srv->lock);
        pthread_join (s->thread, NULL);
        free (s);
        pthread_mutex_lock (&srv->lock);
        pp = &srv->sessions;
    }
    pthread_mutex_unlock (&srv->lock);
}

/* ---- Clients ------------------------------------------------------------------------ */

static bool
same_image (const struct server *srv, int fd)
{
    struct stat st;
    return fstat (fd, &st) == 0 && S_ISREG (st.st_mode) && st.st_dev == srv->id.st_dev && st.st_ino == srv->id.st_ino
           && st.st_size == srv->id.st_size && st.st_mtim.tv_sec == srv->id.st_mtim.tv_sec
           && st.st_mtim.tv_nsec == srv->id.st_mtim.tv_nsec && st.st_ctim.tv_sec == srv->id.st_ctim.tv_sec
           && st.st_ctim.tv_nsec == srv->id.st_ctim.tv_nsec;
}

static bool
is_fuse_device (int fd)
{
    struct stat st;
    return fstat (fd, &st) == 0 && S_ISCHR (st.st_mode) && major (st.st_rdev) == 10 && minor (st.st_rdev) == 229;
}

/* The key record on the pipe KEYFD (read to its end), in locked memory;
 * NULL when there is none in time. */
static uint8_t *
read_record (int keyfd, size_t *len)
{
    uint8_t *rec = capsa_secure_alloc (CAPSA_SECRET_RECORD_MAX + 1, NULL);
    size_t n = 0;

    for (;;) {
        struct pollfd p = { .fd = keyfd, .events = POLLIN };
        if (poll (&p, 1, CLIENT_TIMEOUT_MS) != 1)
            break;
        ssize_t r = read (keyfd, rec + n, CAPSA_SECRET_RECORD_MAX + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || (n += (size_t) r) > CAPSA_SECRET_RECORD_MAX) {
            if (r == 0 && n > 0) {
                *len = n;
                return rec;
            }
            break;
        }
    }
    capsa_secure_free (rec);
    return NULL;
}

static void
send_stats (struct server *srv, int cfd)
{
    struct sqi_stats st;
    char text[512];
    sqi_get_stats (srv->img, &st);
    pthread_mutex_lock (&srv->lock);
    unsigned live = srv->nsessions, total = srv->total;
    pthread_mutex_unlock (&srv->lock);
    int n = snprintf (text, sizeof (text),
                      "pid %d\nconnections %u\nconnections_total %u\ninode_decodes %" PRIu64 "\ndir_decodes %" PRIu64
                      "\nblock_decompressions %" PRIu64 "\nblock_hits %" PRIu64 "\nblock_waits %" PRIu64
                      "\ndata_cache_bytes %zu\nmeta_cache_bytes %zu\n",
                      (int) getpid (), live, total, st.inode_decodes, st.dir_decodes, st.block_decompressions,
                      st.block_hits, st.block_waits, st.data_bytes, st.meta_bytes);
    (void) !send (cfd, text, (size_t) n, MSG_NOSIGNAL);
}

/* One client: a request, maybe descriptors, one answer: a byte, then text
 * (IMGSRV_SERVED: lines for the monitor; IMGSRV_KEY_ERROR: why).  Only the
 * server's own user is heard. */
static void
handle_client (struct server *srv, int cfd)
{
    struct capsa_imgsrv_request req;
    struct ucred cr;
    socklen_t crlen = sizeof (cr);
    int fds[3] = { -1, -1, -1 };
    size_t nfds = 0;
    char answer[1024] = { IMGSRV_ERROR };
    capsa_error_t err = NULL;

    if (getsockopt (cfd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) != 0 || cr.uid != getuid ()) {
        debugf ("imagefuse: refused a client of uid %d", (int) cr.uid);
        close (cfd);
        return;
    }
    struct timeval tv = { .tv_sec = CLIENT_TIMEOUT_MS / 1000 };
    setsockopt (cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof (tv));
    setsockopt (cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof (tv));

    struct iovec iov = { .iov_base = &req, .iov_len = sizeof (req) };
    union {
        char buf[CMSG_SPACE (3 * sizeof (int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof (u.buf) };
    ssize_t r = recvmsg (cfd, &msg, MSG_CMSG_CLOEXEC);
    for (struct cmsghdr *cm = CMSG_FIRSTHDR (&msg); r >= 0 && cm; cm = CMSG_NXTHDR (&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (cm->cmsg_len - CMSG_LEN (0)) / sizeof (int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy (&fd, CMSG_DATA (cm) + i * sizeof (int), sizeof (int));
            if (nfds < ARRAY_SIZE (fds))
                fds[nfds++] = fd;
            else
                close (fd);
        }
    }
    if (r != (ssize_t) sizeof (req) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
        || memcmp (req.magic, CAPSA_IMGSRV_MAGIC, sizeof (req.magic)) != 0 || req.version != CAPSA_IMGSRV_VERSION)
        goto out;
    if (req.op == IMGSRV_STATS) {
        send_stats (srv, cfd);
        goto close_only;
    }
    if (req.op != IMGSRV_SERVE || nfds < 2 || !is_fuse_device (fds[0]))
        goto out;
    bool encrypted = (req.flags & IMGSRV_ENCRYPTED) != 0;
    if (!same_image (srv, fds[1]) || req.offset != srv->offset || req.size != srv->part_size
        || encrypted != srv->encrypted) {
        answer[0] = IMGSRV_NOT_IMAGE;
        goto out;
    }
    if (encrypted) {
        size_t len = 0;
        uint8_t *rec = nfds >= 3 ? read_record (fds[2], &len) : NULL;
        int k = rec ? keys_check (srv, fds[1], rec, len, answer + 1, sizeof (answer) - 1, &err) : 1;
        capsa_secure_free (rec);
        if (k < 0) {
            /* A wrong key: the monitor says why and stops. */
            answer[0] = IMGSRV_KEY_ERROR;
            snprintf (answer + 1, sizeof (answer) - 1, "%s", err && err->msg ? err->msg : "the key is not right");
            capsa_error_free (&err);
            goto out;
        }
        if (k > 0) {
            answer[0] = IMGSRV_NOT_KEY;
            answer[1] = '\0';
            goto out;
        }
    } else {
        answer[1] = '\0';
    }
    pthread_mutex_lock (&srv->lock);
    bool busy = srv->nsessions >= MAX_SESSIONS || srv->stopping;
    pthread_mutex_unlock (&srv->lock);
    if (busy) {
        answer[0] = IMGSRV_BUSY;
        answer[1] = '\0';
        goto out;
    }
    int fusefd = fds[0];
    fds[0] = -1;
    answer[0] = server_add_session (srv, fusefd) == 0 ? IMGSRV_SERVED : IMGSRV_ERROR;
out:
    (void) !send (cfd, answer, 1 + strnlen (answer + 1, sizeof (answer) - 1), MSG_NOSIGNAL);
close_only:
    for (size_t i = 0; i < nfds; i++)
        if (fds[i] >= 0)
            close (fds[i]);
    close (cfd);
}

struct client {
    struct server *srv;
    int fd;
};

static void *
client_main (void *arg)
{
    struct client *cl = arg;
    struct server *srv = cl->srv;
    handle_client (srv, cl->fd);
    free (cl);
    pthread_mutex_lock (&srv->lock);
    srv->clients--;
    pthread_mutex_unlock (&srv->lock);
    uint64_t one = 1;
    (void) !write (srv->event_fd, &one, sizeof (one));
    return NULL;
}

/* Answer CFD on a thread of its own: a key that must be tried (a KDF of
 * seconds) holds up nobody else. */
static void
start_client (struct server *srv, int cfd)
{
    pthread_t t;
    pthread_attr_t attr;
    struct client *cl = malloc (sizeof (*cl));
    if (cl == NULL) {
        close (cfd);
        return;
    }
    *cl = (struct client) { .srv = srv, .fd = cfd };
    pthread_mutex_lock (&srv->lock);
    srv->clients++;
    pthread_mutex_unlock (&srv->lock);
    pthread_attr_init (&attr);
    pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create (&t, &attr, client_main, cl) != 0) {
        pthread_mutex_lock (&srv->lock);
        srv->clients--;
        pthread_mutex_unlock (&srv->lock);
        handle_client (srv, cfd);
        free (cl);
    }
    pthread_attr_destroy (&attr);
}

/* ---- The socket and the end ------------------------------------------------------- */

static int
lock_dir (struct server *srv)
{
    int fd = openat (srv->dir_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    /* Whoever holds it is starting a server: a moment at most. */
    for (int i = 0; i < 400; i++) {
        if (flock (fd, LOCK_EX | LOCK_NB) == 0)
            return fd;
        struct timespec ts = { 0, 5 * 1000 * 1000 };
        nanosleep (&ts, NULL);
    }
    return fd; /* unlocked: go on regardless */
}

/* Take the name away (if it is still this server's), serve whoever is
 * already queued, then close the socket.  Returns true when no connection
 * is left to serve. */
static bool
stop_listening (struct server *srv)
{
    int lk = lock_dir (srv);
    struct stat st;
    if (fstatat (srv->dir_fd, srv->sock_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == srv->sock_ino
        && S_ISSOCK (st.st_mode))
        unlinkat (srv->dir_fd, srv->sock_name, 0);
    for (;;) {
        struct pollfd p = { .fd = srv->listen_fd, .events = POLLIN };
        if (poll (&p, 1, 0) != 1)
            break;
        int cfd = accept4 (srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0)
            break;
        handle_client (srv, cfd);
    }
    pthread_mutex_lock (&srv->lock);
    srv->stopping = true;
    bool idle = srv->nsessions == 0 && srv->clients == 0;
    pthread_mutex_unlock (&srv->lock);
    close (srv->listen_fd);
    srv->listen_fd = -1;
    if (lk >= 0)
        close (lk);
    return idle;
}

static int64_t
now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
server_run (struct server *srv)
{
    sigset_t mask;
    sigemptyset (&mask);
    sigaddset (&mask, SIGTERM);
    sigaddset (&mask, SIGINT);
    sigaddset (&mask, SIGHUP);
    int sfd = signalfd (-1, &mask, SFD_CLOEXEC);
    int64_t deadline = -1;
    int ret = 0;

    for (;;) {
        reap_sessions (srv);
        pthread_mutex_lock (&srv->lock);
        unsigned live = srv->nsessions + srv->clients;
        pthread_mutex_unlock (&srv->lock);
        if (live > 0) {
            deadline = -1;
        } else if (srv->listen_fd < 0 || srv->linger_ms == 0) {
            break;
        } else if (deadline < 0) {
            deadline = now_ms () + srv->linger_ms;
            debugf ("imagefuse: no connection left, lingering %u ms", srv->linger_ms);
        }
        struct pollfd p[3] = {
            { .fd = srv->event_fd, .events = POLLIN },
            { .fd = sfd, .events = POLLIN },
            { .fd = srv->listen_fd, .events = POLLIN },
        };
        int timeout = deadline < 0 ? -1 : (int) (deadline > now_ms () ? deadline - now_ms () : 0);
        int n = poll (p, srv->listen_fd >= 0 ? 3 : 2, timeout);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret = -1;
            break;
        }
        if (n == 0) {
            /* The linger is over. */
            if (stop_listening (srv))
                break;
            continue;
        }
        if (p[0].revents & POLLIN) {
            uint64_t v;
            (void) !read (srv->event_fd, &v, sizeof (v));
        }
        if (p[1].revents & POLLIN) {
            debugf ("imagefuse: stopped by a signal");
            break;
        }
        if (srv->listen_fd >= 0 && (p[2].revents & POLLIN)) {
            int cfd = accept4 (srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
            if (cfd >= 0)
                start_client (srv, cfd);
        }
    }
    if (srv->listen_fd >= 0)
        stop_listening (srv);
    if (sfd >= 0)
        close (sfd);
    return ret;
}

int
server_listen (struct server *srv, int dir_fd, const char *name, capsa_error_t *err)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    struct stat st;

    /* Bound through the directory's descriptor: the path is never looked
     * up again from the top. */
    int len = snprintf (addr.sun_path, sizeof (addr.sun_path), "/proc/self/fd/%d/%s", dir_fd, name);
    if (len < 0 || (size_t) len >= sizeof (addr.sun_path))
        return capsa_error_make (err, ENAMETOOLONG, "socket name %s", name);
    int fd = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return capsa_error_make (err, errno, "socket");
    mode_t old = umask (0177);
    int r = bind (fd, (struct sockaddr *) &addr, sizeof (addr));
    int e = errno;
    umask (old);
    if (r < 0 || listen (fd, 128) < 0 || fstatat (dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (r == 0)
            e = errno;
        close (fd);
        return capsa_error_make (err, e, "cannot listen on %s", name);
    }
    srv->listen_fd = fd;
    srv->dir_fd = dir_fd;
    srv->sock_name = xstrdup (name);
    srv->sock_ino = st.st_ino;
    return 0;
}

void
server_init (struct server *srv, struct sqi_image *img)
{
    memset (srv, 0, sizeof (*srv));
    srv->img = img;
    srv->listen_fd = -1;
    srv->dir_fd = -1;
    pthread_mutex_init (&srv->lock, NULL);
    srv->event_fd = eventfd (0, EFD_CLOEXEC);
}
