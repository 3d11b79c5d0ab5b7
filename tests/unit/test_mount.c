/* Unit tests for the path resolution of src/runtime/mount.c:
 * capsa_open_in_root and capsa_make_in_root on a temporary tree, with
 * absolute and relative symlinks that point out of it.  Nothing here needs
 * root or mounts anything: what is checked is that every path resolves,
 * and every new node is created, inside the tree and never on the host. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/utils.h"
#include "runtime/mount.h"
#include "tap.h"

static char tmpdir[] = "/tmp/capsa-test-mount.XXXXXX";
static char tree[PATH_MAX]; /* realpath of tmpdir */
static int rootfd = -1;
static bool have_openat2;

static void
must (int r, const char *what)
{
    if (r < 0) {
        perror (what);
        exit (2);
    }
}

/* Does PATH exist on the host (lstat)? */
static bool
host_exists (const char *path)
{
    struct stat st;
    return fstatat (AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Does REL exist inside the tree, without following a final symlink? */
static bool
tree_exists (const char *rel, mode_t type)
{
    struct stat st;
    return fstatat (rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && (st.st_mode & S_IFMT) == type;
}

/* Where an open descriptor points, from /proc/self/fd; owned or NULL. */
static char *
fd_target (int fd)
{
    char buf[64], target[PATH_MAX];
    ssize_t n = readlink (capsa_fd_path (fd, buf, sizeof (buf)), target, sizeof (target) - 1);
    if (n < 0)
        return NULL;
    target[n] = '\0';
    return xstrdup (target);
}

/* Is fd's target exactly TREE/REL? */
static bool
points_to (int fd, const char *rel)
{
    cleanup_free char *t = fd_target (fd);
    cleanup_free char *want = rel[0] ? xasprintf ("%s/%s", tree, rel) : xstrdup (tree);
    return t != NULL && strcmp (t, want) == 0;
}

static bool
inside_tree (int fd)
{
    cleanup_free char *t = fd_target (fd);
    size_t l = strlen (tree);
    return t != NULL && strncmp (t, tree, l) == 0 && (t[l] == '/' || t[l] == '\0');
}

static bool
is_opath (int fd)
{
    int fl = fcntl (fd, F_GETFL);
    return fl >= 0 && (fl & O_PATH) == O_PATH;
}

static bool
same_inode (int fd, const char *rel)
{
    struct stat a, b;
    return fstat (fd, &a) == 0 && fstatat (rootfd, rel, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_dev == b.st_dev
           && a.st_ino == b.st_ino;
}

/* capsa_make_in_root; returns the descriptor or -1, printing the error. */
static int
make (const char *path, enum capsa_node kind, char **msg)
{
    capsa_error_t err = NULL;
    int fd = capsa_make_in_root (rootfd, path, kind, &err);
    if (msg)
        *msg = fd < 0 && err ? xstrdup (err->msg) : NULL;
    capsa_error_free (&err);
    return fd;
}

static void
setup_tree (void)
{
    must (mkdtemp (tmpdir) ? 0 : -1, "mkdtemp");
    must (realpath (tmpdir, tree) ? 0 : -1, "realpath");
    rootfd = open (tree, O_PATH | O_DIRECTORY | O_CLOEXEC);
    must (rootfd, tree);
    /*   TREE/etc/                     a directory (the image's /etc)
     *   TREE/etc/hosts                a file
     *   TREE/tmp -> /etc              absolute symlink out of the tree
     *   TREE/a/b/up -> ../../../../../../../../../../etc   relative, many ..
     *   TREE/dangling -> /capsa-test-nonexistent-PID
     *   TREE/file                     a regular file
     *   TREE/loop1 -> loop2, TREE/loop2 -> loop1 */
    must (mkdirat (rootfd, "etc", 0755), "mkdir etc");
    int fd = openat (rootfd, "etc/hosts", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    must (fd, "etc/hosts");
    close (fd);
    fd = openat (rootfd, "file", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    must (fd, "file");
    close (fd);
    must (symlinkat ("/etc", rootfd, "tmp"), "symlink tmp");
    must (mkdirat (rootfd, "a", 0755), "mkdir a");
    must (mkdirat (rootfd, "a/b", 0755), "mkdir a/b");
    must (symlinkat ("../../../../../../../../../../etc", rootfd, "a/b/up"), "symlink up");
    cleanup_free char *dangling = xasprintf ("/capsa-test-nonexistent-%d", (int) getpid ());
    must (symlinkat (dangling, rootfd, "dangling"), "symlink dangling");
    must (symlinkat ("loop2", rootfd, "loop1"), "symlink loop1");
    must (symlinkat ("loop1", rootfd, "loop2"), "symlink loop2");

    struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT };
    long r = syscall (SYS_openat2, rootfd, "tmp", &how, sizeof (how));
    have_openat2 = r >= 0;
    if (r >= 0)
        close ((int) r);
}

static int
rm_cb (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove (path);
}

/* ---- capsa_open_in_root --------------------------------------------------- */

static void
test_open (void)
{
    int fd;

    fd = capsa_open_in_root (rootfd, "/", O_DIRECTORY);
    CHECK (fd >= 0 && points_to (fd, "") && is_opath (fd), "open_in_root '/': the root itself, O_PATH");
    if (fd >= 0)
        close (fd);
    fd = capsa_open_in_root (rootfd, "", 0);
    CHECK (fd >= 0 && points_to (fd, ""), "open_in_root '': the root itself");
    if (fd >= 0)
        close (fd);
    fd = capsa_open_in_root (rootfd, "///etc//hosts", 0);
    CHECK (fd >= 0 && points_to (fd, "etc/hosts") && same_inode (fd, "etc/hosts"),
           "open_in_root '///etc//hosts': leading and doubled slashes");
    if (fd >= 0) {
        CHECK ((fcntl (fd, F_GETFD) & FD_CLOEXEC) != 0, "open_in_root: close-on-exec");
        close (fd);
    }
    fd = capsa_open_in_root (rootfd, "/etc/hosts", O_DIRECTORY);
    CHECK (fd < 0 && errno == ENOTDIR, "open_in_root O_DIRECTORY on a file: ENOTDIR");
    fd = capsa_open_in_root (rootfd, "/missing", 0);
    CHECK (fd < 0 && errno == ENOENT, "open_in_root of a missing path: ENOENT");

    if (!have_openat2) {
        /* The fallback refuses every symlink. */
        fd = capsa_open_in_root (rootfd, "/tmp", 0);
        CHECK (fd < 0 && errno == ELOOP, "no openat2: a symlink is refused (ELOOP)");
        fd = capsa_open_in_root (rootfd, "../etc", 0);
        CHECK (fd < 0, "no openat2: '..' is refused");
        return;
    }

    fd = capsa_open_in_root (rootfd, "/tmp", O_DIRECTORY);
    CHECK (fd >= 0 && points_to (fd, "etc") && same_inode (fd, "etc"),
           "absolute symlink /tmp -> /etc resolves to TREE/etc");
    if (fd >= 0)
        close (fd);
    fd = capsa_open_in_root (rootfd, "/tmp/hosts", 0);
    CHECK (fd >= 0 && same_inode (fd, "etc/hosts"), "/tmp/hosts is TREE/etc/hosts, not the host's /etc/hosts");
    if (fd >= 0)
        close (fd);
    fd = capsa_open_in_root (rootfd, "a/b/up", O_DIRECTORY);
    CHECK (fd >= 0 && points_to (fd, "etc"), "relative symlink with many '..' stays inside: TREE/etc");
    if (fd >= 0)
        close (fd);
    fd = capsa_open_in_root (rootfd, "a/b/up/hosts", 0);
    CHECK (fd >= 0 && same_inode (fd, "etc/hosts"), "a/b/up/hosts is TREE/etc/hosts");
    if (fd >= 0)
        close (fd);
    fd = capsa_open_in_root (rootfd, "../../../../etc/hosts", 0);
    CHECK (fd >= 0 && same_inode (fd, "etc/hosts"), "'../../../../etc/hosts' is clamped to the root");
    if (fd >= 0)
        close (fd);
    fd = capsa_open_in_root (rootfd, "/a/b/../../../..", O_DIRECTORY);
    CHECK (fd >= 0 && points_to (fd, ""), "'..' above the root stays at the root");
    if (fd >= 0)
        close (fd);
    fd = capsa_open_in_root (rootfd, "/dangling", 0);
    CHECK (fd < 0 && errno == ENOENT, "a dangling absolute symlink: ENOENT (not the host path)");
    fd = capsa_open_in_root (rootfd, "/loop1", 0);
    CHECK (fd < 0 && errno == ELOOP, "a symlink loop: ELOOP");
}

/* ---- capsa_make_in_root --------------------------------------------------- */

static void
test_make (void)
{
    char *msg = NULL;
    int fd;

    /* Nested directories and a final file. */
    fd = make ("/n1/n2/n3/file.txt", NODE_FILE, &msg);
    CHECK (fd >= 0, "make_in_root n1/n2/n3/file.txt (NODE_FILE)");
    if (msg)
        printf ("# %s\n", msg);
    free (msg);
    CHECK (tree_exists ("n1", S_IFDIR) && tree_exists ("n1/n2", S_IFDIR) && tree_exists ("n1/n2/n3", S_IFDIR),
           "make_in_root created the missing directories");
    CHECK (tree_exists ("n1/n2/n3/file.txt", S_IFREG), "make_in_root created the last component as a file");
    if (fd >= 0) {
        CHECK (is_opath (fd), "make_in_root returns an O_PATH descriptor");
        CHECK (points_to (fd, "n1/n2/n3/file.txt"), "its /proc/self/fd link is TREE/n1/n2/n3/file.txt");
        CHECK (same_inode (fd, "n1/n2/n3/file.txt"), "it is the file just created");
        close (fd);
    }

    /* Again: it exists now, same object. */
    fd = make ("n1/n2/n3/file.txt", NODE_FILE, NULL);
    CHECK (fd >= 0 && same_inode (fd, "n1/n2/n3/file.txt"), "make_in_root of an existing file opens it");
    if (fd >= 0)
        close (fd);

    /* A directory. */
    fd = make ("/d1/d2/", NODE_DIR, &msg);
    CHECK (fd >= 0 && tree_exists ("d1/d2", S_IFDIR) && inside_tree (fd) && is_opath (fd),
           "make_in_root d1/d2/ (NODE_DIR, trailing slash)");
    free (msg);
    if (fd >= 0)
        close (fd);
    fd = make ("/file", NODE_DIR, &msg);
    CHECK (fd < 0 && msg != NULL, "make_in_root NODE_DIR on an existing file refused");
    free (msg);

    if (!have_openat2) {
        fd = make ("tmp/x", NODE_FILE, &msg);
        CHECK (fd < 0, "no openat2: make_in_root through a symlink refused");
        free (msg);
        return;
    }

    /* Through the absolute symlink /tmp -> /etc: TREE/etc/NAME, never /etc/NAME. */
    cleanup_free char *name = xasprintf ("capsa-test-%d", (int) getpid ());
    cleanup_free char *host = xasprintf ("/etc/%s", name);
    cleanup_free char *in_tmp = xasprintf ("tmp/%s", name);
    cleanup_free char *in_etc = xasprintf ("etc/%s", name);
    bool host_before = host_exists (host);
    fd = make (in_tmp, NODE_FILE, &msg);
    CHECK (fd >= 0, "make_in_root tmp/NAME through /tmp -> /etc");
    if (msg)
        printf ("# %s\n", msg);
    free (msg);
    CHECK (tree_exists (in_etc, S_IFREG), "tmp/NAME created TREE/etc/NAME (fstatat in the tree)");
    CHECK (!host_before && !host_exists (host), "tmp/NAME did not create the host's /etc/NAME (fstatat on the host)");
    if (fd >= 0) {
        CHECK (points_to (fd, in_etc) && same_inode (fd, in_etc), "the descriptor is TREE/etc/NAME");
        close (fd);
    }
    if (host_exists (host) && !host_before)
        unlink (host); /* never leave it behind, even when the test failed */

    /* Nested directories under the symlink. */
    cleanup_free char *nested = xasprintf ("/tmp/%s-d/sub/leaf", name);
    cleanup_free char *nested_etc = xasprintf ("etc/%s-d/sub/leaf", name);
    cleanup_free char *host_d = xasprintf ("/etc/%s-d", name);
    fd = make (nested, NODE_DIR, &msg);
    CHECK (fd >= 0 && tree_exists (nested_etc, S_IFDIR) && points_to (fd, nested_etc),
           "make_in_root /tmp/NAME-d/sub/leaf: nested directories in TREE/etc");
    CHECK (!host_exists (host_d), "nothing created under the host's /etc");
    free (msg);
    if (fd >= 0)
        close (fd);

    /* Through the relative symlink with many '..'. */
    cleanup_free char *rel = xasprintf ("a/b/up/%s-rel/f", name);
    cleanup_free char *rel_etc = xasprintf ("etc/%s-rel/f", name);
    cleanup_free char *host_rel = xasprintf ("/etc/%s-rel", name);
    fd = make (rel, NODE_FILE, &msg);
    CHECK (fd >= 0 && tree_exists (rel_etc, S_IFREG) && points_to (fd, rel_etc),
           "make_in_root through a relative symlink with many '..': TREE/etc/...");
    CHECK (!host_exists (host_rel), "relative symlink: nothing created on the host");
    free (msg);
    if (fd >= 0)
        close (fd);

    /* '..' in the path itself. */
    cleanup_free char *dots = xasprintf ("../../../../tmp/%s-dots", name);
    cleanup_free char *dots_etc = xasprintf ("etc/%s-dots", name);
    cleanup_free char *host_dots = xasprintf ("/etc/%s-dots", name);
    cleanup_free char *host_tmp_dots = xasprintf ("/tmp/%s-dots", name);
    fd = make (dots, NODE_FILE, &msg);
    CHECK (fd >= 0 && tree_exists (dots_etc, S_IFREG) && inside_tree (fd),
           "make_in_root '../../../../tmp/NAME-dots': clamped to the root, then /tmp -> TREE/etc");
    CHECK (!host_exists (host_dots) && !host_exists (host_tmp_dots), "'..' path: nothing created on the host");
    free (msg);
    if (fd >= 0)
        close (fd);

    /* A dangling absolute symlink is not followed to the host. */
    cleanup_free char *dangling_host = xasprintf ("/capsa-test-nonexistent-%d", (int) getpid ());
    fd = make ("dangling/x", NODE_DIR, &msg);
    CHECK (!host_exists (dangling_host), "make_in_root through a dangling symlink creates nothing on the host");
    if (fd >= 0) {
        CHECK (inside_tree (fd), "dangling symlink: the result is inside the tree");
        close (fd);
    }
    free (msg);
    if (host_exists (dangling_host))
        rmdir (dangling_host);

    fd = make ("loop1/x", NODE_FILE, &msg);
    CHECK (fd < 0 && msg != NULL, "make_in_root through a symlink loop refused with a message");
    free (msg);
}

int
main (void)
{
    setup_tree ();
    test_open ();
    test_make ();

    char buf[64];
    CHECK_STR (capsa_fd_path (42, buf, sizeof (buf)), "/proc/self/fd/42", "capsa_fd_path");

    close (rootfd);
    nftw (tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return tap_done ();
}
