/* Instance records: where they are, who may read and write them, and
 * whether the process a record names is the one it names (see
 * instance_int.h; SECURITY.md, "Instances"). */
#include "runtime/instance_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"

/* ---- processes ------------------------------------------------------------ */

int
inst_read_at (int dirfd, const char *name, char **out, capsa_error_t *err)
{
    cleanup_close int fd = openat (dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return capsa_error_make (err, errno, "%s", name);
    return read_fd_all (fd, 1 << 16, out, NULL, err);
}

/* A descriptor of /proc/PID.  Everything read through it concerns that
 * one process: once it has ended, reads fail (ESRCH), even when a new
 * process gets the same number. */
int
inst_open_proc (pid_t pid, capsa_error_t *err)
{
    char path[32];
    snprintf (path, sizeof (path), "/proc/%d", (int) pid);
    int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return capsa_error_make (err, errno, "%s", path);
    return fd;
}

int
inst_proc_info (int procfd, struct inst_proc *pi, capsa_error_t *err)
{
    cleanup_free char *stat = NULL, *status = NULL;
    uid_t euid;
    if (inst_read_at (procfd, "stat", &stat, err) < 0 || inst_read_at (procfd, "status", &status, err) < 0)
        return -1;
    if (capsa_inst_parse_stat (stat, &pi->state, &pi->ppid, &pi->start) < 0
        || capsa_inst_parse_status_uid (status, &pi->ruid, &euid) < 0)
        return capsa_error_make (err, 0, "unexpected contents of /proc");
    return 0;
}

bool
inst_ended (char state)
{
    return state == 'Z' || state == 'X' || state == 'x';
}

int
inst_boot_id (char out[40], capsa_error_t *err)
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

int
inst_ns_identity (int fd, struct capsa_inst_id *id)
{
    struct stat st;
    if (fstat (fd, &st) < 0)
        return -1;
    id->dev = (uint64_t) st.st_dev;
    id->ino = (uint64_t) st.st_ino;
    return 0;
}

bool
inst_same_id (const struct capsa_inst_id *a, const struct capsa_inst_id *b)
{
    return a->dev == b->dev && a->ino == b->ino;
}

/* The identity of our own namespace of kind I. */
int
inst_own_ns (int i, struct capsa_inst_id *id)
{
    char path[64];
    snprintf (path, sizeof (path), "/proc/self/ns/%s", capsa_inst_ns_names[i]);
    cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -1 : inst_ns_identity (fd, id);
}

/* Does the record's instance run: this boot, its init alive with the
 * start time recorded and the owner recorded?  1 yes, 0 no (ended, or
 * the number is another process's now).  Reads /proc: in setuid mode
 * the caller holds the state bracket.  *PROCFD (if not NULL) receives
 * the init's /proc descriptor when it runs. */
int
inst_running (const struct capsa_inst_state *st, int *procfd)
{
    char boot[40];
    struct inst_proc pi;
    if (inst_boot_id (boot, NULL) < 0 || strcmp (boot, st->boot) != 0)
        return 0;
    int fd = inst_open_proc (st->pid, NULL);
    if (fd < 0)
        return 0;
    if (inst_proc_info (fd, &pi, NULL) < 0 || inst_ended (pi.state) || pi.start != st->start || pi.ruid != st->uid
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
inst_open_private_dir (int dirfd, const char *name, const char *shown, uid_t owner, mode_t mode, bool create,
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
int
inst_root_state_dir (uid_t uid, bool create, capsa_error_t *err)
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
        int next = inst_open_private_dir (fd, comp, shown, 0, 0755, create, err);
        close (fd);
        if (next < 0)
            return -1;
        fd = next;
    }
    char uidname[16];
    snprintf (uidname, sizeof (uidname), "%u", (unsigned) uid);
    cleanup_free char *inst = xasprintf ("%s/instances", base);
    cleanup_free char *mine = xasprintf ("%s/instances/%s", base, uidname);
    int d = inst_open_private_dir (fd, "instances", inst, 0, 0700, create, err);
    close (fd);
    if (d < 0)
        return -1;
    fd = inst_open_private_dir (d, uidname, mine, 0, 0700, create, err);
    close (d);
    return fd;
}

static char *
inst_host_name (void)
{
    char h[256] = { 0 };
    if (gethostname (h, sizeof (h) - 1) < 0 || h[0] == '\0' || strchr (h, '/') || strcmp (h, ".") == 0
        || strcmp (h, "..") == 0)
        return xstrdup ("localhost");
    return xstrdup (h);
}

/* HOME/.capsa/instances/SUB/HOST/USER: the user's own, opened as the
 * user (nothing here is privileged). */
int
inst_user_dir (const struct capsa_user *u, const char *sub, bool create, capsa_error_t *err)
{
    cleanup_free char *host = inst_host_name ();
    const char *comps[] = { ".capsa", "instances", sub, host, u->name };
    cleanup_free char *shown = xstrdup (u->home);
    size_t slen = strlen (shown);
    int fd = open (u->home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return capsa_error_make (err, errno, "home directory %s", u->home);
    for (size_t i = 0; i < ARRAY_SIZE (comps); i++) {
        str_append (&shown, &slen, "/");
        str_append (&shown, &slen, comps[i]);
        int next = inst_open_private_dir (fd, comps[i], shown, u->uid, 0700, create, err);
        close (fd);
        if (next < 0)
            return -1;
        fd = next;
    }
    return fd;
}

/* Where the front end puts an instance's logs (src/cmd/instance.c makes
 * the same names): HOME/.capsa/instances/logs/HOST/USER/NAME.{out,err}. */
char *
inst_log_path (const struct capsa_user *u, const char *name, const char *ext)
{
    cleanup_free char *host = inst_host_name ();
    return xasprintf ("%s/.capsa/instances/logs/%s/%s/%s.%s", u->home, host, u->name, name, ext);
}

/* ---- records ---------------------------------------------------------------- */

/* Read the record NAME of WHO's instance in DIRFD, root's directory
 * (ROOT_DIR) or WHO's own: a regular file of root or WHO, writable by no
 * one else, not through a symbolic link, naming WHO and a mode that
 * belongs there (root or setuid in root's, userns in WHO's). */
int
inst_state_read (int dirfd, const char *name, uid_t who, bool root_dir, struct capsa_inst_state *st, capsa_error_t *err)
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
int
inst_state_write (int dirfd, const struct capsa_inst_state *st, capsa_error_t *err)
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
 * it; the record of one that inst_ended (or a damaged one) is removed.  With
 * the directory locked by the caller. */
int
inst_name_free (int dirfd, const char *name, uid_t who, bool root_dir, capsa_error_t *err)
{
    struct capsa_inst_state old;
    capsa_error_t e = NULL;
    if (inst_state_read (dirfd, name, who, root_dir, &old, &e) < 0) {
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
