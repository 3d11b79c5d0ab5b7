/* Build processes, namespaces and signals: see proc.h. */
#include "imgbuild/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/utils.h"
#include "runtime/fakeroot.h"
#include "runtime/idmap.h"
#include "runtime/mount.h"
#include "runtime/rootfs.h"

extern char **environ;

/* ---- signals --------------------------------------------------------------- */

static volatile sig_atomic_t interrupted_by;
static volatile pid_t running_child;
static struct sigaction saved_int, saved_term, saved_hup;

static void
on_signal (int sig)
{
    if (interrupted_by == 0)
        interrupted_by = sig;
    if (running_child > 0)
        kill (running_child, SIGKILL);
}

void
build_signals_begin (void)
{
    struct sigaction sa;

    memset (&sa, 0, sizeof (sa));
    sa.sa_handler = on_signal;
    sigemptyset (&sa.sa_mask);
    /* No SA_RESTART: a wait or a read returns EINTR so the build notices. */
    sigaction (SIGINT, &sa, &saved_int);
    sigaction (SIGTERM, &sa, &saved_term);
    sigaction (SIGHUP, &sa, &saved_hup);
}

void
build_signals_end (void)
{
    sigaction (SIGINT, &saved_int, NULL);
    sigaction (SIGTERM, &saved_term, NULL);
    sigaction (SIGHUP, &saved_hup, NULL);
}

int
build_interrupted (void)
{
    return interrupted_by;
}

int
build_check_interrupted (capsa_error_t *err)
{
    int sig = interrupted_by;
    if (sig == 0)
        return 0;
    return capsa_error_make (err, 0, "build interrupted by %s",
                             sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "a signal");
}

const char *
build_status_text (int status, char *buf, size_t len)
{
    if (status > 128 && status < 128 + 65)
        snprintf (buf, len, "killed by signal %d (%s)", status - 128, strsignal (status - 128));
    else
        snprintf (buf, len, "exit status %d", status);
    return buf;
}

/* ---- output tail ----------------------------------------------------------- */

void
build_tail_push (struct build_tail *t, const char *line)
{
    free (t->line[t->next]);
    t->line[t->next] = xstrdup (line);
    t->next = (t->next + 1) % BUILD_TAIL_LINES;
    if (t->count < BUILD_TAIL_LINES)
        t->count++;
}

char *
build_tail_text (const struct build_tail *t)
{
    size_t first = (t->next + BUILD_TAIL_LINES - t->count) % BUILD_TAIL_LINES, total = 1;
    char *out;

    for (size_t i = 0; i < t->count; i++)
        total += strlen (t->line[(first + i) % BUILD_TAIL_LINES]) + 1;
    out = xmalloc (total);
    out[0] = '\0';
    for (size_t i = 0; i < t->count; i++) {
        if (i > 0)
            strcat (out, "\n");
        strcat (out, t->line[(first + i) % BUILD_TAIL_LINES]);
    }
    return out;
}

void
build_tail_free (struct build_tail *t)
{
    for (size_t i = 0; i < BUILD_TAIL_LINES; i++)
        free (t->line[i]);
    memset (t, 0, sizeof (*t));
}

/* ---- the child side --------------------------------------------------------- */

/* Report a failure of the child to the parent through the error pipe
 * (one message) and end the child.  Only async-signal-safe calls. */
static noreturn void
child_fail (int errfd, int errnum, const char *what)
{
    char buf[512];
    if (errnum != 0)
        snprintf (buf, sizeof (buf), "%s: %s", what, strerror (errnum));
    else
        snprintf (buf, sizeof (buf), "%s", what);
    if (errfd >= 0 && write (errfd, buf, strlen (buf)) < 0) {
        /* nothing more to do */
    }
    _exit (255);
}

static noreturn void
child_fail_err (int errfd, capsa_error_t *err)
{
    char what[512];
    snprintf (what, sizeof (what), "cannot prepare the build container: %s", (*err) && (*err)->msg ? (*err)->msg : "error");
    child_fail (errfd, 0, what);
}

