/* Applying a layer tarball to a root directory.  The tarball is hostile.
 *
 * Rules (the whole layer fails with "LAYER: entry 'NAME': why" otherwise):
 *  - Names are cleaned ("./a//b/" -> "a/b"); absolute names and ".."
 *    components are refused.
 *  - The directory an entry goes into is resolved from the root with
 *    openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV):
 *    symbolic links inside the tree are followed (merged-/usr images put
 *    "lib/x" through "lib -> usr/lib"), but any resolution that would
 *    leave the root (an absolute link, "../../..") fails.  Missing
 *    directories are created one component at a time, each below a
 *    descriptor that was itself resolved that way.  Without openat2
 *    (ENOSYS) every component is opened with O_NOFOLLOW: parents that are
 *    symbolic links are refused outright.
 *  - The last component is never followed: whatever is there (a symlink
 *    planted by an earlier entry included) is removed and the new entry
 *    created with O_CREAT|O_EXCL|O_NOFOLLOW, mkdirat, symlinkat, linkat
 *    or mknodat relative to the parent's descriptor.
 *  - Hard links: the target is resolved the same way, must exist and must
 *    not be a directory; linkat never follows a symlink target.
 *  - Without root: block and character devices are skipped, setuid and
 *    setgid bits dropped, owners not kept, directories get u+rwx and files
 *    u+r (so the tree can be read, changed and removed by its owner).
 *    With root: owners, modes and device nodes as the layer says.
 *  - Extended attributes are not applied.
 *
 * Whiteouts are applied in a first pass over the tarball, before any
 * entry of the layer is written, so that they remove lower-layer content
 * only: ".wh.NAME" removes NAME next to it, ".wh..wh..opq" empties its
 * directory. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include "oci/oci_private.h"

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"

static bool have_openat2 = true;

/* For the unit tests: pretend the kernel has no openat2. */
void oci_extract_force_fallback (bool on);
void
oci_extract_force_fallback (bool on)
{
    have_openat2 = !on;
}

struct ctx {
    int rootfd;
    const struct oci_extract_opts *o;
    const char *entry; /* current entry name, for messages */
    size_t skipped_devices;
};

static int
fail (struct ctx *x, capsa_error_t *err, int errnum, const char *fmt, ...) __attribute__ ((format (printf, 4, 5)));

static int
fail (struct ctx *x, capsa_error_t *err, int errnum, const char *fmt, ...)
{
    va_list ap;
    char *why = NULL;
    va_start (ap, fmt);
    if (vasprintf (&why, fmt, ap) < 0)
        why = NULL;
    va_end (ap);
    capsa_error_make (err, errnum, "%s: entry '%.300s': %s", x->o && x->o->what ? x->o->what : "layer",
                      x->entry ? x->entry : "", why ? why : "error");
    free (why);
    return -1;
}

int
oci_clean_path (const char *name, char **out, capsa_error_t *err)
{
    *out = NULL;
    if (name == NULL || *name == '\0')
        return capsa_error_make (err, 0, "empty name");
    if (name[0] == '/')
        return capsa_error_make (err, 0, "absolute path");
    size_t n = strlen (name);
    if (n >= PATH_MAX)
        return capsa_error_make (err, ENAMETOOLONG, "name too long");
    char *res = xmalloc (n + 1);
    size_t len = 0;
    const char *p = name;
    while (*p) {
        size_t c = strcspn (p, "/");
        if (c == 2 && p[0] == '.' && p[1] == '.') {
            free (res);
            return capsa_error_make (err, 0, "'..' in the path");
        }
        if (c > 0 && !(c == 1 && p[0] == '.')) {
            if (len)
                res[len++] = '/';
            memcpy (res + len, p, c);
            len += c;
        }
        p += c;
        while (*p == '/')
            p++;
    }
    res[len] = '\0';
    if (len == 0) {
        free (res);
        return 0;
    }
    *out = res;
    return 0;
}

/* Open directory PATH (cleaned, relative to the root; NULL or "" is the
 * root) for use with *at() calls.  create: make missing components. */
