#include "sifimage.h"

#include <string.h>

#include "sif/sif.h"

int
capsa_sif_image_partition (int fd, const char *path, uint64_t *offset, uint64_t *size, bool *encrypted,
                           capsa_error_t *err)
{
    struct sif_image *sif = NULL;
    const struct sif_descriptor *d = NULL;
    struct sif_partition part;
    int ret = -1;

    if (sif_open_fd_named (fd, path, &sif, err) < 0)
        return -1;
    if (sif_find_primary_partition (sif, &d, err) < 0) {
        capsa_error_wrap (err, "image %s", path);
        goto out;
    }
    if (sif_get_partition (d, &part, err) < 0)
        goto out;
    const char *arch = sif_arch_name (part.arch);
    if (strcmp (arch, sif_host_arch ()) != 0) {
        capsa_error_make (err, 0, "image architecture %s does not match host %s", arch, sif_host_arch ());
        goto out;
    }
    *encrypted = part.fstype == SIF_FS_ENCRYPTED_SQUASHFS || part.fstype == SIF_FS_GOCRYPTFS_SQUASHFS;
    if (part.fstype != SIF_FS_SQUASHFS && !*encrypted) {
        capsa_error_make (err, 0, "image %s: primary partition is %s, only squashfs can be run", path,
                          sif_fstype_name (part.fstype));
        goto out;
    }
    *offset = (uint64_t) d->offset;
    *size = (uint64_t) d->size;
    ret = 0;
out:
    sif_close (sif);
    return ret;
}

int
capsa_sif_overlay_partition (int fd, const char *path, uint64_t *offset, uint64_t *size, capsa_error_t *err)
{
    struct sif_image *sif = NULL;
    int found = 0;
    if (sif_open_fd_named (fd, path, &sif, err) < 0)
        return -1;
    for (size_t i = 0; i < sif_descriptor_count (sif) && !found; i++) {
        const struct sif_descriptor *d = sif_descriptor_at (sif, i);
        struct sif_partition p;
        capsa_error_t ignore = NULL;
        if (d->datatype != SIF_DATA_PARTITION || sif_get_partition (d, &p, &ignore) < 0) {
            capsa_error_free (&ignore);
            continue;
        }
        if (p.parttype == SIF_PART_OVERLAY && p.fstype == SIF_FS_EXT3) {
            *offset = (uint64_t) d->offset;
            *size = (uint64_t) d->size;
            found = 1;
        }
    }
    sif_close (sif);
    return found;
}
