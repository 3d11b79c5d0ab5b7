/* Mounting through file descriptors: see mount.h. */
#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/utils.h"
#include "runtime/privs.h"

const char *
capsa_fd_path (int fd, char *buf, size_t len)
{
    snprintf (buf, len, "/proc/self/fd/%d", fd);
    return buf;
}

static bool have_openat2 = true;
static bool have_mount_setattr = true;

/* Fallback for kernels without openat2: walk component by component and
 * refuse every symlink (but a last one with O_NOFOLLOW, which is opened as
 * itself).  Stricter than RESOLVE_IN_ROOT, never looser. */
static int
open_in_root_nofollow (int rootfd, const char *path, int flags)
{
    cleanup_free char *copy = xstrdup (path);
    cleanup_close int cur = openat (rootfd, ".", O_PATH | O_CLOEXEC | O_DIRECTORY);
    char *save = NULL;

    if (cur < 0)
        return -1;
    for (char *c = strtok_r (copy, "/", &save); c; c = strtok_r (NULL, "/", &save)) {
        int next;
        if (strcmp (c, ".") == 0)
            continue;
        if (strcmp (c, "..") == 0) {
            errno = EXDEV;
            return -1;
        }
        next = openat (cur, c, O_PATH | O_CLOEXEC | O_NOFOLLOW);
        if (next < 0)
            return -1;
        struct stat st;
        bool last = true;
        for (const char *r = save ? save : ""; *r; r++)
            if (*r != '/')
                last = false;
        if (fstat (next, &st) == 0 && S_ISLNK (st.st_mode) && !(last && (flags & O_NOFOLLOW))) {
            close (next);
            errno = ELOOP;
            return -1;
        }
        close (cur);
        cur = next;
    }
    if (flags & O_DIRECTORY) {
        struct stat st;
        if (fstat (cur, &st) < 0 || !S_ISDIR (st.st_mode)) {
            errno = ENOTDIR;
            return -1;
        }
    }
    return steal_fd (&cur);
}

int
capsa_open_in_root (int rootfd, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t) (O_PATH | O_CLOEXEC | (flags & (O_DIRECTORY | O_NOFOLLOW))),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    while (*path == '/')
        path++;
    if (*path == '\0')
        path = ".";
    if (have_openat2) {
        /* EAGAIN: a ".." raced with a mount or rename anywhere on the
         * machine (other containers starting); the kernel asks to retry. */
        long r;
        int tries = 0;
        do
            r = syscall (SYS_openat2, rootfd, path, &how, sizeof (how));
        while (r < 0 && errno == EAGAIN && ++tries < 64);
        if (r >= 0 || errno != ENOSYS)
            return (int) r;
        have_openat2 = false;
    }
    return open_in_root_nofollow (rootfd, path, flags);
}

int
capsa_make_in_root (int rootfd, const char *path, enum capsa_node kind, capsa_error_t *err)
{
    cleanup_free char *copy = xstrdup (path);
    size_t len = strlen (copy);
    int fd;

    fd = capsa_open_in_root (rootfd, copy, kind == NODE_DIR ? O_DIRECTORY : 0);
    if (fd >= 0)
        return fd;
    if (errno != ENOENT)
        return capsa_error_make (err, errno, "cannot resolve %s in the container", path);

    /* Create each missing component, resolving its parent afresh each time
     * so that nothing is ever created outside the root. */
    for (size_t i = 1; i <= len; i++) {
        if (i < len && copy[i] != '/')
            continue;
        bool last = (i == len);
        char saved = copy[i];
        copy[i] = '\0';
        fd = capsa_open_in_root (rootfd, copy, 0);
        if (fd >= 0) {
            close (fd);
            copy[i] = saved;
            continue;
        }
        if (errno != ENOENT)
            return capsa_error_make (err, errno, "cannot resolve %s in the container", copy);

        char *slash = strrchr (copy, '/');
        const char *name = slash ? slash + 1 : copy;
        cleanup_close int parent = -1;
        if (slash != NULL && slash != copy) {
            *slash = '\0';
            parent = capsa_open_in_root (rootfd, copy, O_DIRECTORY);
            *slash = '/';
        } else {
            parent = capsa_open_in_root (rootfd, "/", O_DIRECTORY);
        }
        if (parent < 0)
            return capsa_error_make (err, errno, "cannot resolve the parent of %s in the container", copy);
        /* mkdirat/mknodat need a real directory descriptor, not O_PATH. */
        char buf[64];
        cleanup_close int pdir = open (capsa_fd_path (parent, buf, sizeof (buf)), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pdir < 0)
            return capsa_error_make (err, errno, "cannot open the parent of %s in the container", copy);
        if (last && kind == NODE_FILE) {
            if (mknodat (pdir, name, S_IFREG | 0644, 0) < 0 && errno != EEXIST)
                return capsa_error_make (err, errno, "cannot create %s in the container", copy);
        } else if (mkdirat (pdir, name, 0755) < 0 && errno != EEXIST) {
            return capsa_error_make (err, errno, "cannot create %s in the container", copy);
        }
        copy[i] = saved;
    }
    fd = capsa_open_in_root (rootfd, path, kind == NODE_DIR ? O_DIRECTORY : 0);
    if (fd < 0)
        return capsa_error_make (err, errno, "cannot resolve %s in the container", path);
    return fd;
}

