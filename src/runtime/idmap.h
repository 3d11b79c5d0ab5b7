/* User-namespace id maps, written by the parent of the new namespace (the
 * container's monitor, a build's parent).  One place for both, so that the
 * fakeroot ranges of /etc/subuid can come in here. */
#ifndef CAPSA_IDMAP_H
#define CAPSA_IDMAP_H

#include <sys/types.h>

#include "lib/error.h"

/* Deny setgroups in PID's user namespace, then write UID_MAP and GID_MAP
 * ("inside outside count\n" lines). */
int capsa_write_id_maps (pid_t pid, const char *uid_map, const char *gid_map, capsa_error_t *err);

#endif
