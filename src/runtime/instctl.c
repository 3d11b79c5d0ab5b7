/* Instances: `starter instance list|stop` (capsa instance list, stop,
 * and the records stats reads).  Root's records first (root and setuid
 * instances), with root's identity only around each access; then,
 * root given up for good, the owner's own records (user-namespace
 * instances).  See instance.h. */
#include "runtime/instance_int.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "runtime/privs.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

struct target {
    struct capsa_inst_state st;
    int pidfd;         /* of the init, to signal it without a race; -1 if none */
    bool running;      /* the init, when listed */
    bool init_up, mon_up;
};

/* Does the process PID, started at START, still run?  (Its number may
 * be another process's by now: the start time tells.) */
static bool
proc_alive (pid_t pid, uint64_t start, bool priv)
{
    struct inst_proc pi;
    if (priv)
        capsa_privs_state_begin ();
    int fd = inst_open_proc (pid, NULL);
    bool alive = fd >= 0 && inst_proc_info (fd, &pi, NULL) == 0 && !inst_ended (pi.state) && pi.start == start;
    if (fd >= 0)
        close (fd);
    if (priv)
        capsa_privs_state_end ();
    return alive;
}

/* A pidfd of the init of T, checked after it is open (so that it is that
 * process and no later one with its number); -1 if it has ended or the
 * kernel has no pidfd_open (Linux < 5.3: then kill() after a check). */
static int
pidfd_of (const struct target *t, bool priv)
{
    int fd = (int) syscall (SYS_pidfd_open, t->st.pid, 0);
    if (fd >= 0 && !proc_alive (t->st.pid, t->st.start, priv)) {
        close (fd);
        return -1;
    }
    return fd;
}

static void
send_signal (struct target *t, int sig, bool priv)
{
    int r;
    if (t->pidfd >= 0)
        r = (int) syscall (SYS_pidfd_send_signal, t->pidfd, sig, NULL, 0);
    else if (proc_alive (t->st.pid, t->st.start, priv))
        r = kill (t->st.pid, sig);
    else
        return;
    if (r < 0 && errno != ESRCH)
        warnf ("cannot signal instance %s: %s", t->st.name, strerror (errno));
}

static double
monotonic (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (double) now.tv_sec + (double) now.tv_nsec / 1e9;
}

/* Until DEADLINE, wait for the inits (or the monitors, MONITORS) still
 * marked up to end; returns how many are left. */
static size_t
wait_ended (struct target *t, size_t n, bool monitors, double deadline, bool priv)
{
    for (;;) {
        size_t left = 0;
        for (size_t i = 0; i < n; i++) {
            bool *up = monitors ? &t[i].mon_up : &t[i].init_up;
            if (!*up)
                continue;
            *up = monitors ? proc_alive (t[i].st.monitor, t[i].st.monitor_start, priv)
                           : proc_alive (t[i].st.pid, t[i].st.start, priv);
            left += *up;
        }
        if (left == 0 || monotonic () >= deadline)
            return left;
        usleep (20000);
    }
}

/* Stop the running targets: SIG to each init, up to TIMEOUT seconds for
 * them to end, then SIGKILL; then wait for their monitors (which stop the
 * FUSE servers once their container has ended), killed after a while. */
static void
stop_targets (struct target *t, size_t n, int sig, long timeout, bool priv)
{
    for (size_t i = 0; i < n; i++) {
        if (!t[i].init_up)
            continue;
        infof ("stopping instance %s (image %s, init pid %d)", t[i].st.name, t[i].st.image, (int) t[i].st.pid);
        send_signal (&t[i], sig, priv);
    }
    if (wait_ended (t, n, false, monotonic () + (double) timeout, priv) > 0) {
        for (size_t i = 0; i < n; i++) {
            if (!t[i].init_up)
                continue;
            infof ("killing instance %s (init pid %d): still running after %ld s", t[i].st.name, (int) t[i].st.pid,
                   timeout);
            send_signal (&t[i], SIGKILL, priv);
        }
        wait_ended (t, n, false, monotonic () + 10, priv);
    }
    /* fuse2fs may write its cache back before the monitor ends. */
    if (wait_ended (t, n, true, monotonic () + (timeout > 10 ? (double) timeout : 10.0), priv) > 0) {
        for (size_t i = 0; i < n; i++) {
            if (!t[i].mon_up || !proc_alive (t[i].st.monitor, t[i].st.monitor_start, priv))
                continue;
            warnf ("instance %s: its monitor (pid %d) did not end; killing it", t[i].st.name, (int) t[i].st.monitor);
            /* Through a pidfd checked after it is open, as for the init:
             * never a later process that got the number. */
            int mfd = (int) syscall (SYS_pidfd_open, t[i].st.monitor, 0);
            if (mfd >= 0) {
                if (proc_alive (t[i].st.monitor, t[i].st.monitor_start, priv))
                    syscall (SYS_pidfd_send_signal, mfd, SIGKILL, NULL, 0);
                close (mfd);
            } else if (errno == ENOSYS) {
                kill (t[i].st.monitor, SIGKILL);
            }
        }
        wait_ended (t, n, true, monotonic () + 5, priv);
    }
}

