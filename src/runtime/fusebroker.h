/* FUSE mounts served by the user's own servers.
 *
 * The container's child mounts /dev/fuse on a target in its private layer
 * (a FUSE connection belongs to the user namespace that opens the device),
 * then asks the monitor, over their socket, to start the server: the FUSE
 * device and the file to serve travel as descriptors (SCM_RIGHTS).  The
 * monitor, which by then is the user for good, forks the server outside the
 * container's namespaces (joining only its user namespace in that mode),
 * with a parent-death signal, and answers 'R' once it serves. */
#ifndef CAPSA_FUSEBROKER_H
#define CAPSA_FUSEBROKER_H

#include <stdint.h>
#include <sys/types.h>

#include "runtime/container.h"

/* SERVER_FUSE2FS (an ext3 overlay image, read-write unless FUSE_REQ_RO)
 * and SERVER_OVERLAYFS (the container's root, when a layer is served by
 * fuse2fs) are for user-namespace containers only (runtime/overlay.h).
 * SERVER_IMAGE: capsa's image server (runtime/imageserver.h), shared by the
 * user's containers of the image; FUSE_REQ_ENCRYPTED: it decrypts with the
 * key on --key-fd. */
enum capsa_fuse_server {
    SERVER_SQUASHFS = 1,
    SERVER_CRYPT = 2,
    SERVER_FUSE2FS = 3,
    SERVER_OVERLAYFS = 4,
    SERVER_IMAGE = 5,
    /* Not a server: the monitor, the user for good, writes the
     * container's /etc/passwd and /etc/group from the image's (setuid
     * mode only; capsa_fuse_request_etc). */
    SERVER_ETC = 6,
};

enum { FUSE_REQ_RO = 0x1u, FUSE_REQ_ENCRYPTED = 0x2u };

/* Followed on the socket by datalen bytes (fuse-overlayfs's layer
 * options), at most CAPSA_FUSE_DATA_MAX. */
struct capsa_fuse_request {
    uint32_t server;
    uint32_t flags;
    uint64_t offset, size;
    uint32_t datalen;
    uint32_t unused;
};
#define CAPSA_FUSE_DATA_MAX 16384

/* Child: mount /dev/fuse on TARGET (FLAGS: MS_RDONLY, MS_NOSUID, ...) and
 * have SERVER serve FILEFD from OFFSET (SIZE bytes, 0: to the end). */
int capsa_fuse_mount_served (struct capsa_container *c, int sock, int target, const char *fstype,
                             enum capsa_fuse_server server, int filefd, uint64_t offset, uint64_t size,
                             unsigned long flags, capsa_error_t *err);

/* Child, setuid mode: have the monitor (which has given root up for good)
 * parse the image's /etc/passwd and /etc/group under ROOTFD and write the
 * container's into FILESFD (the user's stage directory), with HOME as the
 * user's home directory in the container: the image's
 * files are parsed where root cannot be regained, without forking a
 * helper for it. */
int capsa_fuse_request_etc (int sock, int rootfd, int filesfd, const char *home, capsa_error_t *err);
/* ... and wait until they are written ('R'); nothing else may be asked of
 * the monitor in between. */
int capsa_fuse_request_etc_done (int sock, capsa_error_t *err);

/* Child: mount /dev/fuse on TARGET and have fuse-overlayfs, in a private
 * copy of the container's mount namespace made while the child waits,
 * serve the overlay of LAYERS ("lowerdir=...,upperdir=...,workdir=...",
 * paths under the stage). */
int capsa_fuse_mount_overlayfs (struct capsa_container *c, int sock, int target, const char *layers, unsigned long flags,
                                capsa_error_t *err);

/* Monitor: the next request (1), end of stream (0: the child exec'd or
 * died) or a malformed one (-1).  *data (NUL-terminated, freed by the
 * caller) holds the request's data, NULL when it has none. */
int capsa_fuse_recv_request (int sock, struct capsa_fuse_request *req, int fds[2], char **data);

/* Monitor: start the server REQ asks for, as the user; returns its pid
 * (0: served by a shared image server the monitor does not own).  For the
 * decrypting server, waits until it says the key opened the image.  An
 * image server that cannot serve a clear image hands it to squashfuse_ll. */
pid_t capsa_fuse_spawn_server (struct capsa_container *c, pid_t container, const struct capsa_fuse_request *req,
                               int fusefd, int filefd, const char *data, capsa_error_t *err);

#endif
