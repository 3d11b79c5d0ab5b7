/* Instances: start and join.  See instance.h for the design and
 * SECURITY.md ("Instances") for why; the records are handled by
 * inststore.c, list and stop by instctl.c.
 *
 * Privilege: in setuid mode everything that touches root's state
 * directory or /proc/PID of a process a record names runs between
 * capsa_privs_state_begin/end (root's effective ids; the paths are fixed:
 * CAPSA_RUNSTATEDIR, the instance's validated name, /proc/NUMBER).  What
 * the user chose (the --pid-file path, --env-file) is opened as the user,
 * and files of the user's own (the state of a user-namespace instance)
 * are read only by a process that has no privilege left. */
#include "runtime/instance_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "runtime/privs.h"

#define URI_PREFIX "instance://"
#define URI_PREFIX_LEN 11

static const int ns_clone_flag[INST_NS_COUNT] = {
    [INST_NS_MNT] = CLONE_NEWNS,   [INST_NS_PID] = CLONE_NEWPID,   [INST_NS_IPC] = CLONE_NEWIPC,
    [INST_NS_UTS] = CLONE_NEWUTS,  [INST_NS_NET] = CLONE_NEWNET,   [INST_NS_USER] = CLONE_NEWUSER,
    [INST_NS_CGROUP] = CLONE_NEWCGROUP,
};

bool
capsa_instance_is_uri (const char *image)
{
    return image != NULL && strncmp (image, URI_PREFIX, URI_PREFIX_LEN) == 0;
}

/* ---- start -------------------------------------------------------------------- */