struct cmd {
    bool stop, all;
    int sig;
    long timeout;
    const char *pattern;
    size_t matched, failed;
};

/* List or stop WHO's instances whose records are in DIRFD and match;
 * PRIV: root's directory (setuid mode: state brackets around each
 * access), else WHO's own. */
static int
act_on_dir (struct cmd *cmd, int dirfd, uid_t who, bool priv, capsa_error_t *err)
{
    struct strv names = { 0 };
    if (priv)
        capsa_privs_state_begin ();
    int dup_fd = dup (dirfd);
    DIR *d = dup_fd >= 0 ? fdopendir (dup_fd) : NULL;
    if (d == NULL) {
        int e = errno;
        if (dup_fd >= 0)
            close (dup_fd);
        if (priv)
            capsa_privs_state_end ();
        return capsa_error_make (err, e, "cannot read the instance directory");
    }
    for (struct dirent *e = readdir (d); e; e = readdir (d))
        if (e->d_name[0] != '.' && capsa_inst_name_valid (e->d_name) && fnmatch (cmd->pattern, e->d_name, 0) == 0)
            strv_push (&names, e->d_name);
    closedir (d);

    struct target *t = xcalloc (names.n + 1, sizeof (*t));
    size_t n = 0;
    for (size_t i = 0; i < names.n; i++) {
        capsa_error_t e = NULL;
        struct target *x = &t[n];
        x->pidfd = -1;
        if (inst_state_read (dirfd, names.v[i], who, priv, &x->st, &e) < 0) {
            if (e && e->code != ENOENT) {
                warnf ("removing a damaged instance record: %s", e->msg);
                unlinkat (dirfd, names.v[i], 0);
            }
            capsa_error_free (&e);
            continue;
        }
        x->running = inst_running (&x->st, NULL) == 1;
        n++;
    }
    if (priv)
        capsa_privs_state_end ();
    cmd->matched += n;

    bool *keep = xcalloc (n + 1, sizeof (bool));
    if (!cmd->stop) {
        for (size_t i = 0; i < n; i++) {
            t[i].st.has_state = true;
            t[i].st.running = t[i].running;
            cleanup_free char *text = capsa_inst_state_format (&t[i].st);
            fputs (text, stdout);
            keep[i] = t[i].running;
        }
        fflush (stdout);
    } else {
        for (size_t i = 0; i < n; i++) {
            t[i].pidfd = t[i].running ? pidfd_of (&t[i], priv) : -1;
            t[i].init_up = t[i].running;
            t[i].mon_up = t[i].running;
        }
        stop_targets (t, n, cmd->sig, cmd->timeout, priv);
        for (size_t i = 0; i < n; i++) {
            if (t[i].pidfd >= 0)
                close (t[i].pidfd);
            /* A record goes only once nothing of it runs. */
            if (t[i].running && (proc_alive (t[i].st.pid, t[i].st.start, priv)
                                 || proc_alive (t[i].st.monitor, t[i].st.monitor_start, priv))) {
                errorf ("instance %s could not be stopped", t[i].st.name);
                keep[i] = true;
                cmd->failed++;
            }
        }
    }

    /* Records of what inst_ended (or was just stopped) go. */
    if (priv)
        capsa_privs_state_begin ();
    for (size_t i = 0; i < n; i++) {
        if (keep[i])
            continue;
        if (!t[i].running && !cmd->stop)
            debugf ("instance %s has ended: its record is removed", t[i].st.name);
        /* Removed only if it is still this record (not a new instance of
         * the same name started meanwhile). */
        struct capsa_inst_state now;
        if (inst_state_read (dirfd, t[i].st.name, who, priv, &now, NULL) == 0) {
            if (now.pid == t[i].st.pid && now.start == t[i].st.start)
                unlinkat (dirfd, t[i].st.name, 0);
            capsa_inst_state_free (&now);
        }
    }
    if (priv)
        capsa_privs_state_end ();
    for (size_t i = 0; i < n; i++) {
        if (cmd->stop && !t[i].running)
            infof ("instance %s had already ended; its record is removed", t[i].st.name);
        capsa_inst_state_free (&t[i].st);
    }
    free (keep);
    free (t);
    strv_free (&names);
    return 0;
}

