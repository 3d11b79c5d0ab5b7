/* The starter's side of capsa's image server (libexec/capsa/imagefuse):
 * finding the user's running server for an image, or starting one, and
 * handing it the FUSE connection of a container's root.
 *
 * Sharing.  Containers of one user share a server when they run the same
 * image: the same file (device, inode, size, modification and change
 * times), the same partition (offset, size), the same key for an
 * encrypted image, the same installation of capsa, and the same control
 * group (so that a batch system which ends a job's processes ends only
 * servers of that job's containers).  Each server listens on a socket in
 * the user's runtime directory, named after a hash of all that except the
 * key:
 *
 *   /run/user/UID/capsa/   (when /run/user/UID is the user's), else
 *   /tmp/capsa-UID/        both mode 0700, owned by the user, checked
 *                          (lstat, owner, mode) before every use
 *   IMG-<hash>.sock        a server's socket (SOCK_SEQPACKET)
 *   lock                   flock()ed while a server starts or stops
 *
 * All of it runs in the monitor, which is the user for good by then (or
 * in user-namespace mode never was anything else).  The server checks that
 * every client is its own user (SO_PEERCRED), that the image descriptor
 * it is given is the file it serves, and that the key record is the one
 * it holds; the client checks that the server is its own user.  Nothing
 * here is ever done for another user, or as root for a user.
 *
 * The server stays up `image server linger` seconds (capsa.conf) after its
 * last container ended (0: it ends with them).  When the directory cannot
 * be used (another user made /tmp/capsa-UID, say), the image still gets a
 * server of its own, not shared, which ends with the container. */
#ifndef CAPSA_IMAGESERVER_H
#define CAPSA_IMAGESERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/error.h"

#define CAPSA_IMAGEFUSE_NAME "imagefuse"

/* ---- The protocol between a client (the monitor) and a server ----------------- */

#define CAPSA_IMGSRV_MAGIC "CAPSAIMG"
#define CAPSA_IMGSRV_VERSION 1u

enum capsa_imgsrv_op {
    IMGSRV_SERVE = 1, /* descriptors: /dev/fuse, the image, [the key record's pipe] */
    IMGSRV_STATS = 2, /* no descriptor; the answer is text */
};

#define IMGSRV_ENCRYPTED 0x1u

/* One SOCK_SEQPACKET message, descriptors attached (SCM_RIGHTS). */
struct capsa_imgsrv_request {
    char magic[8];
    uint32_t version;
    uint32_t op;
    uint32_t flags;
    uint32_t reserved;
    uint64_t offset; /* of the partition in the image file */
    uint64_t size;
};

/* Answers to IMGSRV_SERVE: one byte, then text.  IMGSRV_SERVED: lines for
 * the monitor to show ("kdf FORMAT TYPE MEMORY_KB ITERATIONS LANES
 * SECONDS": a key derivation ran; "legacy": an image of capsa 0.1.0).
 * IMGSRV_KEY_ERROR: the key given does not open the image, and why.  The
 * server's --ready-fd gets the same: 'R' and lines, or 'F' and why. */
#define IMGSRV_SERVED 'R'
#define IMGSRV_KEY_ERROR 'F'
#define IMGSRV_NOT_KEY 'K'   /* a key that opens another image */
#define IMGSRV_NOT_IMAGE 'I' /* not the image (or partition) it serves */
#define IMGSRV_BUSY 'B'      /* too many connections, or stopping */
#define IMGSRV_ERROR 'E'

/* ---- The monitor's side ----------------------------------------------------------- */

struct capsa_container;

/* How the image ended up being served. */
enum capsa_imgsrv_how {
    IMGSRV_HOW_JOINED,  /* a running shared server took the connection */
    IMGSRV_HOW_STARTED, /* a new shared server was started */
    IMGSRV_HOW_PRIVATE, /* a server of this container's own (*pid: the monitor's child) */
};

/* Is the image server installed and allowed (capsa.conf)?  Otherwise the
 * runtime uses squashfuse_ll (and capsa-cryptfuse); *why says why not. */
bool capsa_imgsrv_available (const struct capsa_container *c, const char **why);

/* Have the user's image server serve FUSEFD (the container's mounted
 * /dev/fuse) from FILEFD at [OFFSET, OFFSET+SIZE) (SIZE 0: to the end),
 * decrypting with the key record on c->opts->key_fd when ENCRYPTED.
 * *pid is set to a server the monitor must stop at the end (a private
 * one), else -1.  -1 with *err when no server could take it. */
int capsa_imgsrv_serve (struct capsa_container *c, int fusefd, int filefd, uint64_t offset, uint64_t size,
                        bool encrypted, pid_t *pid, enum capsa_imgsrv_how *how, capsa_error_t *err);

/* The user's runtime directory for image servers (created 0700 if
 * missing), opened O_PATH|O_DIRECTORY, or -1 with *why (another user's,
 * a symlink, open to others). */
int capsa_imgsrv_rundir (uid_t uid, char **path, const char **why);

#endif
