/* The starter's side of capsa's image server: see imageserver.h.
 *
 * Runs in the monitor after its final drop (the user for good, or never
 * anything else in user-namespace mode).  Every path here is the user's
 * own runtime directory, checked and then used only through its
 * descriptor; the key never passes through this process's memory (the
 * key pipe is duplicated with tee(2) for each server that asks). */
#include "runtime/imageserver.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "lib/log.h"
#include "runtime/container.h"
/* The SIF library's SHA-256 (the starter's own code). */
#include "sif/sif_private.h"

#define IMAGEFUSE CAPSA_LIBEXECDIR "/" CAPSA_IMAGEFUSE_NAME

bool
capsa_imgsrv_available (const struct capsa_container *c, const char **why)
{
    if (!c->conf->image_server) {
        *why = "'image server = squashfuse_ll' in capsa.conf";
        return false;
    }
    if (faccessat (AT_FDCWD, IMAGEFUSE, X_OK, AT_EACCESS) < 0) {
        *why = errno == ENOENT ? IMAGEFUSE " is not installed" : IMAGEFUSE " cannot be run";
        return false;
    }
    return true;
}

/* ---- The runtime directory -------------------------------------------------------- */

/* DIR, opened without following a symlink, must be a directory of UID's
 * that nobody else may enter. */
static int
open_private_dir (const char *dir, uid_t uid, const char **why)
{
    struct stat st;
    int fd = open (dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        *why = errno == ELOOP || errno == ENOTDIR ? "it is not a directory" : "it cannot be opened";
        return -1;
    }
    if (fstat (fd, &st) < 0 || !S_ISDIR (st.st_mode)) {
        *why = "it is not a directory";
    } else if (st.st_uid != uid) {
        *why = "it belongs to another user";
    } else if (st.st_mode & 077) {
        *why = "others may use it";
    } else {
        return fd;
    }
    close (fd);
    return -1;
}

int
capsa_imgsrv_rundir (uid_t uid, char **path, const char **why)
{
    char base[64];
    struct stat st;

    /* The user's login runtime directory when it is theirs (systemd), else
     * one of their own in /tmp.  Nothing here trusts the environment. */
    snprintf (base, sizeof (base), "/run/user/%u", (unsigned) uid);
    if (lstat (base, &st) == 0 && S_ISDIR (st.st_mode) && st.st_uid == uid && !(st.st_mode & 022))
        *path = xasprintf ("%s/capsa", base);
    else
        *path = xasprintf ("/tmp/capsa-%u", (unsigned) uid);
    /* Made private from the start; if it exists, it is checked below. */
    if (mkdir (*path, 0700) < 0 && errno != EEXIST) {
        *why = "it cannot be created";
        return -1;
    }
    return open_private_dir (*path, uid, why);
}

/* ---- What is shared: the socket's name --------------------------------------------- */

static void
hash_str (struct sif_sha256 *h, const char *s)
{
    sif_sha256_update (h, s, strlen (s) + 1);
}

