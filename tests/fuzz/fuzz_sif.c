/* libFuzzer target for the SIF reader, the parser the privileged starter
 * runs on user-supplied images.
 *
 * Each input is an image file.  It is loaded through sif_open_fd() exactly
 * as the starter does (a memfd standing in for the descriptor it opened),
 * every descriptor and its metadata are read, and the primary partition
 * is looked up.  When the input loads, the writer is exercised on it too
 * (add, setprim, delete) and the result must load again: whatever
 * capsa writes, capsa must accept.
 *
 * Build metadata for tests/fuzz/build.sh follows. */
// fuzz-seeds: sif/sylabs/*.sif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/utils.h"
#include "sif/sif.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
touch_descriptor (const struct sif_image *img, const struct sif_descriptor *d)
{
    capsa_error_t err = NULL;
    struct sif_partition p;
    struct sif_signature s;
    struct sif_crypto_message m;
    int32_t sbom;
    char digest[SIF_EXTRA_LEN + 1], head[64], *all = NULL;
    size_t len = 0;
    volatile size_t sink = 0;

    sink += strlen (d->name) + strlen (sif_datatype_name (d->datatype));
    if (sif_get_partition (d, &p, &err) == 0)
        sink += strlen (sif_fstype_name (p.fstype)) + strlen (sif_parttype_name (p.parttype))
                + strlen (sif_arch_name (p.arch));
    capsa_error_free (&err);
    if (sif_get_signature (d, &s, &err) == 0)
        sink += strlen (sif_hashtype_name (s.hashtype)) + s.has_entity;
    capsa_error_free (&err);
    if (sif_get_crypto_message (d, &m, &err) == 0)
        sink += strlen (sif_format_name (m.format)) + strlen (sif_message_name (m.message));
    capsa_error_free (&err);
    if (sif_get_sbom_format (d, &sbom, &err) == 0)
        sink += strlen (sif_sbom_format_name (sbom));
    capsa_error_free (&err);
    if (sif_get_oci_digest (d, digest, sizeof (digest), &err) == 0)
        sink += strlen (digest);
    capsa_error_free (&err);

    /* Every object a successful open reports must be readable in full. */
    if (sif_read_object_at (img, d, head, d->size < 64 ? (size_t) d->size : 64, 0, &err) < 0)
        abort ();
    if (sif_read_object (img, d, 1 << 20, &all, &len, &err) == 0) {
        if ((int64_t) len != d->size)
            abort ();
        free (all);
    }
    capsa_error_free (&err);
    (void) sink;
}

/* Modify a writable copy and check that the result still validates. */
static void
exercise_writer (int fd)
{
    char path[64];
    struct sif_image *img = NULL;
    capsa_error_t err = NULL;
    const struct sif_descriptor *d;
    struct sif_add_opts add = { .datatype = SIF_DATA_PARTITION, .group = 1, .alignment = -1,
                                .fstype = SIF_FS_SQUASHFS, .parttype = SIF_PART_SYSTEM, .arch = "amd64" };
    int data;

    snprintf (path, sizeof (path), "/proc/self/fd/%d", fd);
    if (sif_open (path, true, &img, &err) < 0)
        abort (); /* it loaded read-only a moment ago */

    data = memfd_create ("data", MFD_CLOEXEC);
    if (data >= 0 && write (data, "hsqs", 4) == 4 && lseek (data, 0, SEEK_SET) == 0) {
        uint32_t id = 0;
        if (sif_add_object (img, &add, data, &id, &err) == 0)
            (void) sif_set_primary (img, id, &err);
        capsa_error_free (&err);
    }
    if (data >= 0)
        close (data);
    if (sif_descriptor_count (img) > 0) {
        d = sif_descriptor_at (img, 0);
        (void) sif_delete_object (img, d->id, true, true, &err);
        capsa_error_free (&err);
    }
    sif_close (img);

    img = NULL;
    if (sif_open (path, false, &img, &err) < 0) {
        fprintf (stderr, "writer produced an invalid image: %s\n", err ? err->msg : "?");
        abort ();
    }
    sif_close (img);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    struct sif_image *img = NULL;
    capsa_error_t err = NULL;
    const struct sif_descriptor *d;
    int fd = memfd_create ("fuzz-sif", MFD_CLOEXEC);

    if (fd < 0)
        return 0;
    if (write_all (fd, data, size) < 0) {
        close (fd);
        return 0;
    }
    if (sif_open_fd (fd, &img, &err) == 0) {
        const struct sif_header *h = sif_get_header (img);
        volatile size_t sink = strlen (h->launch) + strlen (sif_arch_name (h->arch));

        for (size_t i = 0; i < sif_descriptor_count (img); i++)
            touch_descriptor (img, sif_descriptor_at (img, i));
        if (sif_find_primary_partition (img, &d, &err) == 0 && d->datatype != SIF_DATA_PARTITION)
            abort ();
        capsa_error_free (&err);
        (void) sink;
        sif_close (img);
        exercise_writer (fd);
    } else if (err == NULL || err->msg == NULL) {
        abort (); /* a failure must always explain itself */
    }
    capsa_error_free (&err);
    close (fd);
    return 0;
}
