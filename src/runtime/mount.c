#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/utils.h"

const char *
capsa_fd_path (int fd, char *buf, size_t len)
{
    snprintf (buf, len, "/proc/self/fd/%d", fd);
    return buf;
}

static bool have_openat2 = true;

/* Fallback for kernels without openat2: walk component by component and
 * refuse every symlink.  Stricter than RESOLVE_IN_ROOT, never looser. */
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
        if (fstat (next, &st) == 0 && S_ISLNK (st.st_mode)) {
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
        .flags = (uint64_t) (O_PATH | O_CLOEXEC | (flags & O_DIRECTORY)),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    while (*path == '/')
        path++;
    if (*path == '\0')
        path = ".";
    if (have_openat2) {
        long r = syscall (SYS_openat2, rootfd, path, &how, sizeof (how));
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
capsa_mount_fd (const char *src, int targetfd, const char *fstype, unsigned long flags, const char *data,
                const char *what, capsa_error_t *err)
{
    char buf[64];
    if (mount (src, capsa_fd_path (targetfd, buf, sizeof (buf)), fstype, flags, data) < 0)
        return capsa_error_make (err, errno, "cannot mount %s", what);
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

int
capsa_remount_fd (int targetfd, unsigned long flags, const char *what, capsa_error_t *err)
{
    struct mount_attr attr = { .attr_set = mount_attrs (flags) };
    if (mount_setattr (targetfd, "", AT_EMPTY_PATH | ((flags & MS_REC) ? AT_RECURSIVE : 0), &attr, sizeof (attr)) < 0)
        return capsa_error_make (err, errno, "cannot change mount flags of %s", what);
    return 0;
}

int
capsa_bind_fd (int srcfd, int targetfd, bool rec, unsigned long flags, const char *what, capsa_error_t *err)
{
    /* Clone the source as a detached mount, set its flags while nobody can
     * see it, then attach it on the target: no window where the bind is
     * writable or allows setuid. */
    cleanup_close int tree = open_tree (srcfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (rec ? AT_RECURSIVE : 0));
    if (tree < 0)
        return capsa_error_make (err, errno, "cannot bind %s", what);
    if (flags != 0) {
        struct mount_attr attr = { .attr_set = mount_attrs (flags) };
        if (mount_setattr (tree, "", AT_EMPTY_PATH | (rec ? AT_RECURSIVE : 0), &attr, sizeof (attr)) < 0)
            return capsa_error_make (err, errno, "cannot set mount flags of %s", what);
    }
    if (move_mount (tree, "", targetfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return capsa_error_make (err, errno, "cannot attach %s", what);
    return 0;
}