static void
hash_stat (struct sif_sha256 *h, const struct stat *st)
{
    char buf[256];
    snprintf (buf, sizeof (buf), "%llu:%llu:%lld:%lld.%09ld:%lld.%09ld", (unsigned long long) st->st_dev,
              (unsigned long long) st->st_ino, (long long) st->st_size, (long long) st->st_mtim.tv_sec,
              st->st_mtim.tv_nsec, (long long) st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
    hash_str (h, buf);
}

/* "img-" and 32 hex digits of a SHA-256 of what must be equal for two
 * containers to share a server (the key is checked by the server). */
static int
share_name (int filefd, uint64_t offset, uint64_t size, bool encrypted, char name[48], capsa_error_t *err)
{
    struct sif_sha256 h;
    struct stat st;
    uint8_t d[32];
    char buf[128];

    sif_sha256_init (&h);
    hash_str (&h, "capsa image server 1");
    /* This installation's server, as it is now: an upgrade starts anew. */
    hash_str (&h, IMAGEFUSE);
    if (stat (IMAGEFUSE, &st) == 0)
        hash_stat (&h, &st);
    if (fstat (filefd, &st) < 0)
        return capsa_error_make (err, errno, "image");
    hash_stat (&h, &st);
    snprintf (buf, sizeof (buf), "%llu:%llu:%d", (unsigned long long) offset, (unsigned long long) size,
              encrypted ? 1 : 0);
    hash_str (&h, buf);
    /* The control group: a batch system that ends a job's processes must
     * not take another job's server with them. */
    char *cg = NULL;
    size_t cglen = 0;
    int cgfd = open ("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
    if (cgfd >= 0 && read_fd_all (cgfd, 65536, &cg, &cglen, NULL) == 0)
        sif_sha256_update (&h, cg, cglen);
    if (cgfd >= 0)
        close (cgfd);
    free (cg);
    sif_sha256_final (&h, d);
    memcpy (name, "img-", 4);
    for (int i = 0; i < 16; i++)
        snprintf (name + 4 + 2 * i, 3, "%02x", d[i]);
    memcpy (name + 36, ".sock", 6);
    return 0;
}

/* ---- Talking to a server ---------------------------------------------------------- */

/* A copy of the key pipe's content in a new pipe (its read end), made by
 * the kernel: the bytes are never read here. */
static int
key_copy (int keyfd)
{
    int p[2];
    if (pipe2 (p, O_CLOEXEC) < 0)
        return -1;
    ssize_t n = tee (keyfd, p[1], 65536, SPLICE_F_NONBLOCK);
    close (p[1]);
    if (n <= 0) {
        close (p[0]);
        errno = n == 0 ? ENODATA : errno;
        return -1;
    }
    return p[0];
}

enum join_result { JOIN_SERVED, JOIN_NO_SERVER, JOIN_REFUSED };

/* The server's answer: a byte and text (lines, or why the key is wrong). */
struct answer {
    char code;
    char text[1024];
};

/* Connect to NAME in DIRFD and ask for the connection to be served. */
static enum join_result
try_join (int dirfd, const char *name, const struct capsa_imgsrv_request *req, int fds[3], size_t nfds,
          struct answer *answer)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    struct ucred cr;
    socklen_t crlen = sizeof (cr);

    answer->code = IMGSRV_ERROR;
    answer->text[0] = '\0';
    int len = snprintf (addr.sun_path, sizeof (addr.sun_path), "/proc/self/fd/%d/%s", dirfd, name);
    if (len < 0 || (size_t) len >= sizeof (addr.sun_path))
        return JOIN_REFUSED;
    cleanup_close int s = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0)
        return JOIN_REFUSED;
    if (connect (s, (struct sockaddr *) &addr, sizeof (addr)) < 0)
        return errno == ENOENT || errno == ECONNREFUSED ? JOIN_NO_SERVER : JOIN_REFUSED;
    /* Only the user's own server gets the container's root. */
    if (getsockopt (s, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0 || cr.uid != getuid ()) {
        debugf ("image server: the socket %s is not served by uid %u", name, (unsigned) getuid ());
        return JOIN_REFUSED;
    }
    /* A key the server has not seen makes it run the KDF: seconds. */
    struct timeval tv = { .tv_sec = 120 };
    setsockopt (s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof (tv));
    setsockopt (s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof (tv));
    struct iovec iov = { .iov_base = (void *) req, .iov_len = sizeof (*req) };
    union {
        char buf[CMSG_SPACE (3 * sizeof (int))];
        struct cmsghdr align;
    } u;
    memset (&u, 0, sizeof (u));
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                          .msg_controllen = CMSG_SPACE (nfds * sizeof (int)) };
    struct cmsghdr *cm = CMSG_FIRSTHDR (&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN (nfds * sizeof (int));
    memcpy (CMSG_DATA (cm), fds, nfds * sizeof (int));
    if (sendmsg (s, &msg, MSG_NOSIGNAL) != (ssize_t) sizeof (*req))
        return JOIN_NO_SERVER; /* it went away: start one */
    /* A code byte, then text the size of answer->text at most, which
     * keeps a byte for its NUL. */
    char buf[sizeof (answer->text)];
    ssize_t n;
    do
        n = recv (s, buf, sizeof (buf), 0);
    while (n < 0 && errno == EINTR);
    if (n < 1)
        return JOIN_NO_SERVER; /* it stopped before answering */
    answer->code = buf[0];
    memcpy (answer->text, buf + 1, (size_t) n - 1);
    answer->text[n - 1] = '\0';
    return answer->code == IMGSRV_SERVED ? JOIN_SERVED : JOIN_REFUSED;
}

/* Hold the directory's lock while a server starts (a few ms; bounded). */
static int
lock_rundir (int dirfd)
{
    int fd = openat (dirfd, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    for (int i = 0; i < 3000; i++) {
        if (flock (fd, LOCK_EX | LOCK_NB) == 0)
            return fd;
        struct timespec ts = { 0, 5 * 1000 * 1000 };
        nanosleep (&ts, NULL);
    }
    close (fd);
    return -1;
}

/* Every descriptor from 3 up that is not in KEEP is closed at exec. */
static void
cloexec_all_but (const int *keep, size_t nkeep)
{
    DIR *d = opendir ("/proc/self/fd");
    if (d == NULL)
        return;
    int self = dirfd (d);
    for (struct dirent *e = readdir (d); e; e = readdir (d)) {
        long fd;
        if (e->d_name[0] == '.' || parse_long (e->d_name, 3, INT32_MAX, &fd) < 0 || fd == self)
            continue;
        bool kept = false;
        for (size_t i = 0; i < nkeep; i++)
            kept |= keep[i] == fd;
        if (!kept)
            fcntl ((int) fd, F_SETFD, FD_CLOEXEC);
    }
    closedir (d);
}

/* Start imagefuse on FUSEFD: shared (DIRFD/NAME given: detached from this
 * process, in a session of its own) or private (the monitor's child, which
 * dies with it).  Returns the private server's pid, 0 for a shared one,
 * -1 with the server's reason when it did not start. */
static pid_t
spawn (struct capsa_container *c, int fusefd, int filefd, int keyfd, uint64_t offset, uint64_t size, int dirfd,
       const char *name, struct answer *info, capsa_error_t *err)
{
    int ready[2];
    if (pipe2 (ready, O_CLOEXEC) < 0)
        return capsa_error_make (err, errno, "pipe");
    pid_t pid = fork ();
    if (pid < 0) {
        capsa_error_make (err, errno, "fork");
        close (ready[0]);
        close (ready[1]);
        return -1;
    }
    if (pid == 0) {
        /* Not the monitor's signal forwarding (exec resets it too). */
        const int fwd[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCONT, SIGWINCH };
        for (size_t s = 0; s < ARRAY_SIZE (fwd); s++)
            signal (fwd[s], SIG_DFL);
        /* The server parses what the user brought: it must be the user. */
        if (geteuid () != c->user.uid || getuid () != c->user.uid)
            _exit (CAPSA_EXIT_FATAL);
        if (name) {
            /* Not the container's: no terminal, no process group of the
             * caller's, not this process's child. */
            setsid ();
            pid_t grandchild = fork ();
            if (grandchild != 0)
                _exit (grandchild < 0 ? CAPSA_EXIT_FATAL : 0);
        } else {
            prctl (PR_SET_PDEATHSIG, SIGKILL);
        }
        int devnull = open ("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull >= 0) {
            dup2 (devnull, STDIN_FILENO);
            dup2 (devnull, STDOUT_FILENO);
        }
        int f = fcntl (fusefd, F_DUPFD, 10), i = fcntl (filefd, F_DUPFD, 10), r = fcntl (ready[1], F_DUPFD, 10);
        int k = keyfd >= 0 ? fcntl (keyfd, F_DUPFD, 10) : -1, d = dirfd >= 0 ? fcntl (dirfd, F_DUPFD, 10) : -1;
        if (f < 0 || i < 0 || r < 0 || (keyfd >= 0 && k < 0) || (dirfd >= 0 && d < 0))
            _exit (CAPSA_EXIT_FATAL);
        const int keep[] = { f, i, r, k, d };
        cloexec_all_but (keep, ARRAY_SIZE (keep));
        char sf[16], si[16], sr[16], sk[16], sd[16], so[32], ss[32], sl[32], sc[32];
        snprintf (sf, sizeof (sf), "%d", f);
        snprintf (si, sizeof (si), "%d", i);
        snprintf (sr, sizeof (sr), "%d", r);
        snprintf (sk, sizeof (sk), "%d", k);
        snprintf (sd, sizeof (sd), "%d", d);
        snprintf (so, sizeof (so), "%llu", (unsigned long long) offset);
        snprintf (ss, sizeof (ss), "%llu", (unsigned long long) size);
        snprintf (sl, sizeof (sl), "%ld", c->conf->image_server_linger);
        snprintf (sc, sizeof (sc), "%ld", c->conf->image_server_cache);
        char *argv[24];
        int n = 0;
        argv[n++] = (char *) CAPSA_IMAGEFUSE_NAME;
        argv[n++] = (char *) "--image-fd";
        argv[n++] = si;
        argv[n++] = (char *) "--offset";
        argv[n++] = so;
        argv[n++] = (char *) "--size";
        argv[n++] = ss;
        argv[n++] = (char *) "--fuse-fd";
        argv[n++] = sf;
        argv[n++] = (char *) "--ready-fd";
        argv[n++] = sr;
        argv[n++] = (char *) "--cache-mib";
        argv[n++] = sc;
        if (k >= 0) {
            argv[n++] = (char *) "--key-fd";
            argv[n++] = sk;
        }
        if (name) {
            argv[n++] = (char *) "--rundir-fd";
            argv[n++] = sd;
            argv[n++] = (char *) "--name";
            argv[n++] = (char *) name;
            argv[n++] = (char *) "--linger";
            argv[n++] = sl;
        }
        if (capsa_log_get_level () >= CAPSA_LOG_DEBUG)
            argv[n++] = (char *) "--debug";
        argv[n] = NULL;
        char *envp[] = { (char *) "PATH=/usr/bin:/bin", NULL };
        execve (IMAGEFUSE, argv, envp);
        capsa_log (CAPSA_LOG_FATAL, "cannot run %s: %s", IMAGEFUSE, strerror (errno));
        _exit (CAPSA_EXIT_FATAL);
    }
    close (ready[1]);
    if (name) {
        /* The intermediate process ends at once. */
        while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    /* 'R', or 'F' and why it could not serve. */
    char answer[512];
    size_t got = 0;
    for (;;) {
        ssize_t n = read (ready[0], answer + got, sizeof (answer) - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t) n;
        if (got == sizeof (answer) - 1)
            break;
    }
    close (ready[0]);
    answer[got] = '\0';
    if (got == 0 || answer[0] != 'R') {
        if (!name)
            waitpid (pid, NULL, 0);
        capsa_error_make (err, 0, "%s", got > 1 && answer[0] == 'F' ? answer + 1 : "it did not start");
        if (got > 1 && answer[0] == 'F')
            (*err)->code = EKEYREJECTED; /* (or a corrupt image: no fallback either way) */
        return -1;
    }
    info->code = IMGSRV_SERVED;
    snprintf (info->text, sizeof (info->text), "%s", answer + 1);
    return name ? 0 : pid;
}

/* What the server said besides serving: the KDF that ran (as the front end
 * says it), a capsa 0.1.0 image. */
static void
show (const struct capsa_container *c, const char *text)
{
    char line[512];
    for (const char *p = text; *p;) {
        const char *nl = strchr (p, '\n');
        size_t n = nl ? (size_t) (nl - p) : strlen (p);
        snprintf (line, sizeof (line), "%.*s", (int) n, p);
        p += n + (nl != NULL);
        char fmt[32], type[32];
        unsigned long long mem;
        unsigned iter, lanes;
        double secs;
        if (sscanf (line, "kdf %31s %31s %llu %u %u %lf", fmt, type, &mem, &iter, &lanes, &secs) == 6) {
            if (mem > 0)
                verbosef ("%s image unlocked: key derivation %s, %llu MiB, %u iterations, %u lanes, took %.3f s", fmt, type,
                          mem / 1024, iter, lanes, secs);
            else
                verbosef ("%s image unlocked: key derivation %s, %u iterations, took %.3f s", fmt, type, iter, secs);
        } else if (strcmp (line, "legacy") == 0) {
            warnf ("%s was encrypted by capsa 0.1.0, whose sector numbering the kernel's dm-crypt does not read "
                   "(Apptainer and SingularityCE cannot open it); capsa still runs it. Encrypt the unencrypted image "
                   "again with 'capsa encrypt' to share it", c->opts->image);
        }
    }
}

int
capsa_imgsrv_serve (struct capsa_container *c, int fusefd, int filefd, uint64_t offset, uint64_t size,
                    bool encrypted, pid_t *pid, enum capsa_imgsrv_how *how, capsa_error_t *err)
{
    const int keyfd = encrypted ? c->opts->key_fd : -1;
    cleanup_free char *dir = NULL;
    const char *why = NULL;
    struct answer answer = { 0 };
    char name[48];

    *pid = -1;
    if (encrypted && keyfd < 0)
        return capsa_error_make (err, 0, "no key for the encrypted image");
    cleanup_close int dirfd = capsa_imgsrv_rundir (getuid (), &dir, &why);
    if (dirfd >= 0 && share_name (filefd, offset, size, encrypted, name, err) < 0)
        return -1;
    for (int attempt = 0; dirfd >= 0 && attempt < 4; attempt++) {
        struct capsa_imgsrv_request req = { .version = CAPSA_IMGSRV_VERSION, .op = IMGSRV_SERVE,
                                            .flags = encrypted ? IMGSRV_ENCRYPTED : 0, .offset = offset, .size = size };
        memcpy (req.magic, CAPSA_IMGSRV_MAGIC, sizeof (req.magic));
        int fds[3] = { fusefd, filefd, -1 };
        if (encrypted && (fds[2] = key_copy (keyfd)) < 0)
            return capsa_error_make (err, errno, "cannot pass the key to the image server");
        enum join_result j = try_join (dirfd, name, &req, fds, encrypted ? 3 : 2, &answer);
        if (fds[2] >= 0)
            close (fds[2]);
        if (j == JOIN_SERVED) {
            *how = IMGSRV_HOW_JOINED;
            show (c, answer.text);
            return 0;
        }
        if (j == JOIN_REFUSED && answer.code == IMGSRV_KEY_ERROR)
            return capsa_error_code (err, EKEYREJECTED, "%s", answer.text);
        if (j == JOIN_REFUSED && answer.code != IMGSRV_BUSY) {
            why = answer.code == IMGSRV_NOT_KEY     ? "its server of this image holds another key"
                  : answer.code == IMGSRV_NOT_IMAGE ? "its server's image is not this file"
                                                    : "its server refused the connection";
            break;
        }
        if (j == JOIN_REFUSED) {
            /* Stopping as we came: its successor starts below. */
            struct timespec ts = { 0, 10 * 1000 * 1000 };
            nanosleep (&ts, NULL);
        }
        /* No server: start one, unless another container just did. */
        cleanup_close int lk = lock_rundir (dirfd);
        if (lk < 0) {
            why = "its lock could not be taken";
            break;
        }
        if (encrypted && (fds[2] = key_copy (keyfd)) < 0)
            return capsa_error_make (err, errno, "cannot pass the key to the image server");
        j = try_join (dirfd, name, &req, fds, encrypted ? 3 : 2, &answer);
        if (j == JOIN_NO_SERVER) {
            /* A socket nobody listens on is a dead server's. */
            unlinkat (dirfd, name, 0);
            pid_t p = spawn (c, fusefd, filefd, fds[2], offset, size, dirfd, name, &answer, err);
            if (fds[2] >= 0)
                close (fds[2]);
            if (p < 0)
                return -1;
            *how = IMGSRV_HOW_STARTED;
            show (c, answer.text);
            return 0;
        }
        if (fds[2] >= 0)
            close (fds[2]);
        if (j == JOIN_SERVED) {
            *how = IMGSRV_HOW_JOINED;
            show (c, answer.text);
            return 0;
        }
        if (answer.code == IMGSRV_KEY_ERROR)
            return capsa_error_code (err, EKEYREJECTED, "%s", answer.text);
    }
    if (dirfd < 0)
        verbosef ("image server: not shared: the runtime directory %s cannot be used (%s)", dir ? dir : "?", why);
    else if (why)
        verbosef ("image server: not shared: %s", why);
    int k = encrypted ? key_copy (keyfd) : -1;
    if (encrypted && k < 0)
        return capsa_error_make (err, errno, "cannot pass the key to the image server");
    pid_t p = spawn (c, fusefd, filefd, k, offset, size, -1, NULL, &answer, err);
    if (k >= 0)
        close (k);
    if (p < 0)
        return -1;
    *pid = p;
    *how = IMGSRV_HOW_PRIVATE;
    show (c, answer.text);
    return 0;
}
