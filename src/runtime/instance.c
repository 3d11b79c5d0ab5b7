/* Instances: state, start, join, list and stop.  See instance.h for the
 * design and SECURITY.md ("Instances") for why.
 *
 * Privilege: in setuid mode everything that touches root's state
 * directory or /proc/PID of a process a record names runs between
 * capsa_privs_state_begin/end (root's effective ids; the paths are fixed:
 * CAPSA_RUNSTATEDIR, the instance's validated name, /proc/NUMBER).  What
 * the user chose (the --pid-file path, --env-file) is opened as the user,
 * and files of the user's own (the state of a user-namespace instance)
 * are read only by a process that has no privilege left. */
#include "runtime/instance.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/nsfs.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

/* ---- processes ------------------------------------------------------------ */

struct proc_info {
    char state;
    pid_t ppid;
    uint64_t start;
    uid_t ruid;
};

static int
read_at (int dirfd, const char *name, char **out, capsa_error_t *err)
{
    cleanup_close int fd = openat (dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return capsa_error_make (err, errno, "%s", name);
    return read_fd_all (fd, 1 << 16, out, NULL, err);
}

/* A descriptor of /proc/PID.  Everything read through it concerns that
 * one process: once it has ended, reads fail (ESRCH), even when a new
 * process gets the same number. */
static int
open_proc (pid_t pid, capsa_error_t *err)
{
    char path[32];
    snprintf (path, sizeof (path), "/proc/%d", (int) pid);
    int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return capsa_error_make (err, errno, "%s", path);
    return fd;
}

static int
proc_info (int procfd, struct proc_info *pi, capsa_error_t *err)
{
    cleanup_free char *stat = NULL, *status = NULL;
    uid_t euid;
    if (read_at (procfd, "stat", &stat, err) < 0 || read_at (procfd, "status", &status, err) < 0)
        return -1;
    if (capsa_inst_parse_stat (stat, &pi->state, &pi->ppid, &pi->start) < 0
        || capsa_inst_parse_status_uid (status, &pi->ruid, &euid) < 0)
        return capsa_error_make (err, 0, "unexpected contents of /proc");
    return 0;
}

static bool
ended (char state)
{
    return state == 'Z' || state == 'X' || state == 'x';
}

static int
boot_id (char out[40], capsa_error_t *err)
{
    cleanup_close int fd = open ("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    char buf[64] = { 0 };
    if (fd < 0 || read (fd, buf, sizeof (buf) - 1) < 36)
        return capsa_error_make (err, errno, "cannot read the boot id");
    buf[strcspn (buf, "\n")] = '\0';
    if (strlen (buf) != 36)
        return capsa_error_make (err, 0, "unexpected boot id '%s'", buf);
    memcpy (out, buf, 37);
    return 0;
}

static int
ns_identity (int fd, struct capsa_inst_id *id)
{
    struct stat st;
    if (fstat (fd, &st) < 0)
        return -1;
    id->dev = (uint64_t) st.st_dev;
    id->ino = (uint64_t) st.st_ino;
    return 0;
}

static bool
same_id (const struct capsa_inst_id *a, const struct capsa_inst_id *b)
{
    return a->dev == b->dev && a->ino == b->ino;
}

/* The identity of our own namespace of kind I. */
static int
own_ns (int i, struct capsa_inst_id *id)
{
    char path[64];
    snprintf (path, sizeof (path), "/proc/self/ns/%s", capsa_inst_ns_names[i]);
    cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -1 : ns_identity (fd, id);
}

/* Does the record's instance run: this boot, its init alive with the
 * start time recorded and the owner recorded?  1 yes, 0 no (ended, or
 * the number is another process's now).  Reads /proc: in setuid mode
 * the caller holds the state bracket.  *PROCFD (if not NULL) receives
 * the init's /proc descriptor when it runs. */
static int
inst_running (const struct capsa_inst_state *st, int *procfd)
{
    char boot[40];
    struct proc_info pi;
    if (boot_id (boot, NULL) < 0 || strcmp (boot, st->boot) != 0)
        return 0;
    int fd = open_proc (st->pid, NULL);
    if (fd < 0)
        return 0;
    if (proc_info (fd, &pi, NULL) < 0 || ended (pi.state) || pi.start != st->start || pi.ruid != st->uid
        || pi.ppid != st->monitor) {
        close (fd);
        return 0;
    }
    if (procfd)
        *procfd = fd;
    else
        close (fd);
    return 1;
}

/* ---- state directories -------------------------------------------------- */

/* NAME below DIRFD, a directory owned by OWNER that no one else may write
 * to, never through a symbolic link; made (MODE) when missing and
 * CREATE. */
static int
open_private_dir (int dirfd, const char *name, const char *shown, uid_t owner, mode_t mode, bool create,
                  capsa_error_t *err)
{
    int fd = openat (dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
        if (mkdirat (dirfd, name, mode) < 0 && errno != EEXIST)
            return capsa_error_make (err, errno, "cannot create %s", shown);
        fd = openat (dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0)
        return capsa_error_make (err, errno, "%s", shown);
    struct stat st;
    if (fstat (fd, &st) < 0 || st.st_uid != owner || (st.st_mode & 022) != 0) {
        close (fd);
        return capsa_error_make (err, 0, "%s is not a directory of uid %u that only its owner may write to; refusing it",
                                 shown, (unsigned) owner);
    }
    return fd;
}

/* CAPSA_RUNSTATEDIR/instances/UID: root's, every component root-owned
 * and writable by root alone.  Called with root's identity (the state
 * bracket in setuid mode).  ENOENT in *err when missing and !CREATE. */
static int
root_state_dir (uid_t uid, bool create, capsa_error_t *err)
{
    const char *base = CAPSA_RUNSTATEDIR;
    cleanup_free char *copy = xstrdup (base);
    cleanup_free char *shown = NULL;
    size_t slen = 0;
    int fd = open ("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return capsa_error_make (err, errno, "/");
    char *save = NULL;
    for (char *comp = strtok_r (copy, "/", &save); comp; comp = strtok_r (NULL, "/", &save)) {
        str_append (&shown, &slen, "/");
        str_append (&shown, &slen, comp);
        int next = open_private_dir (fd, comp, shown, 0, 0755, create, err);
        close (fd);
        if (next < 0)
            return -1;
        fd = next;
    }
    char uidname[16];
    snprintf (uidname, sizeof (uidname), "%u", (unsigned) uid);
    cleanup_free char *inst = xasprintf ("%s/instances", base);
    cleanup_free char *mine = xasprintf ("%s/instances/%s", base, uidname);
    int d = open_private_dir (fd, "instances", inst, 0, 0700, create, err);
    close (fd);
    if (d < 0)
        return -1;
    fd = open_private_dir (d, uidname, mine, 0, 0700, create, err);
    close (d);
    return fd;
}

static char *
host_name (void)
{
    char h[256] = { 0 };
    if (gethostname (h, sizeof (h) - 1) < 0 || h[0] == '\0' || strchr (h, '/') || strcmp (h, ".") == 0
        || strcmp (h, "..") == 0)
        return xstrdup ("localhost");
    return xstrdup (h);
}

/* HOME/.capsa/instances/SUB/HOST/USER: the user's own, opened as the
 * user (nothing here is privileged). */
static int
user_dir (const struct capsa_user *u, const char *sub, bool create, capsa_error_t *err)
{
    cleanup_free char *host = host_name ();
    const char *comps[] = { ".capsa", "instances", sub, host, u->name };
    cleanup_free char *shown = xstrdup (u->home);
    size_t slen = strlen (shown);
    int fd = open (u->home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return capsa_error_make (err, errno, "home directory %s", u->home);
    for (size_t i = 0; i < ARRAY_SIZE (comps); i++) {
        str_append (&shown, &slen, "/");
        str_append (&shown, &slen, comps[i]);
        int next = open_private_dir (fd, comps[i], shown, u->uid, 0700, create, err);
        close (fd);
        if (next < 0)
            return -1;
        fd = next;
    }
    return fd;
}

/* Where the front end puts an instance's logs (src/cmd/instance.c makes
 * the same names): HOME/.capsa/instances/logs/HOST/USER/NAME.{out,err}. */
static char *
log_path (const struct capsa_user *u, const char *name, const char *ext)
{
    cleanup_free char *host = host_name ();
    return xasprintf ("%s/.capsa/instances/logs/%s/%s/%s.%s", u->home, host, u->name, name, ext);
}

/* ---- records ---------------------------------------------------------------- */

/* Read the record NAME of WHO's instance in DIRFD, root's directory
 * (ROOT_DIR) or WHO's own: a regular file of root or WHO, writable by no
 * one else, not through a symbolic link, naming WHO and a mode that
 * belongs there (root or setuid in root's, userns in WHO's). */
static int
state_read (int dirfd, const char *name, uid_t who, bool root_dir, struct capsa_inst_state *st, capsa_error_t *err)
{
    const uid_t owner = root_dir ? 0 : who;
    cleanup_close int fd = openat (dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    struct stat sb;
    cleanup_free char *text = NULL;
    size_t len = 0, used = 0;
    if (fd < 0)
        return capsa_error_make (err, errno, "instance %s", name);
    if (fstat (fd, &sb) < 0)
        return capsa_error_make (err, errno, "instance %s", name);
    if (!S_ISREG (sb.st_mode) || sb.st_uid != owner || (sb.st_mode & 022) != 0 || sb.st_size > CAPSA_INST_RECORD_MAX)
        return capsa_error_make (err, 0, "instance %s: its record is not a file of uid %u that only its owner may write to",
                                 name, (unsigned) owner);
    if (read_fd_all (fd, CAPSA_INST_RECORD_MAX, &text, &len, err) < 0)
        return capsa_error_wrap (err, "instance %s", name);
    if (capsa_inst_state_parse (text, len, st, &used, err) < 0)
        return capsa_error_wrap (err, "instance %s", name);
    if (used != len || strcmp (st->name, name) != 0) {
        capsa_inst_state_free (st);
        return capsa_error_make (err, 0, "instance %s: its record names another instance", name);
    }
    const bool mode_ok = root_dir ? st->mode == (who == 0 ? INST_MODE_ROOT : INST_MODE_SETUID)
                                  : st->mode == INST_MODE_USERNS;
    if (st->uid != who || !mode_ok) {
        capsa_inst_state_free (st);
        return capsa_error_make (err, 0, "instance %s: its record is not one of uid %u's in this directory", name,
                                 (unsigned) who);
    }
    return 0;
}

/* Write ST as DIRFD/NAME, atomically (a new file beside it, renamed). */
static int
state_write (int dirfd, const struct capsa_inst_state *st, capsa_error_t *err)
{
    unsigned char rnd[6];
    if (capsa_random_bytes (rnd, sizeof (rnd), err) < 0)
        return -1;
    cleanup_free char *tmp = xasprintf (".%s.%02x%02x%02x%02x%02x%02x", st->name, rnd[0], rnd[1], rnd[2], rnd[3],
                                        rnd[4], rnd[5]);
    cleanup_free char *text = capsa_inst_state_format (st);
    cleanup_close int fd = openat (dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return capsa_error_make (err, errno, "cannot record instance %s", st->name);
    if (write_all (fd, text, strlen (text)) < 0 || fsync (fd) < 0 || renameat (dirfd, tmp, dirfd, st->name) < 0) {
        int e = errno;
        unlinkat (dirfd, tmp, 0);
        return capsa_error_make (err, e, "cannot record instance %s", st->name);
    }
    fsync (dirfd);
    return 0;
}

/* Take NAME in DIRFD for a new instance: refused while a running one has
 * it; the record of one that ended (or a damaged one) is removed.  With
 * the directory locked by the caller. */
static int
name_free (int dirfd, const char *name, uid_t who, bool root_dir, capsa_error_t *err)
{
    struct capsa_inst_state old;
    capsa_error_t e = NULL;
    if (state_read (dirfd, name, who, root_dir, &old, &e) < 0) {
        int code = e ? e->code : 0;
        if (code != ENOENT) {
            warnf ("removing a damaged instance record: %s", e->msg);
            unlinkat (dirfd, name, 0);
        }
        capsa_error_free (&e);
        return 0;
    }
    int r = inst_running (&old, NULL);
    capsa_inst_state_free (&old);
    if (r == 1)
        return capsa_error_make (err, 0, "instance %s already exists", name);
    unlinkat (dirfd, name, 0);
    return 0;
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
    /* Has the child ended (without reaping it: the monitor's loop does)? */
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
            struct proc_info pi;
            cleanup_close int pfd = open_proc (cur, NULL);
            if (pfd < 0 || proc_info (pfd, &pi, NULL) < 0)
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
    for (char *l = mi; l && *l; l = strchr (l, '\n') ? strchr (l, '\n') + 1 : NULL) {
        /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE SUPER */
        const char *sep = strstr (l, " - cgroup2 ");
        const char *eol = strchr (l, '\n');
        if (sep == NULL || (eol && sep > eol))
            continue;
        char root[4096], point[4096];
        if (sscanf (l, "%*s %*s %*s %4095s %4095s", root, point) != 2 || strcmp (root, "/") != 0
            || strchr (point, '\\'))
            continue;
        return xstrdup (point);
    }
    return NULL;
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
    struct proc_info pi, mi;
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
    st.log_out = log_path (&c->user, in->name, "out");
    st.log_err = log_path (&c->user, in->name, "err");
    st.fakeroot = c->fakeroot;
    st.created = (int64_t) time (NULL);
    if (boot_id (st.boot, err) < 0)
        goto out;

    /* A cgroup of its own?  (Read with the user's identity: cgroup files
     * and /proc/PID/stat are readable by everyone.) */
    mnt = cgroup2_mount ();
    {
        cleanup_close int pfd = open_proc (cpid, NULL);
        cleanup_free char *cgtext = NULL;
        if (mnt && pfd >= 0 && read_at (pfd, "cgroup", &cgtext, NULL) == 0) {
            char *cg = capsa_inst_parse_cgroup2 (cgtext);
            if (cg && strcmp (cg, "/") != 0 && strstr (cg, "/..") == NULL && cgroup_is_own (mnt, cg, frontend, p1))
                st.cgroup = cg;
            else
                free (cg);
        }
    }

    if (priv)
        capsa_privs_state_begin ();
    procfd = open_proc (cpid, err);
    monfd = procfd < 0 ? -1 : open_proc (p1, err);
    if (procfd < 0 || monfd < 0)
        goto out_priv;
    /* The init is the monitor's child (the monitor is ours, not yet
     * reaped, so its number cannot have been reused). */
    if (proc_info (procfd, &pi, err) < 0 || proc_info (monfd, &mi, err) < 0)
        goto out_priv;
    if (ended (pi.state) || pi.ppid != p1 || ended (mi.state) || mi.ppid != getpid ()) {
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
        if (nfd < 0 || ns_identity (nfd, &st.ns[i]) < 0) {
            capsa_error_make (err, errno, "instance %s: cannot read its namespaces", in->name);
            goto out_priv;
        }
    }
    /* Still the same process after its namespaces were read. */
    if (proc_info (procfd, &pi, err) < 0 || ended (pi.state) || pi.start != st.start) {
        capsa_error_make (err, 0, "instance %s ended while it was starting", in->name);
        goto out_priv;
    }
    if (flock (dirfd, LOCK_EX) < 0) {
        capsa_error_make (err, errno, "cannot lock the instance directory");
        goto out_priv;
    }
    r = name_free (dirfd, in->name, c->user.uid, priv, err);
    if (r == 0)
        r = state_write (dirfd, &st, err);
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
    int dirfd = priv ? root_state_dir (c->user.uid, true, err) : user_dir (&c->user, "state", true, err);
    int r = -1;
    if (dirfd >= 0 && flock (dirfd, LOCK_EX) == 0) {
        r = name_free (dirfd, in->name, c->user.uid, priv, err);
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
        int dfd = root_state_dir (uid, false, NULL);
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
    struct proc_info pi;
    char boot[40];

    if (boot_id (boot, err) < 0)
        return -1;
    if (strcmp (boot, st->boot) != 0)
        return capsa_error_make (err, 0, "instance %s is not running (it was started before the machine restarted)",
                                 name);
    cleanup_close int procfd = open_proc (st->pid, NULL);
    if (procfd < 0 || proc_info (procfd, &pi, NULL) < 0 || ended (pi.state) || pi.start != st->start)
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
        if (ns_identity (fd, &id) < 0 || !same_id (&id, &st->ns[i])) {
            close (fd);
            return capsa_error_make (err, 0, "instance %s: its %s namespace is not the one recorded when it started; "
                                             "not joining it",
                                     name, capsa_inst_ns_names[i]);
        }
        if (own_ns (i, &self) == 0 && same_id (&self, &id)) {
            close (fd); /* ours already: nothing to enter */
            continue;
        }
        in->nsfd[i] = fd;
    }
    /* The namespaces were those of the live process recorded, not of a
     * later one with its number. */
    if (proc_info (procfd, &pi, NULL) < 0 || ended (pi.state) || pi.start != st->start)
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
    if (parent < 0 || ns_identity (parent, &parent_id) < 0 || own_ns (INST_NS_USER, &self_user) < 0
        || !same_id (&parent_id, &self_user) || ioctl (userfd, NS_GET_OWNER_UID, &owner) < 0 || owner != c->user.uid)
        return capsa_error_make (err, 0, "instance %s: its user namespace is not one you created", name);
    /* --fakeroot: the caller is root in it (the kernel's map, not the
     * record, says so). */
    cleanup_free char *map = NULL;
    if (read_at (procfd, "uid_map", &map, err) < 0)
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
        int dfd = root_state_dir (c->user.uid, false, err);
        r = dfd < 0 ? -1 : state_read (dfd, name, c->user.uid, true, &in->st, err);
        if (dfd >= 0)
            close (dfd);
        capsa_privs_state_end ();
    } else {
        int dfd = user_dir (&c->user, "state", false, err);
        r = dfd < 0 ? -1 : state_read (dfd, name, c->user.uid, false, &in->st, err);
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

/* ---- list and stop ----------------------------------------------------------- */

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
    struct proc_info pi;
    if (priv)
        capsa_privs_state_begin ();
    int fd = open_proc (pid, NULL);
    bool alive = fd >= 0 && proc_info (fd, &pi, NULL) == 0 && !ended (pi.state) && pi.start == start;
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
            kill (t[i].st.monitor, SIGKILL);
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
        if (state_read (dirfd, names.v[i], who, priv, &x->st, &e) < 0) {
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

    /* Records of what ended (or was just stopped) go. */
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
        if (state_read (dirfd, t[i].st.name, who, priv, &now, NULL) == 0) {
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
        int dfd = root_state_dir (target.uid, false, &err);
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
        int dfd = user_dir (&target, "state", false, &err);
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