int
capsa_open_mountpoint (int rootfd, const char *path, enum capsa_node kind, capsa_error_t *err)
{
    struct stat st;
    int fd = capsa_open_in_root (rootfd, path, O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return capsa_error_make (err, 0, "mount point %s does not exist in the container", path);
        return capsa_error_make (err, errno, "mount point %s", path);
    }
    if (fstat (fd, &st) < 0) {
        int e = errno;
        close (fd);
        return capsa_error_make (err, e, "mount point %s", path);
    }
    const char *wrong = NULL;
    if (S_ISLNK (st.st_mode))
        wrong = "is a symbolic link";
    else if (kind == NODE_DIR && !S_ISDIR (st.st_mode))
        wrong = "is not a directory";
    else if (kind == NODE_FILE && S_ISDIR (st.st_mode))
        wrong = "is a directory";
    if (wrong) {
        close (fd);
        return capsa_error_make (err, 0, "mount point %s %s", path, wrong);
    }
    return fd;
}

int
capsa_mount_fd (const char *src, int targetfd, const char *fstype, unsigned long flags, const char *data,
                const char *what, capsa_error_t *err)
{
    char buf[64];
    capsa_privs_mount_begin ();
    int r = mount (src, capsa_fd_path (targetfd, buf, sizeof (buf)), fstype, flags, data);
    int e = errno;
    capsa_privs_mount_end ();
    if (r < 0)
        return capsa_error_make (err, e, "cannot mount %s", what);
    return 0;
}

/* MS_* per-mount flags to MOUNT_ATTR_* for mount_setattr(). */
static uint64_t
mount_attrs (unsigned long flags)
{
    uint64_t a = 0;
    if (flags & MS_RDONLY)
        a |= MOUNT_ATTR_RDONLY;
    if (flags & MS_NOSUID)
        a |= MOUNT_ATTR_NOSUID;
    if (flags & MS_NODEV)
        a |= MOUNT_ATTR_NODEV;
    if (flags & MS_NOEXEC)
        a |= MOUNT_ATTR_NOEXEC;
    return a;
}

static const unsigned long PER_MOUNT = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;

/* The per-mount flags a mount has now (statvfs), as MS_* bits, plus the
 * atime flags, which MS_REMOUNT|MS_BIND would otherwise reset. */
static unsigned long
current_flags (const char *path)
{
    struct statvfs sv;
    unsigned long f = 0;
    if (statvfs (path, &sv) < 0)
        return 0;
    if (sv.f_flag & ST_RDONLY)
        f |= MS_RDONLY;
    if (sv.f_flag & ST_NOSUID)
        f |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV)
        f |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC)
        f |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME)
        f |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME)
        f |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME)
        f |= MS_RELATIME;
    return f;
}

/* Without mount_setattr: add FLAGS to the mount at PATH with the old
 * MS_REMOUNT|MS_BIND, keeping the flags it has (a user namespace may not
 * clear locked ones anyway). */
static int
remount_legacy (const char *path, unsigned long flags)
{
    capsa_privs_mount_begin ();
    int r = mount (NULL, path, NULL, MS_REMOUNT | MS_BIND | current_flags (path) | (flags & PER_MOUNT), NULL);
    int e = errno;
    capsa_privs_mount_end ();
    errno = e;
    return r;
}

