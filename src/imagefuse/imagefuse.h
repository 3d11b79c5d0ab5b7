/* capsa's image server (libexec/capsa/imagefuse): the parts of the program.
 *
 *   main.c      arguments, the image (clear or decrypted), start-up
 *   server.c    FUSE connections (sessions), the shared socket, linger
 *   ops.c       the FUSE low-level operations over sqimage
 *   sqimage.c   the squashfs with its caches (sqimage.h)
 *   objcache.c  the caches' thread-safe store (objcache.h)
 *
 * One process serves one image (one file, offset, size and, for an
 * encrypted image, one key) to any number of FUSE connections, each the
 * root of one container; src/runtime/imageserver.c (the starter's side)
 * finds or starts it. */
#ifndef CAPSA_IMAGEFUSE_H
#define CAPSA_IMAGEFUSE_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "imagefuse/sqimage.h"

struct server;

/* One FUSE connection: one container's mount of the image. */
struct session {
    struct server *srv;
    struct sqi_image *img;
    struct fuse_session *se;
    pthread_t thread;
    bool no_open, no_opendir; /* the kernel takes ENOSYS for open/opendir */
    bool done;                /* its thread has finished (under srv->lock) */
    struct session *next;
};

/* The FUSE operations (ops.c). */
extern const struct fuse_lowlevel_ops imagefuse_ops;

/* Start serving the /dev/fuse descriptor FD (taken over) on a thread of
 * its own: 0, or -1 (FD closed). */
int server_add_session (struct server *srv, int fd);

#endif
