/* The runtime's view of a SIF file: where its primary system partition is.
 * Checks the partition's file system type and architecture. */
#ifndef CAPSA_SIFIMAGE_H
#define CAPSA_SIFIMAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/error.h"

/* *encrypted is set for a LUKS2 partition (fs type 5); offset and size are
 * then those of the whole LUKS2 container. */
int capsa_sif_image_partition (int fd, const char *path, uint64_t *offset, uint64_t *size, bool *encrypted,
                               capsa_error_t *err);

/* The SIF's ext3 partition of type overlay (the first one): 1 with its
 * offset and size, 0 when it has none. */
int capsa_sif_overlay_partition (int fd, const char *path, uint64_t *offset, uint64_t *size, capsa_error_t *err);

#endif
