/* Images a container can start from: a directory, a bare squashfs file,
 * or a SIF file whose primary system partition is a squashfs.
 *
 * capsa_image_open() runs with the caller's identity (in the setuid
 * starter: effective uid = the user), so the kernel checks the user's own
 * right to reach the file.  It keeps the descriptor; later steps use only
 * the descriptor, never the path again. */
#ifndef CAPSA_IMAGE_H
#define CAPSA_IMAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/error.h"

enum capsa_image_kind { IMAGE_DIR, IMAGE_SQUASHFS, IMAGE_SIF };

struct capsa_image {
    char *path;          /* as given, for messages and CAPSA_CONTAINER */
    int fd;              /* O_PATH|O_DIRECTORY for IMAGE_DIR, O_RDONLY otherwise */
    enum capsa_image_kind kind;
    uint64_t offset;     /* of the squashfs inside the file */
    uint64_t size;       /* of the squashfs; 0 = to the end of the file */
    bool encrypted;      /* offset/size are those of a LUKS2 container around it */
    /* A SIF's ext3 overlay partition, when the setuid starter's parsing
     * helper already looked (runtime/overlay.h): size 0 for none. */
    bool overlay_known;
    uint64_t overlay_offset, overlay_size;
};

int capsa_image_open (struct capsa_image *img, const char *path, capsa_error_t *err);

/* The same, with LOCATE finding a SIF's partition (filling img->offset,
 * size and encrypted) instead of parsing the header here: the setuid
 * starter parses it in a process that has given up root for good.  The
 * result is checked against the file's size afterwards. */
typedef int (*capsa_sif_locator) (void *data, int fd, const char *path, struct capsa_image *img, capsa_error_t *err);
int capsa_image_open_with (struct capsa_image *img, const char *path, capsa_sif_locator locate, void *data,
                           capsa_error_t *err);
void capsa_image_close (struct capsa_image *img);
const char *capsa_image_kind_name (enum capsa_image_kind k);

#endif
