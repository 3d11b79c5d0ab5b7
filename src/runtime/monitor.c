/* The monitor: the starter's own process, which creates the container's
 * namespaces with clone(), gives root up for good right after, writes the
 * id maps of a user namespace, starts the FUSE servers the child asks for
 * (fusebroker.c), forwards signals and waits.  Its exit status is the
 * command's (128+N after signal N). */
#include "runtime/container.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "runtime/fusebroker.h"
#include "runtime/idmap.h"
#include "runtime/instance.h"
#include "runtime/privs.h"

static volatile sig_atomic_t child_pid;

static void
forward_signal (int sig, siginfo_t *si, void *ctx)
{
    /* A signal from the terminal reaches the whole process group already;
     * only forward what someone sent to us alone. */
    if (child_pid > 0 && si->si_code != SI_KERNEL)
        kill (child_pid, sig);
}

/* One id each: the caller's own, seen inside as itself or as the
 * --security uid/gid. */
static int
write_maps (pid_t pid, const struct capsa_user *u, const struct capsa_opts *o, capsa_error_t *err)
{
    char uid_map[64], gid_map[64];
    unsigned long inside_uid = o->target_uid >= 0 ? (unsigned long) o->target_uid : u->uid;
    unsigned long inside_gid = o->ntarget_gids > 0 ? o->target_gids[0] : u->gid;
    snprintf (uid_map, sizeof (uid_map), "%lu %u 1\n", inside_uid, u->uid);
    snprintf (gid_map, sizeof (gid_map), "%lu %u 1\n", inside_gid, u->gid);
    return capsa_write_id_maps (pid, uid_map, gid_map, err);
}