/* The mounts of the tree whose top is mount TOP, from /proc/self/mountinfo:
 * ids, mount points (unescaped) and per-mount options, in *IDS, *PATHS and
 * *OPTS (NULL-terminated lists).  -1 when mountinfo cannot be read. */
static int
tree_mounts (long top, long **ids, struct strv *paths, struct strv *opts, size_t *n)
{
    cleanup_free char *line = NULL;
    size_t cap = 0;
    *ids = NULL;
    *n = 0;
    for (bool grew = true; grew;) {
        grew = false;
        cleanup_fclose FILE *mi = fopen ("/proc/self/mountinfo", "re");
        if (mi == NULL)
            return -1;
        while (getline (&line, &cap, mi) > 0) {
            long id, parent;
            int off = 0;
            if (sscanf (line, "%ld %ld %*s %*s %n", &id, &parent, &off) != 2 || off == 0)
                continue;
            bool known = false, under = id == top;
            for (size_t k = 0; k < *n; k++) {
                known |= (*ids)[k] == id;
                under |= (*ids)[k] == parent;
            }
            if (known || !under)
                continue;
            /* Fields 5 and 6: mount point, per-mount options. */
            char *mp = line + off, *sp = strchr (mp, ' ');
            if (sp == NULL)
                continue;
            *sp = '\0';
            char *mo = sp + 1, *sp2 = strchr (mo, ' ');
            if (sp2)
                *sp2 = '\0';
            mountinfo_unescape (mp);
            *ids = xrealloc (*ids, (*n + 1) * sizeof (long));
            (*ids)[(*n)++] = id;
            strv_push (paths, mp);
            strv_push (opts, mo);
            grew = true;
        }
        if (ferror (mi))
            return -1;
    }
    return *n > 0 ? 0 : -1;
}

static bool
has_option (const char *opts, const char *name)
{
    size_t l = strlen (name);
    for (const char *p = opts; (p = strstr (p, name)) != NULL; p += l)
        if ((p == opts || p[-1] == ',') && (p[l] == ',' || p[l] == '\0' || p[l] == '\n'))
            return true;
    return false;
}

/* Without mount_setattr, a recursive bind gets FLAGS on its top mount and
 * on every mount below it: each is remounted by its path from mountinfo,
 * then mountinfo is read again and every mount of the tree must show the
 * flags.  A mount that is hidden under another one at the same place (the
 * path reaches only the top one), or a path that led elsewhere meanwhile,
 * leaves one without them: refused, fail closed. */
static int
remount_tree_legacy (int treefd, unsigned long flags)
{
    char buf[64];
    cleanup_free char *line = NULL;
    size_t cap = 0;
    long top = -1;
    snprintf (buf, sizeof (buf), "/proc/self/fdinfo/%d", treefd);
    cleanup_fclose FILE *fi = fopen (buf, "re");
    while (fi && getline (&line, &cap, fi) > 0)
        if (sscanf (line, "mnt_id: %ld", &top) == 1)
            break;
    if (top < 0) {
        errno = ENOTSUP;
        return -1;
    }
    long *ids = NULL;
    struct strv paths = { 0 }, opts = { 0 };
    size_t n = 0;
    int ret = -1;
    if (tree_mounts (top, &ids, &paths, &opts, &n) < 0)
        goto out;
    for (size_t k = 0; k < n; k++)
        if (remount_legacy (ids[k] == top ? capsa_fd_path (treefd, buf, sizeof (buf)) : paths.v[k], flags) < 0)
            goto out;
    free (ids);
    strv_free (&paths);
    strv_free (&opts);
    if (tree_mounts (top, &ids, &paths, &opts, &n) < 0)
        goto out;
    static const struct { unsigned long flag; const char *name; } names[] = {
        { MS_RDONLY, "ro" }, { MS_NOSUID, "nosuid" }, { MS_NODEV, "nodev" }, { MS_NOEXEC, "noexec" },
    };
    for (size_t k = 0; k < n; k++)
        for (size_t f = 0; f < ARRAY_SIZE (names); f++)
            if ((flags & names[f].flag) && !has_option (opts.v[k], names[f].name)) {
                errno = EPERM;
                goto out;
            }
    ret = 0;
out:
    free (ids);
    strv_free (&paths);
    strv_free (&opts);
    return ret;
}

