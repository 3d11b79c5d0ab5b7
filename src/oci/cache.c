/* The per-user cache of downloaded images and blobs, keyed by digest.
 *
 *   CACHEDIR/            0700, must belong to the user
 *     oras/sha256/HEX    SIF images pulled with oras://
 *     blob/sha256/HEX    layers and configs of docker:// images
 *     oci-tmp/sha256/HEX SIF images made from docker:// images, named by
 *                        the digest of the image's manifest
 *     net/sha256/HEX     images downloaded from http(s):// URLs, named by
 *                        the sha256 of the URL and its Last-Modified
 *     refs/KIND/H        "REF\nDIGEST\n", H = sha256 of REF: the digest a
 *                        reference had when last pulled (for offline use
 *                        and 'capsa cache list')
 *
 * An entry appears only complete and verified: it is written to
 * ".tmp.HEX.PID" while ".HEX.lock" is held (flock), checked by the caller's
 * fill function, fsync'ed and renamed into place.  Concurrent pulls of the
 * same digest wait on the lock and then find the entry.  Dot files are
 * never entries. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "oci/oci_private.h"

struct oci_cache {
    int dirfd;
    char *dir;
};

static const char *const kinds[] = { "oras", "blob", "oci-tmp", "net" };

/* mkdir -p DIR; components created here get 0700. */
static int
mkdir_p (const char *dir, capsa_error_t *err)
{
    cleanup_free char *p = xstrdup (dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir (p, 0700) < 0 && errno != EEXIST)
            return capsa_error_make (err, errno, "mkdir %s", p);
        *s = '/';
    }
    if (mkdir (p, 0700) < 0 && errno != EEXIST)
        return capsa_error_make (err, errno, "mkdir %s", p);
    return 0;
}

