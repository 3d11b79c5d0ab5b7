#include "sifimage.h"

int
capsa_sif_image_partition (int fd, const char *path, uint64_t *offset, uint64_t *size, capsa_error_t *err)
{
    (void) fd;
    (void) offset;
    (void) size;
    return capsa_error_make (err, 0, "image %s: SIF images are not supported yet", path);
}