static void
child_reset_signals (void)
{
    struct sigaction sa;
    sigset_t none;

    memset (&sa, 0, sizeof (sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset (&sa.sa_mask);
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);
    sigaction (SIGHUP, &sa, NULL);
    sigaction (SIGPIPE, &sa, NULL);
    sigemptyset (&none);
    sigprocmask (SIG_SETMASK, &none, NULL);
}

/* The new root: bound onto itself (pivot_root wants a mount), then /proc,
 * /sys and a small /dev made by the runtime's own code
 * (src/runtime/rootfs.h), the host's resolv.conf, pivot_root. */
static int
setup_root (const char *rootfs, bool userns, capsa_error_t *err)
{
    cleanup_close int rootfd = -1;
    capsa_error_t ignore = NULL;

    if (mount (rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        return capsa_error_make (err, errno, "bind %s", rootfs);
    rootfd = open (rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return capsa_error_make (err, errno, "open %s", rootfs);

    if (capsa_rootfs_mount_proc (rootfd, true, err) < 0) {
        /* A user namespace may not mount procfs where the host's has
         * parts masked (inside another container): bind the host's. */
        if (!userns)
            return -1;
        capsa_error_free (err);
        if (capsa_rootfs_bind_proc (rootfd, true, err) < 0)
            return -1;
    }
    /* A user namespace may not mount sysfs without its own network
     * namespace: the host's, read-only where the kernel lets us. */
    if (capsa_rootfs_mount_sys (rootfd, !userns, true, err) < 0) {
        if (!userns)
            return -1;
        capsa_error_free (err);
        cleanup_close int s = open ("/sys", O_PATH | O_DIRECTORY | O_CLOEXEC);
        cleanup_close int t = capsa_make_in_root (rootfd, "sys", NODE_DIR, err);
        if (s < 0 || t < 0 || capsa_bind_fd (s, t, true, 0, "/sys", err) < 0)
            return s < 0 ? capsa_error_make (err, errno, "open /sys") : -1;
    }
    /* Package scripts may add to /dev while building: it stays writable. */
    if (capsa_rootfs_setup_dev (rootfd, DEV_SHM_PRIVATE | DEV_OPTIONAL | DEV_CREATE | DEV_WRITABLE, "65536k", NULL, err) < 0)
        return -1;

    /* Name resolution for package managers.  An image whose resolv.conf is
     * a dangling symlink simply goes without. */
    if (access ("/etc/resolv.conf", R_OK) == 0) {
        cleanup_close int s = open ("/etc/resolv.conf", O_PATH | O_CLOEXEC);
        cleanup_close int t = capsa_make_in_root (rootfd, "etc/resolv.conf", NODE_FILE, &ignore);
        if (s < 0 || t < 0 || capsa_bind_fd (s, t, false, 0, "/etc/resolv.conf", &ignore) < 0)
            capsa_error_free (&ignore);
    }
    return capsa_rootfs_pivot (rootfd, err);
}

static noreturn void
child_exec (const struct build_proc *p, int out_fd, int null_fd, int errfd)
{
    child_reset_signals ();
    if (null_fd >= 0 && dup2 (null_fd, STDIN_FILENO) < 0)
        child_fail (errfd, errno, "dup2");
    if (out_fd >= 0 && (dup2 (out_fd, STDOUT_FILENO) < 0 || dup2 (out_fd, STDERR_FILENO) < 0))
        child_fail (errfd, errno, "dup2");
    if (p->cwd != NULL && chdir (p->cwd) < 0)
        child_fail (errfd, errno, p->cwd);
    umask (022);
    execvpe (p->argv[0], (char *const *) p->argv, p->envp ? (char *const *) p->envp : environ);
    int e = errno;
    char what[300];
    snprintf (what, sizeof (what), "cannot run %s", p->argv[0]);
    child_fail (errfd, e, what);
}

/* PID 1 of the new namespaces: prepare, start the program, reap. */
static noreturn void
child_init (const struct build_proc *p, int sync_fd, int out_fd, int errfd)
{
    capsa_error_t err = NULL;
    int null_fd = -1, status;
    pid_t pid;

    child_reset_signals ();
    if (sync_fd >= 0) {
        char c;
        /* Wait until the parent has written our uid and gid maps. */
        if (read (sync_fd, &c, 1) != 1)
            _exit (255);
        close (sync_fd);
    }
    if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        child_fail (errfd, errno, "cannot prepare the build container: make the mount namespace private");
    if (p->null_stdin && (null_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
        child_fail (errfd, errno, "cannot open /dev/null");
    if (p->rootfs != NULL && setup_root (p->rootfs, (p->flags & BP_FAKEROOT) != 0, &err) < 0)
        child_fail_err (errfd, &err);

    pid = fork ();
    if (pid < 0)
        child_fail (errfd, errno, "cannot fork");
    if (pid == 0)
        child_exec (p, out_fd, null_fd, errfd);
    close (errfd);
    if (out_fd >= 0)
        close (out_fd);
    /* Reap everything (orphans come to PID 1); end with the program. */
    for (;;) {
        pid_t r = wait (&status);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            _exit (255);
        }
        if (r == pid)
            _exit (WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status));
    }
}

/* ---- the parent side -------------------------------------------------------- */

static struct capsa_subid fakeroot_uids, fakeroot_gids;

void
build_proc_set_fakeroot_ranges (const struct capsa_subid *uids, const struct capsa_subid *gids)
{
    memset (&fakeroot_uids, 0, sizeof (fakeroot_uids));
    memset (&fakeroot_gids, 0, sizeof (fakeroot_gids));
    if (uids)
        fakeroot_uids = *uids;
    if (gids)
        fakeroot_gids = *gids;
}

/* --fakeroot: root inside is the caller outside, with the ranges found. */
static int
write_maps (pid_t pid, capsa_error_t *err)
{
    if (capsa_fakeroot_write_maps (pid, getuid (), getgid (), &fakeroot_uids, &fakeroot_gids, err) < 0)
        return capsa_error_wrap (err, "map root to uid %u in a user namespace (--fakeroot)", (unsigned) getuid ());
    return 0;
}

struct line_buf {
    char *buf;
    size_t len;
};

static void
deliver_lines (const struct build_proc *p, struct line_buf *lb, bool flush)
{
    size_t start = 0;
    for (size_t i = 0; i < lb->len; i++) {
        /* Progress bars redraw with '\r': treat it as a line end too. */
        if (lb->buf[i] == '\n' || lb->buf[i] == '\r') {
            lb->buf[i] = '\0';
            if (i > start)
                p->on_line (lb->buf + start, p->data);
            start = i + 1;
        }
    }
    if (flush && start < lb->len) {
        lb->buf[lb->len] = '\0';
        p->on_line (lb->buf + start, p->data);
        start = lb->len;
    }
    memmove (lb->buf, lb->buf + start, lb->len - start);
    lb->len -= start;
}

int
build_proc_run (const struct build_proc *p, int *status, capsa_error_t *err)
{
    bool ns = p->rootfs != NULL || (p->flags & (BP_NAMESPACES | BP_FAKEROOT)) != 0;
    int errpipe[2] = { -1, -1 }, syncpipe[2] = { -1, -1 }, outpipe[2] = { -1, -1 };
    pid_t parent = getpid (), pid;
    int wstatus = 0, ret = -1;
    struct line_buf lb = { NULL, 0 };
    char msg[512];
    ssize_t n;

    *status = 255;
    if (build_check_interrupted (err) < 0)
        return -1;
    if (pipe2 (errpipe, O_CLOEXEC) < 0 || ((p->flags & BP_FAKEROOT) && pipe2 (syncpipe, O_CLOEXEC) < 0)
        || (p->on_line && pipe2 (outpipe, O_CLOEXEC) < 0)) {
        capsa_error_make (err, errno, "pipe");
        goto out;
    }
    int out_fd = p->on_line ? outpipe[1] : p->out_fd;
    fflush (NULL);
    if (ns) {
        unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | SIGCHLD;
        if (p->flags & BP_FAKEROOT)
            flags |= CLONE_NEWUSER;
        pid = (pid_t) syscall (SYS_clone, flags, NULL, NULL, NULL, NULL);
    } else {
        pid = fork ();
    }
    if (pid < 0) {
        capsa_error_make (err, errno, "cannot start %s%s", p->argv[0],
                          (p->flags & BP_FAKEROOT) ? " in a user namespace (--fakeroot)" : "");
        goto out;
    }
    if (pid == 0) {
        prctl (PR_SET_PDEATHSIG, SIGKILL);
        /* (In a new PID namespace the parent is invisible: getppid() is 0.) */
        if (getppid () != (ns ? 0 : parent))
            _exit (255);
        close (errpipe[0]);
        if (outpipe[0] >= 0)
            close (outpipe[0]);
        if (syncpipe[1] >= 0)
            close (syncpipe[1]);
        if (ns)
            child_init (p, syncpipe[0], out_fd, errpipe[1]);
        child_exec (p, out_fd, p->null_stdin ? open ("/dev/null", O_RDONLY | O_CLOEXEC) : -1, errpipe[1]);
    }
    running_child = pid;
    if (interrupted_by)
        kill (pid, SIGKILL);
    close (errpipe[1]);
    errpipe[1] = -1;
    if (outpipe[1] >= 0) {
        close (outpipe[1]);
        outpipe[1] = -1;
    }
    if (syncpipe[0] >= 0) {
        close (syncpipe[0]);
        syncpipe[0] = -1;
        capsa_error_t maperr = NULL;
        if (write_maps (pid, &maperr) < 0) {
            kill (pid, SIGKILL);
            waitpid (pid, NULL, 0);
            running_child = 0;
            *err = maperr;
            goto out;
        }
        if (write (syncpipe[1], "x", 1) != 1) {
            /* the child died: waitpid tells */
        }
        close (syncpipe[1]);
        syncpipe[1] = -1;
    }

    /* Read the output (when asked) until the child is gone. */
    bool exited = false;
    if (outpipe[0] >= 0) {
        lb.buf = xmalloc (8192 + 1);
        for (;;) {
            struct pollfd pfd = { .fd = outpipe[0], .events = POLLIN };
            int r = poll (&pfd, 1, 200);
            if (r > 0) {
                n = read (outpipe[0], lb.buf + lb.len, 8192 - lb.len);
                if (n > 0) {
                    lb.len += (size_t) n;
                    if (lb.len == 8192) {
                        /* an endless line: hand it over in pieces */
                        lb.buf[lb.len] = '\0';
                        p->on_line (lb.buf, p->data);
                        lb.len = 0;
                    }
                    deliver_lines (p, &lb, false);
                    continue;
                }
                if (n == 0 || (errno != EINTR && errno != EAGAIN))
                    break;
            }
            /* A grandchild may keep the pipe open: stop with the child. */
            pid_t w = waitpid (pid, &wstatus, WNOHANG);
            if (w == pid) {
                exited = true;
                fcntl (outpipe[0], F_SETFL, O_NONBLOCK);
                while ((n = read (outpipe[0], lb.buf + lb.len, 8192 - lb.len)) > 0) {
                    lb.len += (size_t) n;
                    deliver_lines (p, &lb, lb.len == 8192);
                }
                break;
            }
        }
        deliver_lines (p, &lb, true);
    }
    while (!exited) {
        pid_t w = waitpid (pid, &wstatus, 0);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            capsa_error_make (err, errno, "wait for %s", p->argv[0]);
            running_child = 0;
            goto out;
        }
    }
    running_child = 0;
    *status = WIFEXITED (wstatus) ? WEXITSTATUS (wstatus) : 128 + WTERMSIG (wstatus);

    if (build_check_interrupted (err) < 0)
        goto out;
    /* Setup failures and exec failures come with a message. */
    n = read (errpipe[0], msg, sizeof (msg) - 1);
    if (n > 0) {
        msg[n] = '\0';
        capsa_error_make (err, 0, "%s", msg);
        goto out;
    }
    ret = 0;
out:
    free (lb.buf);
    for (int i = 0; i < 2; i++) {
        if (errpipe[i] >= 0)
            close (errpipe[i]);
        if (syncpipe[i] >= 0)
            close (syncpipe[i]);
        if (outpipe[i] >= 0)
            close (outpipe[i]);
    }
    return ret;
}

int
build_proc_remove_fakeroot (const char *path, capsa_error_t *err)
{
    const char *argv[] = { "rm", "-rf", "--one-file-system", "--", path, NULL };
    struct build_proc p = { .argv = argv, .flags = BP_FAKEROOT, .null_stdin = true, .out_fd = -1 };
    int status;
    sig_atomic_t was = interrupted_by;
    interrupted_by = 0;
    int r = build_proc_run (&p, &status, err);
    interrupted_by = was;
    if (r == 0 && status != 0)
        r = capsa_error_make (err, 0, "cannot remove %s (rm exit status %d)", path, status);
    return r;
}
