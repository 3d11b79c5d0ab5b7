/* File-tree helpers: see tree.h. */
#include "imgbuild/tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "lib/utils.h"
#include "runtime/mount.h"

/* "a/b/c" -> parent "a/b", name "c" (in a new buffer the caller frees). */
static char *
tree_split (const char *path, const char **name)
{
    char *copy;
    while (*path == '/')
        path++;
    copy = xstrdup (path);
    /* Trailing slashes name the same thing. */
    for (size_t n = strlen (copy); n > 0 && copy[n - 1] == '/'; n--)
        copy[n - 1] = '\0';
    char *slash = strrchr (copy, '/');
    if (slash == NULL) {
        *name = copy;
        char *r = xmalloc (strlen (copy) + 3);
        /* parent "." then the name after a NUL */
        strcpy (r, ".");
        strcpy (r + 2, copy);
        free (copy);
        *name = r + 2;
        return r;
    }
    *slash = '\0';
    *name = slash + 1;
    return copy;
}

int
tree_open_dir (int rootfd, const char *path, bool create, capsa_error_t *err)
{
    char buf[64];
    cleanup_close int p = -1;
    int fd;

    while (*path == '/')
        path++;
    if (*path == '\0')
        path = ".";
    if (create)
        p = capsa_make_in_root (rootfd, path, NODE_DIR, err);
    else {
        p = capsa_open_in_root (rootfd, path, O_DIRECTORY);
        if (p < 0)
            return capsa_error_make (err, errno, "/%s", path);
    }
    if (p < 0)
        return -1;
    fd = open (capsa_fd_path (p, buf, sizeof (buf)), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return capsa_error_make (err, errno, "open /%s", path);
    return fd;
}

mode_t
tree_type (int rootfd, const char *path)
{
    const char *name;
    cleanup_free char *parent = tree_split (path, &name);
    cleanup_close int dir = -1;
    capsa_error_t err = NULL;
    struct stat st;

    if (*name == '\0')
        return S_IFDIR; /* the root itself */
    dir = tree_open_dir (rootfd, parent, false, &err);
    capsa_error_free (&err);
    if (dir < 0 || fstatat (dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    return st.st_mode & S_IFMT;
}

int
tree_write (int rootfd, const char *path, const char *data, size_t len, mode_t mode, bool append,
            capsa_error_t *err)
{
    const char *name;
    cleanup_free char *parent = tree_split (path, &name);
    cleanup_close int dir = -1, fd = -1;

    if (*name == '\0')
        return capsa_error_make (err, 0, "cannot write a file at /");
    if (append) {
        cleanup_close int p = capsa_open_in_root (rootfd, path, 0);
        struct stat st;
        char buf[64];
        if (p >= 0 && fstat (p, &st) == 0 && S_ISREG (st.st_mode)) {
            fd = open (capsa_fd_path (p, buf, sizeof (buf)), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY);
            if (fd < 0)
                return capsa_error_make (err, errno, "open /%s", path);
        }
    }
    if (fd < 0) {
        dir = tree_open_dir (rootfd, parent, true, err);
        if (dir < 0)
            return capsa_error_wrap (err, "write /%s", path);
        fd = openat (dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);
        if (fd < 0 && (errno == ELOOP || errno == EISDIR || errno == ENXIO || errno == EACCES)) {
            /* A symlink, a device, a read-only file...: replace it. */
            if (unlinkat (dir, name, 0) < 0 && errno != ENOENT)
                return capsa_error_make (err, errno, "replace /%s", path);
            fd = openat (dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);
        }
        if (fd < 0)
            return capsa_error_make (err, errno, "create /%s", path);
        if (fchmod (fd, mode) < 0)
            return capsa_error_make (err, errno, "chmod /%s", path);
    }
    if (write_all (fd, data, len) < 0)
        return capsa_error_make (err, errno, "write /%s", path);
    if (close (steal_fd (&fd)) < 0)
        return capsa_error_make (err, errno, "write /%s", path);
    return 0;
}

int
tree_mkdir (int rootfd, const char *path, mode_t mode, capsa_error_t *err)
{
    const char *name;
    cleanup_free char *parent = tree_split (path, &name);
    cleanup_close int dir = -1;

    if (*name == '\0')
        return 0;
    dir = tree_open_dir (rootfd, parent, true, err);
    if (dir < 0)
        return capsa_error_wrap (err, "mkdir /%s", path);
    if (mkdirat (dir, name, mode) < 0) {
        if (errno == EEXIST)
            return 0;
        return capsa_error_make (err, errno, "mkdir /%s", path);
    }
    /* Exactly MODE, whatever the umask. */
    if (fchmodat (dir, name, mode, 0) < 0)
        return capsa_error_make (err, errno, "chmod /%s", path);
    return 0;
}

int
tree_symlink (int rootfd, const char *path, const char *target, capsa_error_t *err)
{
    const char *name;
    cleanup_free char *parent = tree_split (path, &name);
    cleanup_close int dir = tree_open_dir (rootfd, parent, true, err);
    struct stat st;

    if (dir < 0)
        return capsa_error_wrap (err, "symlink /%s", path);
    if (fstatat (dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return 0;
    if (symlinkat (target, dir, name) < 0 && errno != EEXIST)
        return capsa_error_make (err, errno, "symlink /%s", path);
    return 0;
}

int
tree_read (int rootfd, const char *path, size_t max, char **out, size_t *len, capsa_error_t *err)
{
    cleanup_close int p = capsa_open_in_root (rootfd, path, 0);
    cleanup_close int fd = -1;
    struct stat st;
    char buf[64];

    *out = NULL;
    if (len)
        *len = 0;
    if (p < 0 || fstat (p, &st) < 0 || !S_ISREG (st.st_mode)) {
        errno = ENOENT;
        return -1;
    }
    fd = open (capsa_fd_path (p, buf, sizeof (buf)), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return capsa_error_make (err, errno, "open /%s", path);
    if (read_fd_all (fd, max, out, len, err) < 0)
        return capsa_error_wrap (err, "read /%s", path);
    return 0;
}

int
tree_rename (int rootfd, const char *from, const char *to, capsa_error_t *err)
{
    const char *fname, *tname;
    cleanup_free char *fparent = tree_split (from, &fname);
    cleanup_free char *tparent = tree_split (to, &tname);
    cleanup_close int fdir = tree_open_dir (rootfd, fparent, false, err);
    cleanup_close int tdir = -1;

    if (fdir < 0)
        return capsa_error_wrap (err, "rename /%s", from);
    tdir = tree_open_dir (rootfd, tparent, true, err);
    if (tdir < 0)
        return capsa_error_wrap (err, "rename to /%s", to);
    if (renameat (fdir, fname, tdir, tname) < 0)
        return capsa_error_make (err, errno, "rename /%s to /%s", from, to);
    return 0;
}

/* ---- copying host files in ------------------------------------------------------ */

struct tree_ancestor {
    dev_t dev;
    ino_t ino;
    const struct tree_ancestor *up;
};

static int
tree_copy_data (int in, int out, const char *src, capsa_error_t *err)
{
    for (;;) {
        ssize_t n = copy_file_range (in, NULL, out, NULL, 1 << 30, 0);
        if (n == 0)
            return 0;
        if (n > 0)
            continue;
        if (errno == EINTR)
            continue;
        if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP || errno == EBADF)
            break;
        return capsa_error_make (err, errno, "copy %s", src);
    }
    char buf[65536];
    for (;;) {
        ssize_t n = read (in, buf, sizeof (buf));
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return capsa_error_make (err, errno, "read %s", src);
        }
        if (write_all (out, buf, (size_t) n) < 0)
            return capsa_error_make (err, errno, "copy %s", src);
    }
}

/* Copy SRC (the entry SNAME of host directory SDIR, symlinks followed) to
 * the entry DNAME of directory DDIR (inside the root). */
static int
tree_copy_node (int sdir, const char *sname, const char *src, int ddir, const char *dname,
                const struct tree_ancestor *up, int depth, capsa_error_t *err)
{
    struct stat st, dst;
    mode_t perm;

    if (fstatat (sdir, sname, &st, 0) < 0)
        return capsa_error_make (err, errno, "%s", src);
    perm = st.st_mode & 07777;
    if (depth > 256)
        return capsa_error_make (err, ELOOP, "%s: too deep", src);

    if (S_ISDIR (st.st_mode)) {
        for (const struct tree_ancestor *a = up; a; a = a->up)
            if (a->dev == st.st_dev && a->ino == st.st_ino)
                return capsa_error_make (err, ELOOP, "%s: symlink loop", src);
        struct tree_ancestor me = { st.st_dev, st.st_ino, up };
        cleanup_close int in = openat (sdir, sname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        cleanup_close int out = -1;
        if (in < 0)
            return capsa_error_make (err, errno, "%s", src);
        if (fstatat (ddir, dname, &dst, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR (dst.st_mode))
            return capsa_error_make (err, 0, "cannot overwrite non-directory with directory %s", src);
        if (mkdirat (ddir, dname, 0700) < 0 && errno != EEXIST)
            return capsa_error_make (err, errno, "mkdir for %s", src);
        out = openat (ddir, dname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (out < 0)
            return capsa_error_make (err, errno, "open the copy of %s", src);
        int dupfd = dup (in);
        DIR *d = dupfd >= 0 ? fdopendir (dupfd) : NULL;
        if (d == NULL) {
            if (dupfd >= 0)
                close (dupfd);
            return capsa_error_make (err, errno, "%s", src);
        }
        int ret = 0;
        for (struct dirent *e; ret == 0 && (errno = 0, e = readdir (d)) != NULL;) {
            if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
                continue;
            cleanup_free char *child = xasprintf ("%s/%s", src, e->d_name);
            ret = tree_copy_node (in, e->d_name, child, out, e->d_name, &me, depth + 1, err);
        }
        closedir (d);
        if (ret < 0)
            return -1;
        if (fchmod (out, perm) < 0)
            return capsa_error_make (err, errno, "chmod the copy of %s", src);
        return 0;
    }
    if (S_ISREG (st.st_mode)) {
        cleanup_close int in = openat (sdir, sname, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        cleanup_close int out = -1;
        if (in < 0)
            return capsa_error_make (err, errno, "%s", src);
        out = openat (ddir, dname, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, perm & 0777);
        if (out < 0 && errno != EISDIR) {
            /* cp -f: remove what cannot be opened (a symlink, too) and retry */
            if (unlinkat (ddir, dname, 0) < 0 && errno != ENOENT)
                return capsa_error_make (err, errno, "replace the copy of %s", src);
            out = openat (ddir, dname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, perm & 0777);
        }
        if (out < 0)
            return capsa_error_make (err, errno, "create the copy of %s", src);
        if (tree_copy_data (in, out, src, err) < 0)
            return -1;
        if (fchmod (out, perm) < 0)
            return capsa_error_make (err, errno, "chmod the copy of %s", src);
        return 0;
    }
    if (S_ISFIFO (st.st_mode) || S_ISCHR (st.st_mode) || S_ISBLK (st.st_mode)) {
        if (unlinkat (ddir, dname, 0) < 0 && errno != ENOENT)
            return capsa_error_make (err, errno, "replace the copy of %s", src);
        if (mknodat (ddir, dname, st.st_mode, st.st_rdev) < 0)
            return capsa_error_make (err, errno, "create the copy of %s", src);
        return 0;
    }
    return capsa_error_make (err, 0, "%s: cannot copy a socket", src);
}

int
tree_copy_in (int rootfd, const char *src, const char *dst, capsa_error_t *err)
{
    bool into = false;
    size_t dl = strlen (dst);
    cleanup_free char *target = NULL, *sdircopy = xstrdup (src), *snamecopy = xstrdup (src);
    const char *sname = basename (snamecopy);
    cleanup_close int sdir = open (dirname (sdircopy), O_PATH | O_DIRECTORY | O_CLOEXEC);
    cleanup_close int ddir = -1;
    struct stat st;

    if (sdir < 0 || fstatat (sdir, sname, &st, 0) < 0)
        return capsa_error_make (err, errno, "%s", src);
    while (*dst == '/')
        dst++, dl--;
    if (dl == 0 || dst[dl - 1] == '/') {
        /* "dir/": make sure it exists, and copy into it */
        cleanup_close int d = tree_open_dir (rootfd, dst, true, err);
        if (d < 0)
            return capsa_error_wrap (err, "%%files destination /%s", dst);
        into = true;
    } else if (tree_type (rootfd, dst) != 0) {
        cleanup_close int p = capsa_open_in_root (rootfd, dst, 0);
        struct stat dst_st;
        into = p >= 0 && fstat (p, &dst_st) == 0 && S_ISDIR (dst_st.st_mode);
    }
    if (into)
        target = xasprintf ("%s%s%s", dst, dl == 0 || dst[dl - 1] == '/' ? "" : "/", sname);
    else
        target = xstrdup (dst);

    const char *tname;
    cleanup_free char *tparent = tree_split (target, &tname);
    if (*tname == '\0' || strcmp (tname, ".") == 0 || strcmp (tname, "..") == 0)
        return capsa_error_make (err, 0, "%%files: invalid destination /%s", target);
    ddir = tree_open_dir (rootfd, tparent, true, err);
    if (ddir < 0)
        return capsa_error_wrap (err, "%%files destination /%s", target);
    /* An existing symlink as the last component is followed inside the
     * root, as cp follows it (never out of the root). */
    if (fstatat (ddir, tname, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK (st.st_mode)) {
        cleanup_close int p = capsa_open_in_root (rootfd, target, 0);
        struct stat lst;
        if (p >= 0 && fstat (p, &lst) == 0 && S_ISDIR (lst.st_mode)) {
            char buf[64];
            close (ddir);
            ddir = open (capsa_fd_path (p, buf, sizeof (buf)), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (ddir < 0)
                return capsa_error_make (err, errno, "%%files destination /%s", target);
            tname = sname;
        }
    }
    return tree_copy_node (sdir, sname, src, ddir, tname, NULL, 0, err);
}

/* ---- removing ---------------------------------------------------------------- */

static int
tree_remove_at (int dir, const char *name, dev_t dev, const char *path, int depth, capsa_error_t *err)
{
    struct stat st;

    if (fstatat (dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : capsa_error_make (err, errno, "remove %s", path);
    if (!S_ISDIR (st.st_mode)) {
        if (unlinkat (dir, name, 0) < 0 && errno != ENOENT)
            return capsa_error_make (err, errno, "remove %s", path);
        return 0;
    }
    if (st.st_dev != dev)
        return capsa_error_make (err, EBUSY, "remove %s: another file system is mounted there", path);
    if (depth > 4096)
        return capsa_error_make (err, ELOOP, "remove %s: too deep", path);
    if ((st.st_mode & 0700) != 0700 && st.st_uid == geteuid () && fchmodat (dir, name, (st.st_mode & 07777) | 0700, 0) < 0)
        return capsa_error_make (err, errno, "remove %s", path);
    int fd = openat (dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return capsa_error_make (err, errno, "remove %s", path);
    DIR *d = fdopendir (fd);
    if (d == NULL) {
        close (fd);
        return capsa_error_make (err, errno, "remove %s", path);
    }
    int ret = 0;
    for (struct dirent *e; ret == 0 && (e = readdir (d)) != NULL;) {
        if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
            continue;
        cleanup_free char *child = xasprintf ("%s/%s", path, e->d_name);
        ret = tree_remove_at (dirfd (d), e->d_name, dev, child, depth + 1, err);
    }
    closedir (d);
    if (ret < 0)
        return -1;
    if (unlinkat (dir, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return capsa_error_make (err, errno, "remove %s", path);
    return 0;
}

int
tree_remove (const char *path, capsa_error_t *err)
{
    cleanup_free char *dcopy = xstrdup (path), *bcopy = xstrdup (path);
    const char *name = basename (bcopy);
    cleanup_close int dir = open (dirname (dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;

    if (dir < 0)
        return capsa_error_make (err, errno, "remove %s", path);
    if (fstatat (dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : capsa_error_make (err, errno, "remove %s", path);
    return tree_remove_at (dir, name, st.st_dev, path, 0, err);
}