static int
open_dir (struct ctx *x, const char *path, bool create, capsa_error_t *err)
{
    if (path == NULL || *path == '\0') {
        int fd = fcntl (x->rootfd, F_DUPFD_CLOEXEC, 3);
        return fd < 0 ? fail (x, err, errno, "dup") : fd;
    }
    cleanup_free char *prefix = xstrdup (path);
    int cur = fcntl (x->rootfd, F_DUPFD_CLOEXEC, 3);
    if (cur < 0)
        return fail (x, err, errno, "dup");
    char *p = prefix;
    for (;;) {
        char *slash = strchr (p, '/');
        if (slash)
            *slash = '\0';
        int next = -1;
        for (int attempt = 0; attempt < 2; attempt++) {
            if (have_openat2) {
                struct open_how how = {
                    .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
                    .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
                };
                next = (int) syscall (SYS_openat2, x->rootfd, prefix, &how, sizeof (how));
                if (next < 0 && errno == ENOSYS) {
                    have_openat2 = false;
                    attempt--;
                    continue;
                }
            } else {
                next = openat (cur, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
            }
            if (next >= 0 || errno != ENOENT || !create)
                break;
            /* p is a plain name below cur, which lies inside the root. */
            if (mkdirat (cur, p, x->o && x->o->as_root ? 0755 : 0755 | S_IRWXU) < 0 && errno != EEXIST) {
                int e = errno;
                close (cur);
                return fail (x, err, e, "cannot create directory '%s'", prefix);
            }
        }
        if (next < 0) {
            int e = errno;
            if (!have_openat2 && (e == ENOTDIR || e == ELOOP)) {
                struct stat st;
                if (fstatat (cur, p, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK (st.st_mode)) {
                    close (cur);
                    return fail (x, err, 0, "'%s' is a symbolic link: refusing to write through it", prefix);
                }
            }
            close (cur);
            if (e == EXDEV)
                return fail (x, err, 0,
                             "'%s' is a symbolic link leading outside the image root: refusing to write through it",
                             prefix);
            if (e == ELOOP)
                return fail (x, err, 0, "'%s': too many levels of symbolic links", prefix);
            if (e == ENOTDIR)
                return fail (x, err, 0, "'%s' is not a directory", prefix);
            if (e == ENOENT && !create)
                return -2; /* missing, quietly */
            return fail (x, err, e, "cannot open directory '%s'", prefix);
        }
        close (cur);
        cur = next;
        if (slash == NULL)
            break;
        *slash = '/';
        p = slash + 1;
    }
    return cur;
}

/* Remove NAME in DIRFD and, when it is a directory, everything below it;
 * never follows a symbolic link. */
static int
remove_tree (int pfd, const char *name)
{
    struct stat st;
    if (fstatat (pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR (st.st_mode))
        return unlinkat (pfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
    int fd = openat (pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if ((st.st_mode & S_IRWXU) != S_IRWXU)
        fchmod (fd, st.st_mode | S_IRWXU);
    DIR *d = fdopendir (fd);
    if (d == NULL) {
        close (fd);
        return -1;
    }
    int r = 0;
    for (struct dirent *e; (e = readdir (d));) {
        if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
            continue;
        if (remove_tree (dirfd (d), e->d_name) < 0)
            r = -1;
    }
    closedir (d);
    if (r == 0 && unlinkat (pfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        r = -1;
    return r;
}

/* Empty directory FD (an opaque whiteout). */
static int
empty_dir (int fd)
{
    int dup = fcntl (fd, F_DUPFD_CLOEXEC, 3);
    if (dup < 0)
        return -1;
    DIR *d = fdopendir (dup);
    if (d == NULL) {
        close (dup);
        return -1;
    }
    struct strv names = { 0 };
    for (struct dirent *e; (e = readdir (d));)
        if (strcmp (e->d_name, ".") != 0 && strcmp (e->d_name, "..") != 0)
            strv_push (&names, e->d_name);
    closedir (d);
    int r = 0;
    for (size_t i = 0; i < names.n; i++)
        if (remove_tree (fd, names.v[i]) < 0)
            r = -1;
    strv_free (&names);
    return r;
}

/* Split "a/b/c" into a directory ("a/b", or NULL) and a base name, both
 * pointing into PATH (modified). */
static void
split_path (char *path, char **dir, char **base)
{
    char *slash = strrchr (path, '/');
    if (slash == NULL) {
        *dir = NULL;
        *base = path;
    } else {
        *slash = '\0';
        *dir = path;
        *base = slash + 1;
    }
}

static const char *
entry_name (struct archive_entry *e)
{
    const char *n = archive_entry_pathname (e);
    return n ? n : archive_entry_pathname_utf8 (e);
}

static int
open_archive (int layerfd, struct archive **out, capsa_error_t *err)
{
    if (lseek (layerfd, 0, SEEK_SET) < 0)
        return capsa_error_make (err, errno, "seek layer");
    struct archive *a = archive_read_new ();
    if (a == NULL)
        return capsa_error_make (err, ENOMEM, "archive_read_new");
    archive_read_support_format_tar (a);
    archive_read_support_filter_gzip (a);
    archive_read_support_filter_bzip2 (a);
    archive_read_support_filter_xz (a);
    archive_read_support_filter_zstd (a);
    if (archive_read_open_fd (a, layerfd, 1 << 16) != ARCHIVE_OK) {
        capsa_error_make (err, 0, "not a tar archive: %s", archive_error_string (a));
        archive_read_free (a);
        return -1;
    }
    *out = a;
    return 0;
}

/* Next header; 1 at the end, 0 with *e, -1 on error. */
static int
next_header (struct ctx *x, struct archive *a, struct archive_entry **e, capsa_error_t *err)
{
    int r = archive_read_next_header (a, e);
    if (r == ARCHIVE_EOF)
        return 1;
    if (r == ARCHIVE_OK || r == ARCHIVE_WARN)
        return 0;
    return capsa_error_make (err, 0, "%s: broken tar archive: %s", x->o && x->o->what ? x->o->what : "layer",
                             archive_error_string (a) ? archive_error_string (a) : "read error");
}

/* Pass 1: whiteouts. */
static int
apply_whiteouts (struct ctx *x, struct archive *a, capsa_error_t *err)
{
    struct archive_entry *e;
    int r;
    while ((r = next_header (x, a, &e, err)) == 0) {
        x->entry = entry_name (e);
        if (x->entry == NULL)
            return fail (x, err, 0, "unreadable name");
        cleanup_free char *path = NULL;
        if (oci_clean_path (x->entry, &path, err) < 0) {
            capsa_error_t inner = *err;
            *err = NULL;
            fail (x, err, 0, "%s", inner->msg);
            capsa_error_free (&inner);
            return -1;
        }
        if (path == NULL)
            continue;
        char *dir, *base;
        split_path (path, &dir, &base);
        if (strncmp (base, WH_PREFIX, strlen (WH_PREFIX)) != 0)
            continue;
        int dfd = open_dir (x, dir, false, err);
        if (dfd == -2)
            continue; /* nothing to remove there */
        if (dfd < 0)
            return -1;
        int rr;
        if (strcmp (base, WH_OPAQUE) == 0) {
            rr = empty_dir (dfd);
        } else {
            const char *victim = base + strlen (WH_PREFIX);
            if (*victim == '\0' || strcmp (victim, ".") == 0 || strcmp (victim, "..") == 0) {
                close (dfd);
                return fail (x, err, 0, "invalid whiteout");
            }
            rr = remove_tree (dfd, victim);
        }
        int e2 = errno;
        close (dfd);
        if (rr < 0)
            return fail (x, err, e2, "cannot apply the whiteout");
    }
    return r < 0 ? -1 : 0;
}

/* Make room for a new entry NAME in DFD: remove what is there, unless it
 * is a directory and a directory is coming. */
static int
clear_slot (struct ctx *x, int dfd, const char *name, bool keep_dir, bool *is_dir, capsa_error_t *err)
{
    struct stat st;
    *is_dir = false;
    if (fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        return fail (x, err, errno, "stat");
    }
    if (keep_dir && S_ISDIR (st.st_mode)) {
        *is_dir = true;
        return 0;
    }
    if (remove_tree (dfd, name) < 0)
        return fail (x, err, errno, "cannot replace the existing file");
    return 0;
}

static mode_t
final_mode (struct ctx *x, struct archive_entry *e, bool dir)
{
    mode_t m = archive_entry_perm (e) & 07777;
    if (x->o && x->o->as_root)
        return m;
    m &= ~(mode_t) (S_ISUID | S_ISGID);
    return m | (dir ? S_IRWXU : S_IRUSR | S_IWUSR);
}

static int
set_owner (struct ctx *x, int dfd, const char *name, int fd, struct archive_entry *e, capsa_error_t *err)
{
    if (!(x->o && x->o->as_root))
        return 0;
    uid_t uid = (uid_t) archive_entry_uid (e);
    gid_t gid = (gid_t) archive_entry_gid (e);
    int r = fd >= 0 ? fchown (fd, uid, gid) : fchownat (dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW);
    return r < 0 ? fail (x, err, errno, "chown") : 0;
}

static int
write_regular (struct ctx *x, struct archive *a, struct archive_entry *e, int dfd, const char *name, capsa_error_t *err)
{
    int fd = openat (dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return fail (x, err, errno, "cannot create the file");
    const void *buf;
    size_t len;
    la_int64_t off;
    int r;
    while ((r = archive_read_data_block (a, &buf, &len, &off)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        const char *p = buf;
        size_t done = 0;
        while (done < len) {
            ssize_t w = pwrite (fd, p + done, len - done, (off_t) off + (off_t) done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                int en = errno;
                close (fd);
                return fail (x, err, en, "write");
            }
            done += (size_t) w;
        }
    }
    if (r != ARCHIVE_EOF) {
        close (fd);
        return fail (x, err, 0, "broken data: %s", archive_error_string (a) ? archive_error_string (a) : "read error");
    }
    if (archive_entry_size_is_set (e) && ftruncate (fd, (off_t) archive_entry_size (e)) < 0) {
        int en = errno;
        close (fd);
        return fail (x, err, en, "truncate");
    }
    if (set_owner (x, dfd, name, fd, e, err) < 0 || fchmod (fd, final_mode (x, e, false)) < 0) {
        int en = errno;
        close (fd);
        return *err ? -1 : fail (x, err, en, "chmod");
    }
    struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { archive_entry_mtime (e), archive_entry_mtime_nsec (e) } };
    futimens (fd, ts);
    close (fd);
    return 0;
}

static int
make_hardlink (struct ctx *x, const char *target, int dfd, const char *name, capsa_error_t *err)
{
    cleanup_free char *tpath = NULL;
    capsa_error_t inner = NULL;
    if (oci_clean_path (target, &tpath, &inner) < 0 || tpath == NULL) {
        fail (x, err, 0, "hard link target '%.300s': %s", target, inner ? inner->msg : "the root");
        capsa_error_free (&inner);
        return -1;
    }
    char *tdir, *tbase;
    split_path (tpath, &tdir, &tbase);
    int tfd = open_dir (x, tdir, false, err);
    if (tfd == -2)
        return fail (x, err, 0, "hard link target '%.300s' does not exist", target);
    if (tfd < 0)
        return -1;
    struct stat st, cur;
    if (fstatat (tfd, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        int en = errno;
        close (tfd);
        return fail (x, err, en == ENOENT ? 0 : en, "hard link target '%.300s' %s", target,
                     en == ENOENT ? "does not exist" : "cannot be read");
    }
    if (S_ISDIR (st.st_mode)) {
        close (tfd);
        return fail (x, err, 0, "hard link to a directory");
    }
    if (fstatat (dfd, name, &cur, AT_SYMLINK_NOFOLLOW) == 0 && cur.st_ino == st.st_ino && cur.st_dev == st.st_dev) {
        close (tfd);
        return 0; /* already that file */
    }
    bool isdir;
    if (clear_slot (x, dfd, name, false, &isdir, err) < 0) {
        close (tfd);
        return -1;
    }
    int r = linkat (tfd, tbase, dfd, name, 0);
    int en = errno;
    close (tfd);
    return r < 0 ? fail (x, err, en, "cannot create the hard link") : 0;
}

static void
notice (struct ctx *x, enum capsa_oci_notice level, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static void
notice (struct ctx *x, enum capsa_oci_notice level, const char *fmt, ...)
{
    va_list ap;
    char *msg = NULL;
    if (x->o == NULL || x->o->notice == NULL)
        return;
    va_start (ap, fmt);
    if (vasprintf (&msg, fmt, ap) >= 0) {
        x->o->notice (level, msg, x->o->data);
        free (msg);
    }
    va_end (ap);
}

static int
extract_entry (struct ctx *x, struct archive *a, struct archive_entry *e, capsa_error_t *err)
{
    cleanup_free char *path = NULL;
    capsa_error_t inner = NULL;
    if (oci_clean_path (x->entry, &path, &inner) < 0) {
        fail (x, err, 0, "%s", inner->msg);
        capsa_error_free (&inner);
        return -1;
    }
    if (path == NULL)
        return 0; /* "./": the root itself keeps its mode */
    char *dir, *base;
    split_path (path, &dir, &base);
    if (strncmp (base, WH_PREFIX, strlen (WH_PREFIX)) == 0)
        return 0; /* applied in pass 1 */
    mode_t type = archive_entry_filetype (e);
    const char *hl = archive_entry_hardlink (e);
    if (type != AE_IFDIR && type != AE_IFREG && type != AE_IFLNK && type != AE_IFCHR && type != AE_IFBLK
        && type != AE_IFIFO && hl == NULL)
        return 0; /* sockets and unknown types */
    if ((type == AE_IFCHR || type == AE_IFBLK) && !(x->o && x->o->as_root)) {
        x->skipped_devices++;
        notice (x, CAPSA_OCI_VERBOSE, "%s: skipping device node '%s' (not building as root)",
                x->o && x->o->what ? x->o->what : "layer", path);
        return 0;
    }
    int dfd = open_dir (x, dir, true, err);
    if (dfd < 0)
        return -1;
    bool isdir = false;
    int r = 0;
    if (hl != NULL) {
        r = make_hardlink (x, hl, dfd, base, err);
    } else if (type == AE_IFDIR) {
        r = clear_slot (x, dfd, base, true, &isdir, err);
        if (r == 0 && !isdir && mkdirat (dfd, base, 0700) < 0)
            r = fail (x, err, errno, "cannot create the directory");
        if (r == 0) {
            int fd = openat (dfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0)
                r = fail (x, err, errno, "open the directory");
            else {
                r = set_owner (x, dfd, base, fd, e, err);
                if (r == 0 && fchmod (fd, final_mode (x, e, true)) < 0)
                    r = fail (x, err, errno, "chmod");
                close (fd);
            }
        }
    } else {
        r = clear_slot (x, dfd, base, false, &isdir, err);
        if (r == 0 && type == AE_IFREG) {
            r = write_regular (x, a, e, dfd, base, err);
        } else if (r == 0 && type == AE_IFLNK) {
            const char *target = archive_entry_symlink (e);
            if (target == NULL)
                target = archive_entry_symlink_utf8 (e);
            if (target == NULL || *target == '\0')
                r = fail (x, err, 0, "symbolic link without a target");
            else if (symlinkat (target, dfd, base) < 0)
                r = fail (x, err, errno, "cannot create the symbolic link");
            else {
                r = set_owner (x, dfd, base, -1, e, err);
                struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { archive_entry_mtime (e), 0 } };
                utimensat (dfd, base, ts, AT_SYMLINK_NOFOLLOW);
            }
        } else if (r == 0) {
            mode_t kind = type == AE_IFCHR ? S_IFCHR : type == AE_IFBLK ? S_IFBLK : S_IFIFO;
            dev_t dev = kind == S_IFIFO ? 0 : makedev (archive_entry_rdevmajor (e), archive_entry_rdevminor (e));
            if (mknodat (dfd, base, kind | 0600, dev) < 0)
                r = fail (x, err, errno, "cannot create the %s", kind == S_IFIFO ? "FIFO" : "device node");
            else {
                r = set_owner (x, dfd, base, -1, e, err);
                if (r == 0 && fchmodat (dfd, base, final_mode (x, e, false), 0) < 0)
                    r = fail (x, err, errno, "chmod");
            }
        }
    }
    close (dfd);
    return r;
}

int
oci_apply_layer (int rootfd, int layerfd, const struct oci_extract_opts *o, capsa_error_t *err)
{
    struct ctx x = { .rootfd = rootfd, .o = o };
    struct archive *a = NULL;
    struct archive_entry *e;
    int r;

    if (open_archive (layerfd, &a, err) < 0)
        return capsa_error_wrap (err, "%s", o && o->what ? o->what : "layer");
    r = apply_whiteouts (&x, a, err);
    archive_read_free (a);
    if (r < 0)
        return -1;

    if (open_archive (layerfd, &a, err) < 0)
        return capsa_error_wrap (err, "%s", o && o->what ? o->what : "layer");
    x.entry = NULL;
    while ((r = next_header (&x, a, &e, err)) == 0) {
        x.entry = entry_name (e);
        if (x.entry == NULL) {
            r = fail (&x, err, 0, "unreadable name");
            break;
        }
        if (extract_entry (&x, a, e, err) < 0) {
            r = -1;
            break;
        }
    }
    archive_read_free (a);
    if (r < 0)
        return -1;
    if (x.skipped_devices)
        notice (&x, CAPSA_OCI_INFO, "%s: skipped %zu device node(s): only root builds keep them",
                o && o->what ? o->what : "layer", x.skipped_devices);
    return 0;
}