int
capsa_container_run (struct capsa_container *c, capsa_error_t *err)
{
    struct capsa_opts *o = c->opts;
    int sv[2];
    int flags = CLONE_NEWNS | SIGCHLD;
    pid_t pid;
    int status = 0;

    if (o->pid_ns) {
        if (!c->conf->allow_pid_ns && c->mode != MODE_ROOT)
            return capsa_error_make (err, 0, "--pid is disabled by the administrator ('allow pid ns = no')");
        flags |= CLONE_NEWPID;
    }
    if (o->ipc_ns) {
        if (!c->conf->allow_ipc_ns && c->mode != MODE_ROOT)
            return capsa_error_make (err, 0, "--ipc is disabled by the administrator ('allow ipc ns = no')");
        flags |= CLONE_NEWIPC;
    }
    if (o->uts_ns) {
        if (!c->conf->allow_uts_ns && c->mode != MODE_ROOT)
            return capsa_error_make (err, 0, "--uts is disabled by the administrator ('allow uts ns = no')");
        flags |= CLONE_NEWUTS;
    }
    if (o->net_ns) {
        if (!c->conf->allow_net_ns && c->mode != MODE_ROOT)
            return capsa_error_make (err, 0, "--net is disabled by the administrator ('allow net ns = no')");
        flags |= CLONE_NEWNET;
    }
    if (c->mode == MODE_USERNS)
        flags |= CLONE_NEWUSER;

    if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return capsa_error_make (err, errno, "socketpair");

    /* Creating namespaces is the one thing the monitor needs root for. */
    if (capsa_privs_raise (c, err) < 0)
        return -1;
    pid_t monitor = getpid ();
    fflush (NULL);
    pid = (pid_t) syscall (SYS_clone, flags, NULL, NULL, NULL, NULL);
    if (pid == 0) {
        close (sv[0]);
        capsa_container_child (c, sv[1], monitor);
    }
    int clone_errno = errno;
    /* From here on the monitor never needs privilege again. */
    if (capsa_privs_drop_monitor (c, err) < 0) {
        if (pid > 0)
            kill (pid, SIGKILL);
        return -1;
    }
    close (sv[1]);
    if (pid < 0) {
        close (sv[0]);
        if (clone_errno == EINVAL || clone_errno == EPERM || clone_errno == ENOSPC || clone_errno == EUSERS)
            return capsa_error_make (err, clone_errno, "cannot create the container's namespaces%s",
                                     c->mode == MODE_USERNS ? " (are unprivileged user namespaces enabled?)" : "");
        return capsa_error_make (err, clone_errno, "clone");
    }
    child_pid = pid;

    struct sigaction sa = { .sa_sigaction = forward_signal, .sa_flags = SA_SIGINFO | SA_RESTART };
    sigemptyset (&sa.sa_mask);
    /* Those Apptainer's monitor passes on too (it forwards every signal);
     * under --pid its init passes them to the command (init.c). */
    const int fwd[] = { SIGINT,  SIGTERM, SIGHUP,  SIGQUIT, SIGUSR1, SIGUSR2, SIGCONT, SIGWINCH,
                        SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGPWR };
    for (size_t i = 0; i < ARRAY_SIZE (fwd); i++)
        sigaction (fwd[i], &sa, NULL);

    if (c->mode == MODE_USERNS) {
        if ((c->fakeroot ? capsa_fakeroot_write_maps (pid, c->user.uid, c->user.gid, &c->subuid, &c->subgid, err)
                         : write_maps (pid, &c->user, o, err))
                < 0
            || write (sv[0], "G", 1) != 1) {
            kill (pid, SIGKILL);
            waitpid (pid, NULL, 0);
            close (sv[0]);
            return capsa_error_wrap (err, "cannot set up the user namespace");
        }
    }

    /* Start the FUSE servers the child asks for, until it has exec'd or
     * died (the socket closes on exec): the decrypting server of an
     * encrypted image, squashfuse_ll or capsa's image server (usually
     * shared, and then not the monitor's), and in a user namespace fuse2fs
     * for ext3 overlays and fuse-overlayfs (runtime/overlay.h). */
    pid_t servers[16];
    bool flushes[16]; /* fuse2fs: let it end by itself first */
    size_t nservers = 0;
    for (;;) {
        struct capsa_fuse_request req;
        int fds[2] = { -1, -1 };
        char *data = NULL;
        int r = capsa_fuse_recv_request (sv[0], &req, fds, &data);
        if (r <= 0)
            break;
        pid_t spid = -1;
        if (nservers < ARRAY_SIZE (servers)
            && (req.server == SERVER_SQUASHFS || req.server == SERVER_CRYPT || req.server == SERVER_FUSE2FS
                || req.server == SERVER_OVERLAYFS || req.server == SERVER_IMAGE || req.server == SERVER_ETC))
            spid = capsa_fuse_spawn_server (c, pid, &req, fds[0], fds[1], data, err);
        free (data);
        close (fds[0]);
        close (fds[1]);
        if (spid < 0) {
            kill (pid, SIGKILL);
            waitpid (pid, NULL, 0);
            for (size_t k = 0; k < nservers; k++) {
                kill (servers[k], SIGTERM);
                waitpid (servers[k], NULL, 0);
            }
            close (sv[0]);
            if (*err == NULL)
                capsa_error_make (err, 0, "unexpected request from the container");
            return -1;
        }
        /* (0: a shared image server, which is not the monitor's.) */
        if (spid > 0) {
            flushes[nservers] = req.server == SERVER_FUSE2FS;
            servers[nservers++] = spid;
        }
        if (write (sv[0], "R", 1) != 1)
            break;
    }
    /* An instance (instance.h): its child runs its command; the starter
     * records it, or the child ends. */
    if (c->instance != NULL && !c->instance->join)
        capsa_instance_monitor_ready (c, pid);
    close (sv[0]);
    if (c->opts->key_fd >= 0) {
        close (c->opts->key_fd);
        c->opts->key_fd = -1;
    }

    for (;;) {
        int st;
        pid_t w = waitpid (-1, &st, 0);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (w == pid) {
            status = st;
            break;
        }
        for (size_t k = 0; k < nservers; k++) {
            if (w != servers[k])
                continue;
            servers[k] = -1;
            if (!(WIFEXITED (st) && WEXITSTATUS (st) == 0))
                warnf ("a FUSE server of the image stopped unexpectedly");
        }
    }
    child_pid = 0;
    /* Last started first: fuse-overlayfs, then fuse2fs, squashfuse_ll, the
     * decrypting server.  fuse2fs is not stopped at once: when the last
     * mount of its file system goes (the container's, then fuse-overlayfs's
     * copy, as it ends) its connection ends, and it writes its cache back
     * and exits by itself.  A SIGTERM that arrives once it has put back the
     * default signal actions on its way out kills it before that write
     * (about one run in fifteen lost its last writes).  It gets one only
     * if it is still there after 5 s. */
    for (size_t k = nservers; k-- > 0;) {
        if (servers[k] <= 0)
            continue;
        for (int t = 0; flushes[k] && t < 500; t++) {
            pid_t w = waitpid (servers[k], NULL, WNOHANG);
            if (w == servers[k] || (w < 0 && errno != EINTR)) {
                servers[k] = -1;
                break;
            }
            struct timespec ts = { 0, 10 * 1000 * 1000 };
            nanosleep (&ts, NULL);
        }
        if (servers[k] > 0) {
            kill (servers[k], SIGTERM);
            waitpid (servers[k], NULL, 0);
        }
    }
    if (WIFSIGNALED (status))
        return 128 + WTERMSIG (status);
    return WEXITSTATUS (status);
}
