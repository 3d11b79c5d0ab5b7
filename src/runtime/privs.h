/* Every change of identity and capability of capsa, in one file.
 *
 * In a setuid install the starter begins with real uid = the user and
 * effective uid 0.  capsa_privs_init() lowers the effective ids to the
 * user at once (root stays only in the saved set-user-ID), so everything
 * the user names is opened with the user's own rights.  The monitor
 * raises it for the clone() of the namespaces, then gives it up for good;
 * the child keeps it only until capsa_drop_privileges(), just before exec. */
#ifndef CAPSA_PRIVS_H
#define CAPSA_PRIVS_H

#include "runtime/container.h"

/* Lower (setuid mode) or give up for good (any other non-root mode). */
int capsa_privs_init (enum capsa_mode mode, uid_t uid, gid_t gid, capsa_error_t *err);
int capsa_privs_raise (struct capsa_container *c, capsa_error_t *err);
int capsa_privs_drop_monitor (struct capsa_container *c, capsa_error_t *err);

/* In a forked helper of the starter (one that parses something): give up
 * root for good and become UID/GID with no supplementary groups; in a user
 * namespace run, where nothing is privileged, UID must be the caller. */
int capsa_privs_helper_drop (enum capsa_mode mode, uid_t uid, gid_t gid, capsa_error_t *err);

/* In the child, around opening what the user named: act with the user's
 * own rights (setuid mode: effective ids of the user; user namespace:
 * no effective capabilities), then come back. */
int capsa_privs_user_begin (struct capsa_container *c, capsa_error_t *err);
int capsa_privs_user_end (struct capsa_container *c, capsa_error_t *err);

/* The child's final drop, in this order: supplementary groups, bounding
 * set, ambient set, securebits, gid, uid, inheritable/permitted/effective
 * sets, no_new_privs; then check that root cannot be regained. */
int capsa_drop_privileges (struct capsa_container *c, capsa_error_t *err);

#endif