static int
parse_signal (const char *s)
{
    long n;
    if (parse_long (s, 1, 64, &n) == 0)
        return (int) n;
    return -1;
}

int
capsa_instance_command (int argc, char **argv, struct capsa_conf *conf, bool setuid_install, uid_t uid, gid_t gid)
{
    static const struct option longopts[] = {
        { "user", required_argument, NULL, 'u' },   { "all", no_argument, NULL, 'a' },
        { "signal", required_argument, NULL, 's' }, { "timeout", required_argument, NULL, 't' },
        { NULL, 0, NULL, 0 },
    };
    capsa_error_t err = NULL;
    struct cmd cmd = { .sig = SIGINT, .timeout = 10, .pattern = "*" };
    const char *user = NULL;
    int c;

    (void) conf;
    if (argc < 2 || (strcmp (argv[1], "list") != 0 && strcmp (argv[1], "stop") != 0))
        capsa_die ("usage: starter instance list|stop [--user=NAME] [--all] [--signal=N] [--timeout=S] [PATTERN]");
    cmd.stop = strcmp (argv[1], "stop") == 0;
    optind = 0;
    opterr = 0;
    argc--;
    argv++;
    while ((c = getopt_long (argc, argv, "+", longopts, NULL)) != -1) {
        long v;
        switch (c) {
        case 'u':
            user = optarg;
            break;
        case 'a':
            cmd.all = true;
            break;
        case 's':
            if ((cmd.sig = parse_signal (optarg)) < 0)
                capsa_die ("invalid --signal '%s'", optarg);
            break;
        case 't':
            if (parse_long (optarg, 0, 86400, &v) < 0)
                capsa_die ("invalid --timeout '%s' (seconds)", optarg);
            cmd.timeout = v;
            break;
        default:
            capsa_die ("unknown option '%s' for 'starter instance'", argv[optind - 1]);
        }
    }
    bool named = optind < argc;
    if (optind < argc)
        cmd.pattern = argv[optind++];
    if (optind < argc)
        capsa_die ("unexpected argument '%s'", argv[optind]);
    if (cmd.stop && !cmd.all && !named)
        capsa_die ("stop: name an instance, or give --all");
    if (cmd.all)
        cmd.pattern = "*";

    /* Whose instances. */
    struct capsa_user target = { .uid = uid, .gid = gid };
    struct passwd *pw = user ? getpwnam (user) : getpwuid (uid);
    if (user && uid != 0)
        capsa_die ("only root may list or stop another user's instances (--user)");
    if (pw == NULL)
        capsa_die ("user %s is not in the password database", user ? user : "(caller)");
    target.uid = pw->pw_uid;
    target.gid = pw->pw_gid;
    target.name = xstrdup (pw->pw_name);
    target.home = xstrdup (pw->pw_dir && pw->pw_dir[0] == '/' ? pw->pw_dir : "/");

    /* 1. Root's records (root and setuid instances). */
    if (uid == 0 || setuid_install) {
        capsa_privs_state_begin ();
        int dfd = inst_root_state_dir (target.uid, false, &err);
        capsa_privs_state_end ();
        if (dfd >= 0) {
            int r = act_on_dir (&cmd, dfd, target.uid, true, &err);
            close (dfd);
            if (r < 0)
                capsa_error_fatal (&err);
        } else if (err && err->code != ENOENT) {
            capsa_error_fatal (&err);
        }
        capsa_error_free (&err);
    }
    /* 2. Nothing privileged is left to do: the owner's own records
     *    (user-namespace instances), read as the owner for good. */
    if (target.uid != 0) {
        if (uid == 0) {
            if (capsa_privs_helper_drop (MODE_ROOT, target.uid, target.gid, &err) < 0)
                capsa_error_fatal (&err);
        } else if (setuid_install && capsa_privs_init (MODE_USERNS, uid, gid, &err) < 0) {
            capsa_error_fatal (&err);
        }
        int dfd = inst_user_dir (&target, "state", false, &err);
        if (dfd >= 0) {
            int r = act_on_dir (&cmd, dfd, target.uid, false, &err);
            close (dfd);
            if (r < 0)
                capsa_error_fatal (&err);
        } else if (err && err->code != ENOENT) {
            capsa_error_fatal (&err);
        }
        capsa_error_free (&err);
    }
    if (cmd.stop && cmd.matched == 0)
    {
        if (cmd.all)
            capsa_die ("no instance to stop");
        capsa_die ("no instance matches %s", cmd.pattern);
    }
    return cmd.failed > 0 ? CAPSA_EXIT_FATAL : 0;
}