int
oci_cache_open (const char *dir, struct oci_cache **out, capsa_error_t *err)
{
    struct stat st;
    if (dir == NULL || *dir != '/')
        return capsa_error_make (err, 0, "cache directory '%s' is not an absolute path", dir ? dir : "");
    if (mkdir_p (dir, err) < 0)
        return capsa_error_wrap (err, "cache directory");
    int fd = open (dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return capsa_error_make (err, errno, "cache directory %s", dir);
    if (fstat (fd, &st) < 0) {
        close (fd);
        return capsa_error_make (err, errno, "cache directory %s", dir);
    }
    if (st.st_uid != geteuid ()) {
        close (fd);
        return capsa_error_make (err, 0, "cache directory %s belongs to uid %u, not to you (uid %u)", dir,
                                 (unsigned) st.st_uid, (unsigned) geteuid ());
    }
    if ((st.st_mode & 07777) != 0700 && fchmod (fd, 0700) < 0) {
        close (fd);
        return capsa_error_make (err, errno, "chmod 0700 %s", dir);
    }
    struct oci_cache *c = xcalloc (1, sizeof (*c));
    c->dirfd = fd;
    c->dir = xstrdup (dir);
    *out = c;
    return 0;
}

void
oci_cache_close (struct oci_cache *c)
{
    if (c == NULL)
        return;
    close (c->dirfd);
    free (c->dir);
    free (c);
}

char *
oci_cache_path (struct oci_cache *c, const char *kind, const char *digest)
{
    return xasprintf ("%s/%s/sha256/%s", c->dir, kind, oci_digest_hex (digest));
}

/* A descriptor of CACHEDIR/A/B, created (0700) when missing. */
static int
open_sub (struct oci_cache *c, const char *a, const char *b, capsa_error_t *err)
{
    if (mkdirat (c->dirfd, a, 0700) < 0 && errno != EEXIST)
        return capsa_error_make (err, errno, "mkdir %s/%s", c->dir, a);
    cleanup_close int afd = openat (c->dirfd, a, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (afd < 0)
        return capsa_error_make (err, errno, "open %s/%s", c->dir, a);
    if (mkdirat (afd, b, 0700) < 0 && errno != EEXIST)
        return capsa_error_make (err, errno, "mkdir %s/%s/%s", c->dir, a, b);
    int fd = openat (afd, b, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return capsa_error_make (err, errno, "open %s/%s/%s", c->dir, a, b);
    return fd;
}

static bool
entry_exists (int dirfd, const char *name)
{
    struct stat st;
    if (fstatat (dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG (st.st_mode))
        return false;
    /* Last use, for 'capsa cache list'. */
    utimensat (dirfd, name, NULL, AT_SYMLINK_NOFOLLOW);
    return true;
}

/* Take the entry's lock; the lock file is removed by its holder when done,
 * so check that the file locked is still the one in the directory. */
static int
take_lock (int dirfd, const char *name, capsa_error_t *err)
{
    for (;;) {
        struct stat a, b;
        int fd = openat (dirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return capsa_error_make (err, errno, "lock file %s", name);
        if (flock (fd, LOCK_EX) < 0) {
            int e = errno;
            close (fd);
            return capsa_error_make (err, e, "lock %s", name);
        }
        if (fstat (fd, &a) == 0 && fstatat (dirfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_ino == b.st_ino
            && a.st_dev == b.st_dev)
            return fd;
        close (fd);
    }
}

static void
drop_lock (int dirfd, const char *name, int fd)
{
    unlinkat (dirfd, name, 0);
    close (fd);
}

/* Entry KIND/DIGEST, made when missing by FILL (into a descriptor) or
 * MAKE (creating a file at a path), under the entry's lock. */
static int
ensure (struct oci_cache *c, const char *kind, const char *digest, int (*fill) (int fd, void *data, capsa_error_t *err),
        int (*make) (const char *path, void *data, capsa_error_t *err), void *data, char **path, bool *filled,
        capsa_error_t *err)
{
    if (oci_digest_check (digest, err) < 0)
        return -1;
    const char *hex = oci_digest_hex (digest);
    if (filled)
        *filled = false;
    cleanup_close int dfd = open_sub (c, kind, "sha256", err);
    if (dfd < 0)
        return capsa_error_wrap (err, "cache");
    if (entry_exists (dfd, hex)) {
        *path = oci_cache_path (c, kind, digest);
        return 0;
    }
    cleanup_free char *lockname = xasprintf (".%s.lock", hex);
    cleanup_free char *tmpname = xasprintf (".tmp.%s.%d", hex, (int) getpid ());
    int lock = take_lock (dfd, lockname, err);
    if (lock < 0)
        return capsa_error_wrap (err, "cache %s", c->dir);
    if (entry_exists (dfd, hex)) {
        drop_lock (dfd, lockname, lock);
        *path = oci_cache_path (c, kind, digest);
        return 0;
    }
    unlinkat (dfd, tmpname, 0);
    int r, fd = -1;
    if (fill != NULL) {
        fd = openat (dfd, tmpname, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            int e = errno;
            drop_lock (dfd, lockname, lock);
            return capsa_error_make (err, e, "create %s/%s/sha256/%s", c->dir, kind, tmpname);
        }
        r = fill (fd, data, err);
    } else {
        cleanup_free char *tmppath = xasprintf ("%s/%s/sha256/%s", c->dir, kind, tmpname);
        r = make (tmppath, data, err);
        if (r == 0) {
            struct stat st;
            fd = openat (dfd, tmpname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0 || fstat (fd, &st) < 0 || !S_ISREG (st.st_mode))
                r = capsa_error_make (err, errno, "%s is not a regular file", tmppath);
        }
    }
    if (r == 0 && (fsync (fd) < 0 || fchmod (fd, 0644) < 0))
        r = capsa_error_make (err, errno, "write %s/%s/sha256/%s", c->dir, kind, tmpname);
    if (fd >= 0)
        close (fd);
    if (r == 0 && renameat (dfd, tmpname, dfd, hex) < 0)
        r = capsa_error_make (err, errno, "rename %s in %s/%s/sha256", tmpname, c->dir, kind);
    if (r < 0)
        unlinkat (dfd, tmpname, 0);
    else
        fsync (dfd);
    drop_lock (dfd, lockname, lock);
    if (r < 0)
        return -1;
    *path = oci_cache_path (c, kind, digest);
    if (filled)
        *filled = true;
    return 0;
}

int
oci_cache_ensure (struct oci_cache *c, const char *kind, const char *digest,
                  int (*fill) (int fd, void *data, capsa_error_t *err), void *data, char **path, bool *filled,
                  capsa_error_t *err)
{
    return ensure (c, kind, digest, fill, NULL, data, path, filled, err);
}

/* The cache of O (or the default one), opened. */
static int
open_for (const struct capsa_oci_opts *o, struct oci_cache **c, capsa_error_t *err)
{
    cleanup_free char *dir = o && o->cachedir ? xstrdup (o->cachedir) : capsa_oci_default_cachedir ();
    return oci_cache_open (dir, c, err);
}

int
capsa_cache_ensure_file (const struct capsa_oci_opts *o, const char *kind, const char *key,
                         int (*make) (const char *path, void *data, capsa_error_t *err), void *data, char **path,
                         bool *made, capsa_error_t *err)
{
    struct oci_cache *c = NULL;
    if (open_for (o, &c, err) < 0)
        return -1;
    int r = ensure (c, kind, key, NULL, make, data, path, made, err);
    oci_cache_close (c);
    return r;
}

int
capsa_cache_set_ref (const struct capsa_oci_opts *o, const char *kind, const char *ref, const char *key,
                     capsa_error_t *err)
{
    struct oci_cache *c = NULL;
    if (open_for (o, &c, err) < 0)
        return -1;
    int r = oci_cache_set_ref (c, kind, ref, key, err);
    oci_cache_close (c);
    return r;
}

char *
capsa_cache_lookup_ref (const struct capsa_oci_opts *o, const char *kind, const char *ref)
{
    struct oci_cache *c = NULL;
    capsa_error_t ignore = NULL;
    if (open_for (o, &c, &ignore) < 0) {
        capsa_error_free (&ignore);
        return NULL;
    }
    char *path = NULL;
    cleanup_free char *key = oci_cache_get_ref (c, kind, ref);
    if (key != NULL) {
        struct stat st;
        path = oci_cache_path (c, kind, key);
        if (stat (path, &st) < 0 || !S_ISREG (st.st_mode)) {
            free (path);
            path = NULL;
        }
    }
    oci_cache_close (c);
    return path;
}

static void
ref_name (const char *ref, char *out)
{
    oci_digest_buf (ref, strlen (ref), out);
}

int
oci_cache_set_ref (struct oci_cache *c, const char *kind, const char *ref, const char *digest, capsa_error_t *err)
{
    char h[OCI_DIGEST_LEN + 1];
    ref_name (ref, h);
    cleanup_close int dfd = open_sub (c, "refs", kind, err);
    if (dfd < 0)
        return -1;
    cleanup_free char *tmp = xasprintf (".tmp.%s.%d", oci_digest_hex (h), (int) getpid ());
    cleanup_free char *text = xasprintf ("%s\n%s\n", ref, digest);
    unlinkat (dfd, tmp, 0);
    int fd = openat (dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return capsa_error_make (err, errno, "cache reference file");
    if (write_all (fd, text, strlen (text)) < 0) {
        int e = errno;
        close (fd);
        unlinkat (dfd, tmp, 0);
        return capsa_error_make (err, e, "cache reference file");
    }
    close (fd);
    if (renameat (dfd, tmp, dfd, oci_digest_hex (h)) < 0) {
        int e = errno;
        unlinkat (dfd, tmp, 0);
        return capsa_error_make (err, e, "cache reference file");
    }
    return 0;
}

/* Read a refs file: REF and DIGEST (new strings). */
static int
read_ref_file (int dfd, const char *name, char **ref, char **digest)
{
    cleanup_close int fd = openat (dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    char *text = NULL;
    capsa_error_t ignore = NULL;
    if (fd < 0 || read_fd_all (fd, 8192, &text, NULL, &ignore) < 0) {
        capsa_error_free (&ignore);
        return -1;
    }
    char *nl = strchr (text, '\n');
    if (nl == NULL) {
        free (text);
        return -1;
    }
    *nl = '\0';
    char *d = nl + 1;
    d[strcspn (d, "\n")] = '\0';
    if (!oci_digest_valid (d)) {
        free (text);
        return -1;
    }
    *ref = xstrdup (text);
    *digest = xstrdup (d);
    free (text);
    return 0;
}

char *
oci_cache_get_ref (struct oci_cache *c, const char *kind, const char *ref)
{
    char h[OCI_DIGEST_LEN + 1];
    char *r = NULL, *d = NULL;
    capsa_error_t ignore = NULL;
    ref_name (ref, h);
    int dfd = open_sub (c, "refs", kind, &ignore);
    capsa_error_free (&ignore);
    if (dfd < 0)
        return NULL;
    if (read_ref_file (dfd, oci_digest_hex (h), &r, &d) < 0 || strcmp (r, ref) != 0) {
        free (d);
        d = NULL;
    }
    free (r);
    close (dfd);
    return d;
}

void
capsa_cache_entries_free (struct capsa_cache_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free (e[i].kind);
        free (e[i].digest);
        free (e[i].path);
        free (e[i].ref);
    }
    free (e);
}

/* Open CACHEDIR/A/B if it exists, without creating anything. */
static DIR *
open_existing (const char *cachedir, const char *a, const char *b)
{
    cleanup_free char *p = xasprintf ("%s/%s/%s", cachedir, a, b);
    int fd = open (p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    DIR *d = fdopendir (fd);
    if (d == NULL)
        close (fd);
    return d;
}

int
capsa_cache_list (const char *cachedir, struct capsa_cache_entry **out, size_t *n, capsa_error_t *err)
{
    struct capsa_cache_entry *v = NULL;
    size_t len = 0, cap = 0;
    struct stat st;
    *out = NULL;
    *n = 0;
    if (stat (cachedir, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return capsa_error_make (err, errno, "cache directory %s", cachedir);
    }
    for (size_t k = 0; k < ARRAY_SIZE (kinds); k++) {
        DIR *d = open_existing (cachedir, kinds[k], "sha256");
        if (d == NULL)
            continue;
        for (struct dirent *e; (e = readdir (d));) {
            if (e->d_name[0] == '.' || fstatat (dirfd (d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0
                || !S_ISREG (st.st_mode))
                continue;
            cleanup_free char *digest = xasprintf ("sha256:%s", e->d_name);
            if (!oci_digest_valid (digest))
                continue;
            if (len == cap) {
                cap = cap ? 2 * cap : 16;
                v = xrealloc (v, cap * sizeof (*v));
            }
            struct capsa_cache_entry *ce = &v[len++];
            memset (ce, 0, sizeof (*ce));
            ce->kind = xstrdup (kinds[k]);
            ce->digest = steal_ptr (&digest);
            ce->path = xasprintf ("%s/%s/sha256/%s", cachedir, kinds[k], e->d_name);
            ce->size = (uint64_t) st.st_size;
            ce->mtime = (int64_t) st.st_mtime;
        }
        closedir (d);
        /* Which reference each digest was pulled as. */
        d = open_existing (cachedir, "refs", kinds[k]);
        if (d == NULL)
            continue;
        for (struct dirent *e; (e = readdir (d));) {
            char *ref = NULL, *digest = NULL;
            if (e->d_name[0] == '.' || read_ref_file (dirfd (d), e->d_name, &ref, &digest) < 0)
                continue;
            for (size_t i = 0; i < len; i++)
                if (strcmp (v[i].kind, kinds[k]) == 0 && strcmp (v[i].digest, digest) == 0 && v[i].ref == NULL) {
                    v[i].ref = ref;
                    ref = NULL;
                    break;
                }
            free (ref);
            free (digest);
        }
        closedir (d);
    }
    *out = v;
    *n = len;
    return 0;
}

static int
clean_dir (const char *cachedir, const char *a, const char *b, bool entries, bool dry_run, size_t *count,
           uint64_t *bytes, capsa_error_t *err)
{
    DIR *d = open_existing (cachedir, a, b);
    struct stat st;
    time_t now = time (NULL);
    if (d == NULL)
        return 0;
    for (struct dirent *e; (e = readdir (d));) {
        if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
            continue;
        if (fstatat (dirfd (d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR (st.st_mode))
            continue;
        /* Locks and temporary files of pulls in progress stay, unless
         * they are old leftovers of interrupted pulls. */
        if (e->d_name[0] == '.' && now - st.st_mtime < 24 * 3600)
            continue;
        if (entries && e->d_name[0] != '.') {
            (*count)++;
            *bytes += (uint64_t) st.st_size;
        }
        if (!dry_run && unlinkat (dirfd (d), e->d_name, 0) < 0 && errno != ENOENT) {
            int en = errno;
            closedir (d);
            return capsa_error_make (err, en, "remove %s/%s/%s/%s", cachedir, a, b, e->d_name);
        }
    }
    closedir (d);
    return 0;
}

int
capsa_cache_clean (const char *cachedir, const char *kind, bool dry_run, size_t *count, uint64_t *bytes,
                   capsa_error_t *err)
{
    size_t cnt = 0;
    uint64_t sz = 0;
    bool any = false;
    for (size_t k = 0; k < ARRAY_SIZE (kinds); k++) {
        if (kind != NULL && strcmp (kind, kinds[k]) != 0)
            continue;
        any = true;
        if (clean_dir (cachedir, kinds[k], "sha256", true, dry_run, &cnt, &sz, err) < 0
            || clean_dir (cachedir, "refs", kinds[k], false, dry_run, &cnt, &sz, err) < 0)
            return -1;
    }
    if (!any)
        return capsa_error_make (err, 0, "unknown cache type '%s' (oras, blob, oci-tmp, net)", kind);
    if (count)
        *count = cnt;
    if (bytes)
        *bytes = sz;
    return 0;
}
