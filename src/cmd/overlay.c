/* capsa overlay create [--size MiB] [--sparse] [--create-dir DIR]... [--fakeroot] IMAGE
 *
 * A writable overlay image for --overlay (a new ext3 file) or for
 * --writable (an ext3 partition of type overlay added to a SIF), laid out
 * as Apptainer lays it out: the file system's root holds upper/ (what the
 * container writes) and work/ (overlayfs's work directory), owned by the
 * caller (by root inside with --fakeroot: made in a user namespace where
 * the caller is root).  mkfs.ext3 -d fills it from a temporary directory,
 * as the caller; a new image file appears by one rename, whole or not at
 * all; a SIF is changed only by adding the partition at the end. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "imgbuild/proc.h"
#include "imgbuild/tree.h"
#include "lib/log.h"
#include "lib/utils.h"
#include "runtime/overlay.h"
#include "sif/sif.h"

static const char usage[] = "usage: capsa overlay create [--size MiB] [--sparse] [--create-dir DIR]... [--fakeroot] "
                            "IMAGE";

#define OVERLAY_MIN_MIB 64

static const char *
find_mkfs (void)
{
    static const char *const paths[] = { "/usr/sbin/mkfs.ext3", "/sbin/mkfs.ext3", "/usr/bin/mkfs.ext3" };
    for (size_t i = 0; i < ARRAY_SIZE (paths); i++)
        if (access (paths[i], X_OK) == 0)
            return paths[i];
    return NULL;
}

static void
collect (const char *line, void *data)
{
    build_tail_push (data, line);
}

/* What IMAGE is, if it exists: 0 absent, 1 a SIF to add to; an error for
 * anything else (an ext3 image already, another file). */
