#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/utils.h"
#include "runtime/sifimage.h"

const char *
capsa_image_kind_name (enum capsa_image_kind k)
{
    switch (k) {
    case IMAGE_DIR:
        return "directory";
    case IMAGE_SQUASHFS:
        return "squashfs";
    case IMAGE_SIF:
        return "SIF";
    }
    return "?";
}

#define SQUASHFS_MAGIC "hsqs"

int
capsa_image_open (struct capsa_image *img, const char *path, capsa_error_t *err)
{
    return capsa_image_open_with (img, path, NULL, NULL, err);
}

int
capsa_image_open_with (struct capsa_image *img, const char *path, capsa_sif_locator locate, void *data,
                       capsa_error_t *err)
{
    struct stat st;
    unsigned char head[64];
    cleanup_close int fd = -1;

    memset (img, 0, sizeof (*img));
    img->fd = -1;
    fd = open (path, O_PATH | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return capsa_error_make (err, 0, "image %s: no such file or directory", path);
        return capsa_error_make (err, errno, "image %s", path);
    }
    if (fstat (fd, &st) < 0)
        return capsa_error_make (err, errno, "image %s", path);

    img->path = xstrdup (path);
    if (S_ISDIR (st.st_mode)) {
        /* The caller must be able to list and enter it: the container's
         * root shows what is in it, whoever mounts it. */
        char self[64];
        snprintf (self, sizeof (self), "/proc/self/fd/%d", fd);
        if (faccessat (AT_FDCWD, self, R_OK | X_OK, AT_EACCESS) < 0)
            return capsa_error_make (err, errno, "image %s", path);
        img->kind = IMAGE_DIR;
        img->fd = steal_fd (&fd);
        return 0;
    }
    if (!S_ISREG (st.st_mode))
        return capsa_error_make (err, 0, "image %s is neither a directory nor a regular file", path);

    /* Reopen for reading, through the descriptor: same object, and the
     * kernel checks read permission for the caller. */
    char buf[64];
    snprintf (buf, sizeof (buf), "/proc/self/fd/%d", fd);
    cleanup_close int rfd = open (buf, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (rfd < 0)
        return capsa_error_make (err, errno, "image %s", path);

    memset (head, 0, sizeof (head));
    if (pread (rfd, head, sizeof (head), 0) < 4)
        return capsa_error_make (err, 0, "image %s: file too short to be an image", path);
    if (memcmp (head, SQUASHFS_MAGIC, 4) == 0) {
        img->kind = IMAGE_SQUASHFS;
        img->offset = 0;
        img->size = (uint64_t) st.st_size;
        img->fd = steal_fd (&rfd);
        return 0;
    }
    if (memcmp (head + 32, "SIF_MAGIC", 9) == 0) {
        img->kind = IMAGE_SIF;
        if (locate ? locate (data, rfd, path, img, err) < 0
                   : capsa_sif_image_partition (rfd, path, &img->offset, &img->size, &img->encrypted, err) < 0)
            return -1;
        /* Whoever parsed the header, the partition must lie in the file
         * as it is now. */
        if (fstat (rfd, &st) < 0)
            return capsa_error_make (err, errno, "image %s", path);
        if (img->size == 0 || img->offset > (uint64_t) st.st_size || img->size > (uint64_t) st.st_size - img->offset)
            return capsa_error_make (err, 0, "image %s: the partition lies outside the file", path);
        img->fd = steal_fd (&rfd);
        return 0;
    }
    return capsa_error_make (err, 0, "image %s: unknown image format (not a directory, squashfs or SIF file)", path);
}

void
capsa_image_close (struct capsa_image *img)
{
    if (img->fd >= 0)
        close (img->fd);
    free (img->path);
    img->fd = -1;
    img->path = NULL;
}
