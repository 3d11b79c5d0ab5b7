/* Squashfs and SIF assembly: see assemble.h. */
#include "imgbuild/assemble.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "imgbuild/proc.h"
#include "crypt/crypt.h"
#include "lib/utils.h"
#include "sif/sif.h"

struct assemble_capture {
    const struct assemble_io *io;
    struct build_tail tail;
};

static void
assemble_on_line (const char *line, void *data)
{
    struct assemble_capture *c = data;
    build_tail_push (&c->tail, line);
    if (c->io->line)
        c->io->line (line, c->io->data);
}

/* Run ARGV; on failure the error carries the tool's last lines. */
static int
assemble_run (const char *const *argv, const char *cwd, unsigned flags, const struct assemble_io *io, int *status,
              capsa_error_t *err)
{
    struct assemble_capture cap = { .io = io };
    struct build_proc p = {
        .argv = argv,
        .cwd = cwd,
        .flags = flags,
        .null_stdin = true,
        .out_fd = -1,
    };
    int ret;

    /* On a terminal the tools draw their progress bars themselves. */
    if (!io->terminal) {
        p.on_line = assemble_on_line;
        p.data = &cap;
    }
    ret = build_proc_run (&p, status, err);
    if (ret == 0 && *status != 0 && *status != 2) {
        char buf[64];
        cleanup_free char *tail = build_tail_text (&cap.tail);
        capsa_error_make (err, 0, "%s failed (%s)%s%s", argv[0], build_status_text (*status, buf, sizeof (buf)),
                          tail[0] ? ":\n" : "", tail);
        ret = -1;
    }
    build_tail_free (&cap.tail);
    return ret;
}

int
assemble_mksquashfs (const struct squash_opts *o, const struct assemble_io *io, capsa_error_t *err)
{
    const char *argv[24];
    int n = 0, status;

    argv[n++] = "mksquashfs";
    argv[n++] = o->src;
    argv[n++] = o->dest;
    argv[n++] = "-noappend";
    argv[n++] = "-comp";
    argv[n++] = o->comp ? o->comp : "gzip";
    if (o->all_root)
        argv[n++] = "-all-root";
    argv[n++] = "-quiet";
    if (!io->terminal)
        argv[n++] = "-no-progress";
    if (o->pseudo_file) {
        argv[n++] = "-pf";
        argv[n++] = o->pseudo_file;
    }
    if (o->exclude_file) {
        argv[n++] = "-ef";
        argv[n++] = o->exclude_file;
    }
    argv[n] = NULL;
    if (assemble_run (argv, o->cwd, o->fakeroot ? BP_FAKEROOT : 0, io, &status, err) < 0)
        return capsa_error_wrap (err, "create the squashfs of %s", o->src);
    if (status != 0)
        return capsa_error_make (err, 0, "mksquashfs of %s failed (exit status %d)", o->src, status);
    return 0;
}

int
assemble_unsquashfs (const char *image, uint64_t offset, const char *dest, const struct assemble_io *io,
                     bool *partial, capsa_error_t *err)
{
    char off[32];
    const char *argv[16];
    int n = 0, status;
    bool root = geteuid () == 0;

    *partial = false;
    snprintf (off, sizeof (off), "%" PRIu64, offset);
    argv[n++] = "unsquashfs";
    argv[n++] = "-q"; /* the progress bar stays, without the chatter */
    if (!io->terminal)
        argv[n++] = "-n";
    if (!root)
        argv[n++] = "-user-xattrs";
    argv[n++] = "-o";
    argv[n++] = off;
    argv[n++] = "-d";
    argv[n++] = dest;
    argv[n++] = image;
    argv[n] = NULL;
    if (assemble_run (argv, NULL, 0, io, &status, err) < 0)
        return capsa_error_wrap (err, "extract %s", image);
    /* 2: some files could not be written (device nodes as a user...). */
    if (status == 2) {
        if (root)
            return capsa_error_make (err, 0, "unsquashfs could not extract all of %s", image);
        *partial = true;
    }
    return 0;
}

/* A memfd holding LEN bytes of DATA, positioned at 0. */
static int
assemble_memfd (const char *name, const char *data, size_t len, capsa_error_t *err)
{
    int fd = memfd_create (name, MFD_CLOEXEC);
    if (fd < 0)
        return capsa_error_make (err, errno, "memfd_create");
    if (write_all (fd, data, len) < 0 || lseek (fd, 0, SEEK_SET) < 0) {
        close (fd);
        return capsa_error_make (err, errno, "write %s", name);
    }
    return fd;
}

int
assemble_sif (const char *path, const char *deffile, size_t deflen, const char *json, int squashfs_fd,
              const struct capsa_keyspec *key, capsa_error_t *err)
{
    const char *arch = sif_host_arch ();
    struct sif_create_opts co = { .arch = arch };
    struct sif_image *img = NULL;
    cleanup_close int dfd = -1, jfd = -1;
    int ret = -1;

    if (sif_create (path, &co, err) < 0 || sif_open (path, true, &img, err) < 0)
        return -1;

    struct sif_add_opts def = { .datatype = SIF_DATA_DEFFILE, .group = 1, .alignment = -1 };
    dfd = assemble_memfd ("deffile", deffile, deflen, err);
    if (dfd < 0 || sif_add_object (img, &def, dfd, NULL, err) < 0)
        goto out;

    struct sif_add_opts meta = {
        .datatype = SIF_DATA_GENERIC_JSON, .group = 1, .alignment = -1, .name = "inspect-metadata.json"
    };
    jfd = assemble_memfd ("inspect-metadata.json", json, strlen (json), err);
    if (jfd < 0 || sif_add_object (img, &meta, jfd, NULL, err) < 0)
        goto out;
    if (build_check_interrupted (err) < 0)
        goto out;

    if (lseek (squashfs_fd, 0, SEEK_SET) < 0) {
        capsa_error_make (err, errno, "read the squashfs");
        goto out;
    }
    if (key != NULL) {
        struct capsa_encrypt_opts eo = { .arch = arch, .group = 1 };
        if (capsa_encrypt_write_partition (img, squashfs_fd, key, &eo, NULL, err) < 0)
            goto out;
    } else {
        struct sif_add_opts part = {
            .datatype = SIF_DATA_PARTITION,
            .group = 1,
            .alignment = -1,
            .fstype = SIF_FS_SQUASHFS,
            .parttype = SIF_PART_PRIMSYS,
            .arch = arch,
            .no_sync = true, /* a temporary file, renamed when complete */
        };
        if (sif_add_object (img, &part, squashfs_fd, NULL, err) < 0)
            goto out;
    }
    ret = 0;
out:
    sif_close (img);
    if (ret < 0)
        capsa_error_wrap (err, "write SIF %s", path);
    return ret;
}