static int
existing_kind (const char *image, capsa_error_t *err)
{
    struct stat st;
    unsigned char head[64] = { 0 };
    if (lstat (image, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return capsa_error_make (err, errno, "%s", image);
    }
    if (!S_ISREG (st.st_mode))
        return capsa_error_make (err, 0, "%s exists and is not a regular file", image);
    cleanup_close int fd = open (image, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return capsa_error_make (err, errno, "%s", image);
    ssize_t n = pread (fd, head, sizeof (head), 0);
    if (n >= 41 && memcmp (head + 32, "SIF_MAGIC", 9) == 0)
        return 1;
    if (capsa_ext3_probe (fd, 0, NULL) == 0)
        return capsa_error_make (err, 0, "the ext3 overlay image %s already exists", image);
    return capsa_error_make (err, 0, "%s exists and is not a SIF image (an overlay partition can only be added to a SIF)",
                             image);
}

/* The SIF may take an overlay partition: not encrypted, not signed, none
 * there yet.  *arch: the primary partition's architecture (Go name). */
static int
check_sif (struct sif_image *sif, const char *image, const char **arch, capsa_error_t *err)
{
    const struct sif_descriptor *prim = NULL;
    struct sif_partition p;
    *arch = sif_host_arch ();
    if (sif_find_primary_partition (sif, &prim, err) == 0 && sif_get_partition (prim, &p, err) == 0) {
        if (p.fstype == SIF_FS_ENCRYPTED_SQUASHFS)
            return capsa_error_make (err, 0, "%s has an encrypted root file system: it cannot take a writable overlay",
                                     image);
        *arch = sif_arch_name (p.arch);
    }
    capsa_error_free (err);
    for (size_t i = 0; i < sif_descriptor_count (sif); i++) {
        const struct sif_descriptor *d = sif_descriptor_at (sif, i);
        if (d->datatype == SIF_DATA_SIGNATURE)
            return capsa_error_make (err, 0, "%s is signed: adding an overlay partition would break its signature",
                                     image);
        if (d->datatype == SIF_DATA_PARTITION && sif_get_partition (d, &p, err) == 0 && p.parttype == SIF_PART_OVERLAY
            && p.fstype == SIF_FS_EXT3)
            return capsa_error_make (err, 0,
                                     "%s already has a writable overlay partition (object %u); delete it first with "
                                     "'capsa sif del %u %s'",
                                     image, d->id, d->id, image);
        capsa_error_free (err);
    }
    return 0;
}

/* Make the ext3 file system in the new file FD (named TMPFILE) of MIB
 * MiB from the layout directory LAYOUT. */
static int
make_fs (const char *tmpfile, int fd, long mib, bool sparse, const char *layout, bool fakeroot, capsa_error_t *err)
{
    const char *mkfs = find_mkfs ();
    off_t size = (off_t) mib << 20;
    if (mkfs == NULL)
        return capsa_error_make (err, 0, "mkfs.ext3 not found (install Debian's e2fsprogs)");
    if (sparse ? ftruncate (fd, size) < 0 : posix_fallocate (fd, 0, size) != 0) {
        if (sparse || ftruncate (fd, size) < 0)
            return capsa_error_make (err, errno, "cannot make %s %ld MiB large", tmpfile, mib);
        /* A file system without fallocate: write the zeros. */
        static const char zeros[1 << 16];
        for (off_t off = 0; off < size; off += (off_t) sizeof (zeros))
            if (pwrite_all (fd, zeros, sizeof (zeros), off) < 0)
                return capsa_error_make (err, errno, "cannot write %s", tmpfile);
    }
    /* mkfs writes through this descriptor, not the name: the directory
     * may be writable by someone else, who could put a symlink there.
     * (Under --fakeroot mkfs runs in a user namespace, where it cannot
     * open another process's descriptors: the caller's own file, by name.) */
    char target[64];
    snprintf (target, sizeof (target), "/proc/%d/fd/%d", (int) getpid (), fd);
    const char *argv[] = { mkfs, "-q", "-F", "-d", layout, fakeroot ? tmpfile : target, NULL };
    struct build_tail tail = { 0 };
    struct build_proc p = {
        .argv = argv,
        .flags = fakeroot ? BP_FAKEROOT : 0,
        .null_stdin = true,
        .on_line = collect,
        .data = &tail,
        .out_fd = -1,
    };
    int status;
    int r = build_proc_run (&p, &status, err);
    if (r == 0 && status != 0) {
        char buf[64];
        cleanup_free char *text = build_tail_text (&tail);
        capsa_error_make (err, 0, "%s failed (%s)%s%s", mkfs, build_status_text (status, buf, sizeof (buf)),
                          text[0] ? ": " : "", text);
        r = -1;
    }
    build_tail_free (&tail);
    return r;
}

/* upper/, work/ and upper/DIR for each --create-dir, in LAYOUT. */
static int
make_layout (const char *layout, const struct strv *dirs, capsa_error_t *err)
{
    /* Ids above 65535 cannot be represented inside a fakeroot range:
     * let everyone write, as Apptainer does. */
    mode_t mode = getuid () > 65535 || getgid () > 65535 ? 0777 : 0755;
    mode_t old = umask (0);
    int r = -1;
    cleanup_free char *upper = xasprintf ("%s/upper", layout);
    cleanup_free char *work = xasprintf ("%s/work", layout);
    if (mkdir (upper, mode) < 0 || mkdir (work, mode) < 0) {
        capsa_error_make (err, errno, "cannot create the overlay layout in %s", layout);
        goto out;
    }
    for (size_t i = 0; i < dirs->n; i++) {
        const char *d = dirs->v[i];
        cleanup_free char *copy = xstrdup (d);
        char *save = NULL;
        cleanup_free char *path = xstrdup (upper);
        size_t len = strlen (path);
        for (char *c = strtok_r (copy, "/", &save); c; c = strtok_r (NULL, "/", &save)) {
            if (strcmp (c, ".") == 0)
                continue;
            if (strcmp (c, "..") == 0) {
                capsa_error_make (err, 0, "--create-dir %s: '..' would leave the overlay", d);
                goto out;
            }
            str_append (&path, &len, "/");
            str_append (&path, &len, c);
            if (mkdir (path, mode) < 0 && errno != EEXIST) {
                capsa_error_make (err, errno, "--create-dir %s", d);
                goto out;
            }
        }
    }
    r = 0;
out:
    umask (old);
    return r;
}

static int
overlay_create (const char *image, long mib, bool sparse, bool fakeroot, const struct strv *dirs, capsa_error_t *err)
{
    int kind = existing_kind (image, err);
    struct sif_image *sif = NULL;
    const char *arch = NULL;
    int ret = -1;
    cleanup_free char *dir = xstrdup (image);
    cleanup_free char *tmpfile = NULL, *layout = NULL;
    cleanup_close int fd = -1;

    if (kind < 0)
        return -1;
    if (kind == 1) {
        if (sif_open (image, true, &sif, err) < 0)
            return capsa_error_wrap (err, "%s", image);
        if (check_sif (sif, image, &arch, err) < 0)
            goto out_sif;
    }

    /* The new file system, beside the image (same file system, for the
     * rename), and the layout it is made from. */
    char *slash = strrchr (dir, '/');
    if (slash == NULL) {
        free (dir);
        dir = xstrdup (".");
    } else if (slash == dir) {
        dir[1] = '\0';
    } else {
        *slash = '\0';
    }
    tmpfile = xasprintf ("%s/.capsa-overlay-XXXXXX", dir);
    fd = mkostemp (tmpfile, O_CLOEXEC);
    if (fd < 0) {
        capsa_error_make (err, errno, "cannot create a file beside %s", image);
        goto out_sif;
    }
    const char *tmpdir = getenv ("TMPDIR");
    layout = xasprintf ("%s/capsa-overlay-XXXXXX", tmpdir && tmpdir[0] == '/' ? tmpdir : "/tmp");
    if (mkdtemp (layout) == NULL) {
        capsa_error_make (err, errno, "cannot create a temporary directory");
        unlink (tmpfile);
        goto out_sif;
    }
    if (fchmod (fd, 0600) < 0 || make_layout (layout, dirs, err) < 0
        || make_fs (tmpfile, fd, mib, sparse, layout, fakeroot, err) < 0)
        goto out_tmp;
    if (sif != NULL) {
        struct sif_add_opts ao = {
            .datatype = SIF_DATA_PARTITION,
            .alignment = -1,
            .fstype = SIF_FS_EXT3,
            .parttype = SIF_PART_OVERLAY,
            .arch = arch,
        };
        uint32_t id;
        if (lseek (fd, 0, SEEK_SET) < 0 || sif_add_object (sif, &ao, fd, &id, err) < 0) {
            capsa_error_wrap (err, "cannot add the overlay partition to %s", image);
            goto out_tmp;
        }
        verbosef ("overlay partition of %ld MiB added to %s (object %u)", mib, image, id);
        unlink (tmpfile);
    } else {
        /* The name must still be the file made (else someone replaced
         * it: nothing of theirs is renamed into place knowingly). */
        struct stat a, b;
        if (fsync (fd) < 0 || fstat (fd, &a) < 0) {
            capsa_error_make (err, errno, "cannot create %s", image);
            goto out_tmp;
        }
        if (lstat (tmpfile, &b) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
            capsa_error_make (err, 0, "cannot create %s: %s was replaced meanwhile", image, tmpfile);
            goto out_tmp;
        }
        if (rename (tmpfile, image) < 0) {
            capsa_error_make (err, errno, "cannot create %s", image);
            goto out_tmp;
        }
        verbosef ("overlay image %s of %ld MiB created", image, mib);
    }
    ret = 0;
out_tmp:
    if (ret < 0)
        unlink (tmpfile);
    {
        capsa_error_t ignore = NULL;
        if (tree_remove (layout, &ignore) < 0)
            capsa_error_free (&ignore);
    }
out_sif:
    if (sif)
        sif_close (sif);
    return ret;
}

int
cmd_overlay (int argc, char **argv)
{
    static const struct option opts[] = {
        { "size", required_argument, NULL, 's' },  { "sparse", no_argument, NULL, 'S' },
        { "create-dir", required_argument, NULL, 'c' }, { "fakeroot", no_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 },
    };
    capsa_error_t err = NULL;
    struct strv dirs = { 0 };
    long mib = OVERLAY_MIN_MIB;
    bool sparse = false, fakeroot = false;
    int c;

    if (argc < 2 || strcmp (argv[1], "create") != 0)
        capsa_die ("%s", argc < 2 ? usage : "overlay: unknown subcommand (only 'create')");
    argc--;
    argv++;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long (argc, argv, "+s:Sf", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (parse_long (optarg, 0, 1L << 30, &mib) < 0)
                capsa_die ("overlay create: invalid --size '%s' (a number of MiB)", optarg);
            break;
        case 'S':
            sparse = true;
            break;
        case 'c':
            strv_push (&dirs, optarg);
            break;
        case 'f':
            fakeroot = true;
            break;
        default:
            if (optopt == 's' || (optind > 0 && strcmp (argv[optind - 1], "--size") == 0)
                || strcmp (argv[optind - 1], "--create-dir") == 0)
                capsa_die ("overlay create: option '%s' needs a value", argv[optind - 1]);
            capsa_die ("overlay create: unknown option '%s' (%s)", argv[optind - 1], usage);
        }
    }
    if (optind != argc - 1)
        capsa_die ("%s", usage);
    if (mib < OVERLAY_MIN_MIB)
        capsa_die ("overlay create: the size must be at least %d MiB, not %ld", OVERLAY_MIN_MIB, mib);
    if (fakeroot && getuid () == 0)
        fakeroot = false;
    if (overlay_create (argv[optind], mib, sparse, fakeroot, &dirs, &err) < 0)
        capsa_error_fatal (&err);
    strv_free (&dirs);
    return 0;
}