int
capsa_remount_fd (int targetfd, unsigned long flags, const char *what, capsa_error_t *err)
{
    struct mount_attr attr = { .attr_set = mount_attrs (flags) };
    char buf[64];
    int r = -1, e = ENOSYS;
    if (have_mount_setattr) {
        capsa_privs_mount_begin ();
        r = mount_setattr (targetfd, "", AT_EMPTY_PATH | ((flags & MS_REC) ? AT_RECURSIVE : 0), &attr, sizeof (attr));
        e = errno;
        capsa_privs_mount_end ();
        if (r < 0 && e == ENOSYS)
            have_mount_setattr = false;
    }
    if (!have_mount_setattr) {
        r = (flags & MS_REC) ? remount_tree_legacy (targetfd, flags)
                             : remount_legacy (capsa_fd_path (targetfd, buf, sizeof (buf)), flags);
        e = errno;
        if (r < 0 && (flags & MS_REC) && e == EPERM)
            return capsa_error_make (err, 0,
                                     "cannot apply the mount flags to every mount below %s on this kernel (no "
                                     "mount_setattr): a mount there is hidden by another or moved",
                                     what);
    }
    if (r < 0)
        return capsa_error_make (err, e, "cannot change mount flags of %s", what);
    return 0;
}

int
capsa_bind_fd (int srcfd, int targetfd, bool rec, unsigned long flags, const char *what, capsa_error_t *err)
{
    /* Clone the source as a detached mount, set its flags while nobody can
     * see it, then attach it on the target: no window where the bind is
     * writable or allows setuid.  Without mount_setattr the flags are set
     * right after attaching, in this still private namespace, before
     * anything runs in it. */
    /* One privileged bracket for the three calls: each works on
     * descriptors only (AT_EMPTY_PATH), no path is looked up in it. */
    bool flags_set = flags == 0;
    struct mount_attr attr = { .attr_set = mount_attrs (flags) };
    int r = -1, e = 0, step = 0;
    capsa_privs_mount_begin ();
    cleanup_close int tree = open_tree (srcfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (rec ? AT_RECURSIVE : 0));
    if (tree < 0)
        goto out;
    step = 1;
    if (!flags_set && have_mount_setattr) {
        if (mount_setattr (tree, "", AT_EMPTY_PATH | (rec ? AT_RECURSIVE : 0), &attr, sizeof (attr)) == 0)
            flags_set = true;
        else if (errno == ENOSYS)
            have_mount_setattr = false;
        else
            goto out;
    }
    step = 2;
    r = move_mount (tree, "", targetfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
out:
    e = errno;
    capsa_privs_mount_end ();
    if (r < 0)
        return capsa_error_make (err, e, step == 0 ? "cannot bind %s" : step == 1 ? "cannot set mount flags of %s" : "cannot attach %s", what);
    if (!flags_set && capsa_remount_fd (tree, flags | (rec ? MS_REC : 0), what, err) < 0)
        return -1;
    return 0;
}

int
capsa_fs_new (const char *fstype, const char *data, unsigned long flags, const char *what, capsa_error_t *err)
{
    cleanup_free char *copy = xstrdup (data ? data : "");
    char *save = NULL;
    int ret = -1, e = 0;
    capsa_privs_mount_begin ();
    int fs = fsopen (fstype, FSOPEN_CLOEXEC);
    if (fs < 0) {
        e = errno;
        goto out;
    }
    for (char *o = strtok_r (copy, ",", &save); o; o = strtok_r (NULL, ",", &save)) {
        char *eq = strchr (o, '=');
        if (eq)
            *eq = '\0';
        if (fsconfig (fs, eq ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG, o, eq ? eq + 1 : NULL, 0) < 0) {
            e = errno;
            goto out;
        }
    }
    if (fsconfig (fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
        e = errno;
        goto out;
    }
    ret = fsmount (fs, FSMOUNT_CLOEXEC, (unsigned int) mount_attrs (flags));
    e = errno;
out:
    if (fs >= 0)
        close (fs);
    capsa_privs_mount_end ();
    if (ret < 0)
        return capsa_error_make (err, e, "cannot make %s (%s)", what, fstype);
    return ret;
}

int
capsa_fs_attach (int mntfd, int targetfd, const char *what, capsa_error_t *err)
{
    capsa_privs_mount_begin ();
    int r = move_mount (mntfd, "", targetfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
    int e = errno;
    capsa_privs_mount_end ();
    if (r < 0)
        return capsa_error_make (err, e, "cannot attach %s", what);
    return 0;
}