static noreturn void
monitor_main (struct capsa_container *c)
{
    capsa_error_t e = NULL;
    /* Detached: a session of its own (no terminal, no hang-up from the
     * caller's), nothing to read. */
    setsid ();
    int null = open ("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0)
        dup2 (null, STDIN_FILENO);
    prctl (PR_SET_NAME, "capsa-instance", 0, 0, 0);
    int rc = capsa_container_run (c, &e);
    if (rc < 0)
        capsa_error_fatal (&e);
    _exit (rc);
}

void
capsa_instance_monitor_ready (struct capsa_container *c, pid_t child)
{
    struct capsa_instance *in = c->instance;
    siginfo_t si = { 0 };
    char ok = 0;
    /* Has the child inst_ended (without reaping it: the monitor's loop does)? */
    if (waitid (P_PID, (id_t) child, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == child) {
        close (in->ready_fd);
        close (in->confirm_fd);
        in->ready_fd = in->confirm_fd = -1;
        return;
    }
    dprintf (in->ready_fd, "%d\n", (int) child);
    close (in->ready_fd);
    ssize_t n;
    do
        n = read (in->confirm_fd, &ok, 1);
    while (n < 0 && errno == EINTR);
    close (in->confirm_fd);
    in->ready_fd = in->confirm_fd = -1;
    if (n != 1 || ok != 'K') {
        /* The starter could not record it (or is gone): an instance no
         * one can see must not run. */
        capsa_log (CAPSA_LOG_ERROR, "instance %s was not recorded; stopping it", in->name);
        kill (child, SIGKILL);
    }
}

/* Is every process of the cgroup CG (below the cgroup v2 hierarchy at
 * MNT) one of this instance's: the caller (the front end), the starter,
 * the monitor, or a descendant of the monitor?  Then the instance has a
 * cgroup of its own and `instance stats` can use it. */
static bool
cgroup_is_own (const char *mnt, const char *cg, pid_t frontend, pid_t monitor)
{
    cleanup_free char *path = xasprintf ("%s%s/cgroup.procs", mnt, cg);
    cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
    cleanup_free char *procs = NULL;
    if (fd < 0 || read_fd_all (fd, 1 << 20, &procs, NULL, NULL) < 0)
        return false;
    for (char *line = procs; *line;) {
        char *nl = strchr (line, '\n');
        if (nl)
            *nl = '\0';
        long p;
        if (parse_long (line, 1, 4194304, &p) < 0)
            return false;
        pid_t cur = (pid_t) p;
        bool mine = false;
        for (int depth = 0; depth < 64 && cur > 1; depth++) {
            if (cur == frontend || cur == getpid () || cur == monitor) {
                mine = true;
                break;
            }
            struct inst_proc pi;
            cleanup_close int pfd = inst_open_proc (cur, NULL);
            if (pfd < 0 || inst_proc_info (pfd, &pi, NULL) < 0)
                break;
            cur = pi.ppid;
        }
        if (!mine)
            return false;
        if (!nl)
            break;
        line = nl + 1;
    }
    return true;
}

/* The mount point of the cgroup v2 hierarchy (owned), or NULL. */
static char *
cgroup2_mount (void)
{
    cleanup_close int fd = open ("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    cleanup_free char *mi = NULL;
    if (fd < 0 || read_fd_all (fd, 16 << 20, &mi, NULL, NULL) < 0)
        return NULL;
    return capsa_cgroup2_point (mi);
}

/* Fill and write the record of the instance whose init is CPID, child of
 * the monitor P1. */
static int
record (struct capsa_container *c, int dirfd, pid_t p1, pid_t cpid, pid_t frontend, capsa_error_t *err)
{
    struct capsa_instance *in = c->instance;
    struct capsa_opts *o = c->opts;
    struct capsa_inst_state st = { 0 };
    const bool priv = c->mode != MODE_USERNS;
    struct inst_proc pi, mi;
    int r = -1;
    cleanup_free char *mnt = NULL;
    cleanup_close int procfd = -1, monfd = -1;

    st.name = xstrdup (in->name);
    st.uid = c->user.uid;
    st.user = xstrdup (c->user.name);
    st.mode = c->mode == MODE_ROOT ? INST_MODE_ROOT : c->mode == MODE_SETUID ? INST_MODE_SETUID : INST_MODE_USERNS;
    st.pid = cpid;
    st.monitor = p1;
    st.image = capsa_env_abs_path (o->image, c->host_cwd);
    st.home = capsa_env_abs_path (o->home_dst ? o->home_dst : c->user.home, "/");
    st.log_out = inst_log_path (&c->user, in->name, "out");
    st.log_err = inst_log_path (&c->user, in->name, "err");
    st.fakeroot = c->fakeroot;
    st.created = (int64_t) time (NULL);
    if (inst_boot_id (st.boot, err) < 0)
        goto out;

    /* A cgroup of its own?  (Read with the user's identity: cgroup files
     * and /proc/PID/stat are readable by everyone.) */
    mnt = cgroup2_mount ();
    {
        cleanup_close int pfd = inst_open_proc (cpid, NULL);
        cleanup_free char *cgtext = NULL;
        if (mnt && pfd >= 0 && inst_read_at (pfd, "cgroup", &cgtext, NULL) == 0) {
            char *cg = capsa_inst_parse_cgroup2 (cgtext);
            if (cg && strcmp (cg, "/") != 0 && strstr (cg, "/..") == NULL && cgroup_is_own (mnt, cg, frontend, p1))
                st.cgroup = cg;
            else
                free (cg);
        }
    }

    if (priv)
        capsa_privs_state_begin ();
    procfd = inst_open_proc (cpid, err);
    monfd = procfd < 0 ? -1 : inst_open_proc (p1, err);
    if (procfd < 0 || monfd < 0)
        goto out_priv;
    /* The init is the monitor's child (the monitor is ours, not yet
     * reaped, so its number cannot have been reused). */
    if (inst_proc_info (procfd, &pi, err) < 0 || inst_proc_info (monfd, &mi, err) < 0)
        goto out_priv;
    if (inst_ended (pi.state) || pi.ppid != p1 || inst_ended (mi.state) || mi.ppid != getpid ()) {
        capsa_error_make (err, 0, "instance %s ended while it was starting", in->name);
        goto out_priv;
    }
    st.start = pi.start;
    st.monitor_start = mi.start;
    for (int i = 0; i < INST_NS_COUNT; i++) {
        char p[32];
        snprintf (p, sizeof (p), "ns/%s", capsa_inst_ns_names[i]);
        cleanup_close int nfd = openat (procfd, p, O_RDONLY | O_CLOEXEC);
        if (nfd < 0 && errno == ENOENT)
            continue; /* a kind of namespace this kernel lacks */
        if (nfd < 0 || inst_ns_identity (nfd, &st.ns[i]) < 0) {
            capsa_error_make (err, errno, "instance %s: cannot read its namespaces", in->name);
            goto out_priv;
        }
    }
    /* Still the same process after its namespaces were read. */
    if (inst_proc_info (procfd, &pi, err) < 0 || inst_ended (pi.state) || pi.start != st.start) {
        capsa_error_make (err, 0, "instance %s ended while it was starting", in->name);
        goto out_priv;
    }
    if (flock (dirfd, LOCK_EX) < 0) {
        capsa_error_make (err, errno, "cannot lock the instance directory");
        goto out_priv;
    }
    r = inst_name_free (dirfd, in->name, c->user.uid, priv, err);
    if (r == 0)
        r = inst_state_write (dirfd, &st, err);
    flock (dirfd, LOCK_UN);
out_priv:
    if (priv)
        capsa_privs_state_end ();
out:
    capsa_inst_state_free (&st);
    return r;
}

static pid_t
read_ready (int fd)
{
    char buf[32];
    size_t n = 0;
    while (n < sizeof (buf) - 1) {
        ssize_t r = read (fd, buf + n, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return 0;
        if (buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = '\0';
    long pid;
    if (parse_long (buf, 2, 4194304, &pid) < 0)
        return 0;
    return (pid_t) pid;
}

/* --pid-file: written as the user, for good (nothing privileged is left
 * to do), never through a symbolic link. */
static void
write_pid_file (struct capsa_container *c, const char *path, pid_t pid)
{
    capsa_error_t e = NULL;
    if (c->mode == MODE_SETUID && capsa_privs_user_helper_drop (c, &e) < 0) {
        warnf ("cannot write the pid file %s: %s", path, e->msg);
        capsa_error_free (&e);
        return;
    }
    cleanup_close int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);
    if (fd < 0 || dprintf (fd, "%d\n", (int) pid) < 0)
        warnf ("cannot write the pid file %s: %s", path, strerror (errno));
}

int
capsa_instance_start (struct capsa_container *c, capsa_error_t *err)
{
    struct capsa_opts *o = c->opts;
    const bool priv = c->mode != MODE_USERNS;

    if (!capsa_inst_name_valid (o->instance))
        return capsa_error_make (err, 0, "'%s' is not a valid instance name (letters, digits, '.', '_' and '-', at most %d)",
                                 o->instance, CAPSA_INST_NAME_MAX);
    if (c->mode != MODE_ROOT && !c->conf->allow_pid_ns)
        return capsa_error_make (err, 0, "instances run in a PID namespace of their own, which the administrator "
                                         "disabled ('allow pid ns = no')");
    o->pid_ns = true;
    if (o->no_init) {
        verbosef ("--no-init: ignored, an instance always has its init");
        o->no_init = false;
    }
    struct capsa_instance *in = xcalloc (1, sizeof (*in));
    in->name = xstrdup (o->instance);
    in->pid_file = o->pid_file;
    in->ready_fd = in->confirm_fd = -1;
    for (int i = 0; i < INST_NS_COUNT; i++)
        in->nsfd[i] = -1;
    c->instance = in;

    /* The directory of the records, and the name not taken. */
    if (priv)
        capsa_privs_state_begin ();
    int dirfd = priv ? inst_root_state_dir (c->user.uid, true, err) : inst_user_dir (&c->user, "state", true, err);
    int r = -1;
    if (dirfd >= 0 && flock (dirfd, LOCK_EX) == 0) {
        r = inst_name_free (dirfd, in->name, c->user.uid, priv, err);
        flock (dirfd, LOCK_UN);
    } else if (dirfd >= 0) {
        capsa_error_make (err, errno, "cannot lock the instance directory");
    }
    if (priv)
        capsa_privs_state_end ();
    if (r < 0) {
        if (dirfd >= 0)
            close (dirfd);
        return -1;
    }

    int ready[2], confirm[2];
    if (pipe2 (ready, O_CLOEXEC) < 0 || pipe2 (confirm, O_CLOEXEC) < 0) {
        close (dirfd);
        return capsa_error_make (err, errno, "pipe");
    }
    pid_t frontend = getppid ();
    fflush (NULL);
    pid_t p1 = fork ();
    if (p1 == 0) {
        close (dirfd);
        close (ready[0]);
        close (confirm[1]);
        in->ready_fd = ready[1];
        in->confirm_fd = confirm[0];
        monitor_main (c);
    }
    close (ready[1]);
    close (confirm[0]);
    if (p1 < 0) {
        close (dirfd);
        close (ready[0]);
        close (confirm[1]);
        return capsa_error_make (err, errno, "fork");
    }
    pid_t cpid = read_ready (ready[0]);
    close (ready[0]);
    if (cpid <= 0) {
        waitpid (p1, NULL, 0);
        close (dirfd);
        close (confirm[1]);
        return capsa_error_make (err, 0, "instance %s did not start", in->name);
    }
    r = record (c, dirfd, p1, cpid, frontend, err);
    close (dirfd);
    if (r < 0) {
        kill (cpid, SIGKILL);
        close (confirm[1]);
        return -1;
    }
    if (write (confirm[1], "K", 1) != 1) {
        close (confirm[1]);
        return capsa_error_make (err, errno, "instance %s: its monitor is gone", in->name);
    }
    close (confirm[1]);
    verbosef ("instance %s: init pid %d, monitor pid %d", in->name, (int) cpid, (int) p1);
    if (in->pid_file)
        write_pid_file (c, in->pid_file, cpid);
    return 0;
}

/* ---- join ------------------------------------------------------------------ */

int
capsa_instance_join_options (struct capsa_opts *o, bool setuid_install, uid_t uid, bool allow_setuid,
                             capsa_error_t *err)
{
    const char *name = o->image + URI_PREFIX_LEN;
    if (!capsa_inst_name_valid (name))
        return capsa_error_make (err, 0, "instance://%s: not a valid instance name", name);
    if (o->instance)
        return capsa_error_make (err, 0, "an instance cannot be started from another one (instance://%s)", name);
    /* What the instance decided at its start (its mounts and namespaces)
     * cannot change: those options are left out, as in Apptainer. */
    struct {
        bool set;
        const char *what;
    } ignored[] = {
        { o->nbinds > 0, "--bind/--mount" }, { o->noverlays > 0, "--overlay" },
        { o->writable, "--writable" },      { o->writable_tmpfs, "--writable-tmpfs" },
        { o->fakeroot, "--fakeroot" },      { o->pid_ns, "--pid" },
        { o->ipc_ns, "--ipc" },             { o->uts_ns || o->hostname, "--uts/--hostname" },
        { o->net_ns, "--net" },             { o->contain, "--contain" },
        { o->home_src || o->no_home, "--home/--no-home" }, { o->no_mount != 0, "--no-mount" },
    };
    for (size_t i = 0; i < ARRAY_SIZE (ignored); i++)
        if (ignored[i].set)
            verbosef ("%s: ignored when joining instance %s (its mounts and namespaces are its own)", ignored[i].what,
                      name);
    o->nbinds = 0;
    o->noverlays = 0;
    o->writable = o->writable_tmpfs = o->fakeroot = false;
    o->pid_ns = o->ipc_ns = o->uts_ns = o->net_ns = o->contain = false;
    o->no_init = true;

    if (uid != 0 && setuid_install && allow_setuid && !o->userns) {
        capsa_privs_state_begin ();
        bool found = false;
        int dfd = inst_root_state_dir (uid, false, NULL);
        struct stat st;
        if (dfd >= 0) {
            found = fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
            close (dfd);
        }
        capsa_privs_state_end ();
        if (!found) {
            verbosef ("instance %s is not one the setuid starter started: looking for one started in a user "
                      "namespace",
                      name);
            o->userns = true;
        }
    }
    return 0;
}

/* Check the live process against the record and open the namespaces to
 * enter, by descriptor; see instance.h.  In setuid mode with the state
 * bracket held. */
static int
verify_and_open (struct capsa_container *c, struct capsa_instance *in, capsa_error_t *err)
{
    const struct capsa_inst_state *st = &in->st;
    const char *name = in->name;
    struct inst_proc pi;
    char boot[40];

    if (inst_boot_id (boot, err) < 0)
        return -1;
    if (strcmp (boot, st->boot) != 0)
        return capsa_error_make (err, 0, "instance %s is not running (it was started before the machine restarted)",
                                 name);
    cleanup_close int procfd = inst_open_proc (st->pid, NULL);
    if (procfd < 0 || inst_proc_info (procfd, &pi, NULL) < 0 || inst_ended (pi.state) || pi.start != st->start)
        return capsa_error_make (err, 0, "instance %s is not running (its init, pid %d, has ended)", name,
                                 (int) st->pid);
    if (pi.ruid != st->uid || pi.ruid != c->user.uid)
        return capsa_error_make (err, 0, "instance %s: process %d does not belong to you", name, (int) st->pid);
    if (pi.ppid != st->monitor)
        return capsa_error_make (err, 0, "instance %s: process %d is not the instance's init", name, (int) st->pid);

    for (int i = 0; i < INST_NS_COUNT; i++) {
        char p[32];
        struct capsa_inst_id id, self;
        snprintf (p, sizeof (p), "ns/%s", capsa_inst_ns_names[i]);
        int fd = openat (procfd, p, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && st->ns[i].ino == 0)
            continue;
        if (fd < 0)
            return capsa_error_make (err, errno, "instance %s: cannot open its %s namespace", name,
                                     capsa_inst_ns_names[i]);
        if (inst_ns_identity (fd, &id) < 0 || !inst_same_id (&id, &st->ns[i])) {
            close (fd);
            return capsa_error_make (err, 0, "instance %s: its %s namespace is not the one recorded when it started; "
                                             "not joining it",
                                     name, capsa_inst_ns_names[i]);
        }
        if (inst_own_ns (i, &self) == 0 && inst_same_id (&self, &id)) {
            close (fd); /* ours already: nothing to enter */
            continue;
        }
        in->nsfd[i] = fd;
    }
    /* The namespaces were those of the live process recorded, not of a
     * later one with its number. */
    if (inst_proc_info (procfd, &pi, NULL) < 0 || inst_ended (pi.state) || pi.start != st->start)
        return capsa_error_make (err, 0, "instance %s ended while it was being joined", name);
    if (in->nsfd[INST_NS_MNT] < 0 || in->nsfd[INST_NS_PID] < 0)
        return capsa_error_make (err, 0, "instance %s: process %d is not in a container", name, (int) st->pid);

    int userfd = in->nsfd[INST_NS_USER];
    if (c->mode != MODE_USERNS) {
        if (userfd >= 0)
            return capsa_error_make (err, 0, "instance %s runs in a user namespace; join it with --userns", name);
        return 0;
    }
    /* A user-namespace instance: its user namespace must be one the
     * caller made, a child of the caller's own. */
    if (userfd < 0)
        return capsa_error_make (err, 0, "instance %s has no user namespace of its own: it is not one started with "
                                         "--userns or --fakeroot",
                                 name);
    uid_t owner = (uid_t) -1;
    struct capsa_inst_id parent_id, self_user;
    cleanup_close int parent = ioctl (userfd, NS_GET_PARENT);
    if (parent < 0 || inst_ns_identity (parent, &parent_id) < 0 || inst_own_ns (INST_NS_USER, &self_user) < 0
        || !inst_same_id (&parent_id, &self_user) || ioctl (userfd, NS_GET_OWNER_UID, &owner) < 0 || owner != c->user.uid)
        return capsa_error_make (err, 0, "instance %s: its user namespace is not one you created", name);
    /* --fakeroot: the caller is root in it (the kernel's map, not the
     * record, says so). */
    cleanup_free char *map = NULL;
    if (inst_read_at (procfd, "uid_map", &map, err) < 0)
        return -1;
    char want[32];
    snprintf (want, sizeof (want), "%u", (unsigned) c->user.uid);
    for (char *l = map; l && *l; l = strchr (l, '\n') ? strchr (l, '\n') + 1 : NULL) {
        unsigned long inside, outside;
        if (sscanf (l, "%lu %lu", &inside, &outside) == 2 && inside == 0 && outside == c->user.uid)
            c->fakeroot = true;
    }
    return 0;
}

static volatile sig_atomic_t join_pid;

static void
join_forward (int sig, siginfo_t *si, void *ctx)
{
    (void) ctx;
    if (join_pid > 0 && si->si_code != SI_KERNEL)
        kill (join_pid, sig);
}

/* The joining child: the caller's files first, then the instance's
 * namespaces (the mount namespace last: it moves root and working
 * directory into the container), then the command's half of a
 * container's child. */
static noreturn void
join_child (struct capsa_container *c, int sock, pid_t monitor)
{
    capsa_error_t err = NULL;
    struct capsa_instance *in = c->instance;
    struct capsa_opts *o = c->opts;

    if (prctl (PR_SET_PDEATHSIG, SIGKILL) < 0 || (in->nsfd[INST_NS_PID] < 0 && getppid () != monitor))
        _exit (CAPSA_EXIT_FATAL);
    if (c->mode == MODE_USERNS) {
        /* In the instance's user namespace already (the monitor entered
         * it): our ids as it maps them (0 under --fakeroot). */
        c->user.uid = getuid ();
        c->user.gid = getgid ();
    }
    if (capsa_privs_child_begin (c, &err) < 0)
        capsa_error_fatal (&err);
    c->env_fds = xcalloc (o->env_files.n + 1, sizeof (int));
    for (size_t i = 0; i < o->env_files.n; i++) {
        c->env_fds[i] = open (o->env_files.v[i], O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (c->env_fds[i] < 0)
            capsa_die ("--env-file %s: %s", o->env_files.v[i], strerror (errno));
    }
    static const int order[] = { INST_NS_CGROUP, INST_NS_IPC, INST_NS_UTS, INST_NS_NET, INST_NS_MNT };
    for (size_t k = 0; k < ARRAY_SIZE (order); k++) {
        int i = order[k];
        if (in->nsfd[i] < 0)
            continue;
        capsa_privs_mount_begin ();
        int r = setns (in->nsfd[i], ns_clone_flag[i]);
        int e = errno;
        capsa_privs_mount_end ();
        if (r < 0)
            capsa_die ("cannot enter the %s namespace of instance %s: %s", capsa_inst_ns_names[i], in->name,
                       strerror (e));
        close (in->nsfd[i]);
        in->nsfd[i] = -1;
    }
    for (int i = 0; i < INST_NS_COUNT; i++)
        if (in->nsfd[i] >= 0)
            close (in->nsfd[i]);
    capsa_container_command (c, sock);
}

static int
join_run (struct capsa_container *c, capsa_error_t *err)
{
    struct capsa_instance *in = c->instance;
    int sv[2];
    if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return capsa_error_make (err, errno, "socketpair");
    /* The PID namespace (and a user namespace first) are the monitor's
     * to enter: they take effect for its next child. */
    if (capsa_privs_raise (c, err) < 0)
        return -1;
    const int early[] = { INST_NS_USER, INST_NS_PID };
    for (size_t k = 0; k < ARRAY_SIZE (early); k++) {
        int i = early[k];
        if (in->nsfd[i] >= 0 && setns (in->nsfd[i], ns_clone_flag[i]) < 0) {
            int e = errno;
            capsa_privs_drop_monitor (c, NULL);
            return capsa_error_make (err, e, "cannot enter the %s namespace of instance %s", capsa_inst_ns_names[i],
                                     in->name);
        }
    }
    pid_t monitor = getpid ();
    fflush (NULL);
    pid_t pid = fork ();
    if (pid == 0) {
        close (sv[0]);
        join_child (c, sv[1], monitor);
    }
    int fork_errno = errno;
    if (capsa_privs_drop_monitor (c, err) < 0) {
        if (pid > 0)
            kill (pid, SIGKILL);
        return -1;
    }
    close (sv[1]);
    for (int i = 0; i < INST_NS_COUNT; i++)
        if (in->nsfd[i] >= 0) {
            close (in->nsfd[i]);
            in->nsfd[i] = -1;
        }
    if (pid < 0) {
        close (sv[0]);
        return capsa_error_make (err, fork_errno, "fork");
    }
    join_pid = pid;
    struct sigaction sa = { .sa_sigaction = join_forward, .sa_flags = SA_SIGINFO | SA_RESTART };
    sigemptyset (&sa.sa_mask);
    const int fwd[] = { SIGINT,  SIGTERM, SIGHUP,    SIGQUIT, SIGUSR1, SIGUSR2, SIGCONT, SIGWINCH,
                        SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGPWR };
    for (size_t i = 0; i < ARRAY_SIZE (fwd); i++)
        sigaction (fwd[i], &sa, NULL);
    /* Our end of the socket stays open until the child has dropped its
     * privileges and exec'd (it checks that its monitor lives). */
    for (;;) {
        char byte;
        ssize_t n = read (sv[0], &byte, 1);
        if (n > 0 || (n < 0 && errno == EINTR))
            continue;
        break;
    }
    close (sv[0]);
    int status = 0;
    while (waitpid (pid, &status, 0) < 0)
        if (errno != EINTR)
            return capsa_error_make (err, errno, "waitpid");
    join_pid = 0;
    if (WIFSIGNALED (status))
        return 128 + WTERMSIG (status);
    return WEXITSTATUS (status);
}

int
capsa_instance_join (struct capsa_container *c, capsa_error_t *err)
{
    struct capsa_opts *o = c->opts;
    const char *name = o->image + URI_PREFIX_LEN;
    const bool priv = c->mode != MODE_USERNS;
    struct capsa_instance *in = xcalloc (1, sizeof (*in));
    in->join = true;
    in->name = xstrdup (name);
    in->ready_fd = in->confirm_fd = -1;
    for (int i = 0; i < INST_NS_COUNT; i++)
        in->nsfd[i] = -1;
    c->instance = in;

    /* 1. The record: root's in root and setuid mode, the user's own in a
     *    user namespace. */
    int r;
    if (priv) {
        capsa_privs_state_begin ();
        int dfd = inst_root_state_dir (c->user.uid, false, err);
        r = dfd < 0 ? -1 : inst_state_read (dfd, name, c->user.uid, true, &in->st, err);
        if (dfd >= 0)
            close (dfd);
        capsa_privs_state_end ();
    } else {
        int dfd = inst_user_dir (&c->user, "state", false, err);
        r = dfd < 0 ? -1 : inst_state_read (dfd, name, c->user.uid, false, &in->st, err);
        if (dfd >= 0)
            close (dfd);
    }
    if (r < 0) {
        if (*err && (*err)->code == ENOENT)
            return capsa_error_make (err, 0, "no instance named %s (see 'capsa instance list')", name);
        return -1;
    }
    const enum capsa_inst_mode want = c->mode == MODE_ROOT     ? INST_MODE_ROOT
                                      : c->mode == MODE_SETUID ? INST_MODE_SETUID
                                                               : INST_MODE_USERNS;
    if (in->st.uid != c->user.uid || in->st.mode != want)
        return capsa_error_make (err, 0, "instance %s: its record is not one of a %s instance of yours", name,
                                 capsa_inst_mode_name (want));

    /* 2. The live process, checked, and its namespaces opened. */
    if (priv)
        capsa_privs_state_begin ();
    r = verify_and_open (c, in, err);
    if (priv)
        capsa_privs_state_end ();
    if (r < 0)
        return -1;
    if (c->fakeroot && capsa_caps_select (c, err) < 0)
        return -1;

    /* 3. What the command's half needs from a container's start. */
    c->image.path = xstrdup (in->st.image);
    c->image.fd = -1;
    c->home_dst = xstrdup (in->st.home);
    if (o->pwd) {
        c->workdir = xstrdup (o->pwd);
        c->workdir_custom = true;
    } else {
        c->workdir = xstrdup (c->host_cwd ? c->host_cwd : c->home_dst);
    }
    verbosef ("joining instance %s (init pid %d)", name, (int) in->st.pid);
    return join_run (c, err);
}
