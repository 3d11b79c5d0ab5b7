/* The runtime's view of a SIF file: where its primary system partition is.
 * Checks the partition's file system type and architecture. */
#ifndef CAPSA_SIFIMAGE_H
#define CAPSA_SIFIMAGE_H

#include <stdint.h>

#include "lib/error.h"

int capsa_sif_image_partition (int fd, const char *path, uint64_t *offset, uint64_t *size, capsa_error_t *err);

#endif
