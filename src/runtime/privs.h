/* Every change of identity and capability of capsa, in one file, in one
 * order (the mode decides which steps apply).
 *
 * A setuid install's starter begins with real uid = the user and effective
 * and saved uid 0.
 *
 *   1. capsa_privs_init (starter start): setuid mode lowers the effective
 *      ids to the user (root stays only in the saved set-user-ID); any other
 *      non-root mode gives root up for good.
 *   2. The monitor raises for clone() of the namespaces
 *      (capsa_privs_raise) and drops for good right after
 *      (capsa_privs_drop_monitor).
 *   3. The child starts as the user (capsa_privs_child_begin): every path
 *      the user chose is resolved, created, read and entered with the
 *      user's own rights.  Root comes back only around one mount-type
 *      syscall at a time (capsa_privs_mount_begin/end, called by
 *      src/runtime/mount.c), on descriptors opened as the user or on fixed
 *      paths of the installation.
 *   4. The child's final drop (capsa_drop_privileges), just before exec.
 *
 * Forked helpers that parse something the user brought (the SIF header,
 * the image's passwd and group, a seccomp profile) first give root up for
 * good: capsa_privs_helper_drop. */
#ifndef CAPSA_PRIVS_H
#define CAPSA_PRIVS_H

#include "runtime/container.h"

/* 1. Lower (setuid mode) or give up for good (any other non-root mode). */
int capsa_privs_init (enum capsa_mode mode, uid_t uid, gid_t gid, capsa_error_t *err);

/* 1b. The starter's own instance state (instance.c): in setuid mode, root's
 * effective ids around an access to root's state directory
 * (CAPSA_RUNSTATEDIR/instances) or to /proc/PID of a process the state
 * names; a no-op in the other modes.  Never around a path the user chose.
 * A failure to change identity ends the process (exit 255). */
void capsa_privs_state_begin (void);
void capsa_privs_state_end (void);

/* 2. The monitor: root for clone(), then never again.  (In a user
 * namespace, drop_monitor empties the capability sets: a monitor that
 * joined an instance's user namespace holds them.) */
int capsa_privs_raise (struct capsa_container *c, capsa_error_t *err);
int capsa_privs_drop_monitor (struct capsa_container *c, capsa_error_t *err);

/* 3. The child, from clone() to the final drop: act as the user (setuid
 * mode: effective ids of the user, root only saved; user namespace: no
 * effective capabilities; root: unchanged).  Between mount_begin and
 * mount_end the child is privileged again, for one syscall; a failure to
 * change identity there ends the process (exit 255): a half-changed
 * privileged process must not go on. */
int capsa_privs_child_begin (struct capsa_container *c, capsa_error_t *err);
void capsa_privs_mount_begin (void);
void capsa_privs_mount_end (void);

/* 4. The child's final drop, in this order: supplementary groups, bounding
 * set, ambient set, securebits, gid, uid, inheritable/permitted/effective
 * and ambient sets, keep-caps off, no_new_privs; then the parent-death
 * signal is armed again (every credential change clears it) and the child
 * checks that its monitor (the other end of MONITOR_FD) still lives; last,
 * that root cannot be regained and the capability sets are exactly what
 * was granted. */
int capsa_drop_privileges (struct capsa_container *c, int monitor_fd, capsa_error_t *err);

/* A forked helper of the starter (one that parses something): give up
 * root for good and become UID/GID with no supplementary groups.  In a user
 * namespace run, where nothing is privileged, UID must be the caller. */
int capsa_privs_helper_drop (enum capsa_mode mode, uid_t uid, gid_t gid, capsa_error_t *err);

/* The same in a helper forked by the setuid child (capsa_run_as_user):
 * the user for good, with the caller's supplementary groups. */
int capsa_privs_user_helper_drop (const struct capsa_container *c, capsa_error_t *err);

/* The securebits of a user's container (setuid and user namespace modes):
 * uid 0 never means capabilities again (NOROOT, locked), the kernel's
 * setuid fix-ups stay on (locked), and no capability can be raised into
 * the ambient set (locked).  Keep-caps is not locked: programs such as
 * ping set it themselves, and it can keep only what is already permitted. */
#define CAPSA_SECUREBITS 0xcbUL

#endif
