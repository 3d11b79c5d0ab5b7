/* Which host paths go into a container by configuration (hostmounts.c):
 * 'mount hostfs' and the user's binds of devices of the host's /dev. */
#ifndef CAPSA_HOSTMOUNTS_H
#define CAPSA_HOSTMOUNTS_H

#include <stdbool.h>

#include "lib/utils.h"

/* The mount points 'mount hostfs = yes' binds, from the text of a
 * /proc/self/mountinfo: those whose parent is the mount on "/", except
 * those under /proc, /sys, /dev, /run, /boot and /var (Apptainer's list,
 * compared as string prefixes), in file order, without duplicates. */
void capsa_hostfs_points (const char *mountinfo, struct strv *out);

/* Is the bind SRC:DST one of a device of the host's /dev (DST equal to
 * SRC, both below /dev once cleaned)?  Such binds go into the container's
 * /dev without nodev (the source mount's own nodev still applies).
 * *whole is set for "/dev" itself. */
bool capsa_dev_bind (const char *src, const char *dst, bool *whole);

/* May DST (below /dev, cleaned) be made in capsa's minimal /dev?  Not
 * below its mounts and links (pts, shm, fd, stdin, stdout, stderr, ptmx),
 * and not one of its nodes (null, zero, full, random, urandom, tty), which
 * are the host's already (*present set). */
bool capsa_dev_bind_allowed (const char *dst, bool *present);

#endif
