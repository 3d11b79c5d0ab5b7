#include "runtime/privs.h"

#include <errno.h>
#include <grp.h>
#include <linux/securebits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "lib/log.h"

int
capsa_privs_init (enum capsa_mode mode, uid_t uid, gid_t gid, capsa_error_t *err)
{
    switch (mode) {
    case MODE_ROOT:
        return 0;
    case MODE_SETUID:
        /* Effective = the user; saved = root, for the clone() and the
         * child's mounts.  Group first, while still root. */
        if (setresgid (-1, gid, 0) < 0 || setresuid (-1, uid, 0) < 0)
            return capsa_error_make (err, errno, "cannot lower privileges");
        return 0;
    case MODE_USERNS:
        /* No privilege is used in this mode: give up any setuid root now. */
        if (setresgid (gid, gid, gid) < 0 || setresuid (uid, uid, uid) < 0)
            return capsa_error_make (err, errno, "cannot drop privileges");
        if (uid != 0 && (setuid (0) == 0 || seteuid (0) == 0))
            return capsa_error_make (err, 0, "privileges could be regained after dropping them");
        /* Nothing privileged is left; the monitor must be able to write
         * the child's uid_map, which needs the child dumpable. */
        prctl (PR_SET_DUMPABLE, 1, 0, 0, 0);
        return 0;
    }
    return 0;
}

int
capsa_privs_raise (struct capsa_container *c, capsa_error_t *err)
{
    if (c->mode != MODE_SETUID)
        return 0;
    if (setresuid (-1, 0, -1) < 0 || setresgid (-1, 0, -1) < 0)
        return capsa_error_make (err, errno, "cannot raise privileges");
    return 0;
}

int
capsa_privs_drop_monitor (struct capsa_container *c, capsa_error_t *err)
{
    if (c->mode != MODE_SETUID)
        return 0;
    if (setresgid (c->user.gid, c->user.gid, c->user.gid) < 0 || setresuid (c->user.uid, c->user.uid, c->user.uid) < 0)
        return capsa_error_make (err, errno, "cannot drop privileges");
    if (setuid (0) == 0 || seteuid (0) == 0)
        return capsa_error_make (err, 0, "privileges could be regained after dropping them");
    return 0;
}

int
capsa_privs_helper_drop (enum capsa_mode mode, uid_t uid, gid_t gid, capsa_error_t *err)
{
    /* setgroups needs root's effective id, which the setuid starter keeps
     * only in its saved set-user-ID by now. */
    if (mode != MODE_USERNS && (seteuid (0) < 0 || setgroups (0, NULL) < 0))
        return capsa_error_make (err, errno, "cannot drop supplementary groups");
    if (setresgid (gid, gid, gid) < 0 || setresuid (uid, uid, uid) < 0)
        return capsa_error_make (err, errno, "cannot change to uid %u", uid);
    if (uid != 0 && (setuid (0) == 0 || seteuid (0) == 0))
        return capsa_error_make (err, 0, "root could be regained after dropping privileges");
    return 0;
}

/* Effective capabilities off (on) while keeping the permitted set. */
static int
set_effective (bool on, capsa_error_t *err)
{
    cap_t caps = cap_get_proc ();
    cap_value_t all[64];
    int n = 0;
    if (caps == NULL)
        return capsa_error_make (err, errno, "cap_get_proc");
    for (int cap = 0; cap < 64 && cap_valid (cap); cap++) {
        cap_flag_value_t v = CAP_CLEAR;
        if (cap_get_flag (caps, cap, CAP_PERMITTED, &v) == 0 && v == CAP_SET)
            all[n++] = cap;
    }
    cap_clear_flag (caps, CAP_EFFECTIVE);
    if (on && n > 0)
        cap_set_flag (caps, CAP_EFFECTIVE, n, all, CAP_SET);
    int r = cap_set_proc (caps);
    int e = errno;
    cap_free (caps);
    if (r < 0)
        return capsa_error_make (err, e, "cannot change effective capabilities");
    return 0;
}

int
capsa_privs_user_begin (struct capsa_container *c, capsa_error_t *err)
{
    switch (c->mode) {
    case MODE_ROOT:
        return 0;
    case MODE_SETUID:
        if (setresgid (-1, c->user.gid, -1) < 0 || setresuid (-1, c->user.uid, -1) < 0)
            return capsa_error_make (err, errno, "cannot lower privileges");
        return 0;
    case MODE_USERNS:
        return set_effective (false, err);
    }
    return 0;
}

int
capsa_privs_user_end (struct capsa_container *c, capsa_error_t *err)
{
    switch (c->mode) {
    case MODE_ROOT:
        return 0;
    case MODE_SETUID:
        if (setresuid (-1, 0, -1) < 0 || setresgid (-1, 0, -1) < 0)
            return capsa_error_make (err, errno, "cannot raise privileges");
        return 0;
    case MODE_USERNS:
        return set_effective (true, err);
    }
    return 0;
}

/* Drop from the bounding set every capability not in KEEP. */
static int
limit_bounding_set (capsa_capset_t keep, capsa_error_t *err)
{
    for (int cap = 0; cap <= capsa_cap_last (); cap++)
        if (!(keep & (UINT64_C (1) << cap)) && prctl (PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            return capsa_error_make (err, errno, "cannot drop capability %d from the bounding set", cap);
    return 0;
}

/* Permitted = effective = inheritable = SET, then ambient = SET, so that
 * the set survives execve of ordinary programs. */
static int
set_all_sets (capsa_capset_t set, capsa_error_t *err)
{
    cap_value_t list[64];
    int n = 0;
    cap_t caps = cap_init ();

    if (caps == NULL)
        return capsa_error_make (err, errno, "cap_init");
    for (int c = 0; c < 64; c++)
        if (set & (UINT64_C (1) << c))
            list[n++] = c;
    if (n > 0
        && (cap_set_flag (caps, CAP_PERMITTED, n, list, CAP_SET) < 0 || cap_set_flag (caps, CAP_EFFECTIVE, n, list, CAP_SET) < 0
            || cap_set_flag (caps, CAP_INHERITABLE, n, list, CAP_SET) < 0)) {
        cap_free (caps);
        return capsa_error_make (err, errno, "cannot build the capability sets");
    }
    if (cap_set_proc (caps) < 0) {
        int e = errno;
        cap_free (caps);
        return capsa_error_make (err, e, "cannot set capabilities");
    }
    cap_free (caps);
    if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        return capsa_error_make (err, errno, "cannot clear the ambient capabilities");
    for (int i = 0; i < n; i++)
        if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, list[i], 0, 0) < 0)
            return capsa_error_make (err, errno, "cannot raise ambient capability %d", list[i]);
    return 0;
}

int
capsa_drop_privileges (struct capsa_container *c, capsa_error_t *err)
{
    const struct capsa_user *u = &c->user;
    const capsa_capset_t keep = c->caps;

    if (c->mode == MODE_ROOT && c->opts->target_uid > 0) {
        /* Root asked to run as another uid (--security uid:N [gid:...]):
         * that uid gets no capabilities and no_new_privs, unless
         * --allow-setuid lets setuid binaries of the image work. */
        const struct capsa_opts *o = c->opts;
        gid_t gid = o->ntarget_gids > 0 ? o->target_gids[0] : 0;
        if (setgroups ((size_t) o->ntarget_gids, o->target_gids) < 0)
            return capsa_error_make (err, errno, "setgroups");
        if (!o->allow_setuid && limit_bounding_set (0, err) < 0)
            return -1;
        if (setresgid (gid, gid, gid) < 0 || setresuid ((uid_t) o->target_uid, (uid_t) o->target_uid, (uid_t) o->target_uid) < 0)
            return capsa_error_make (err, errno, "cannot change to uid %ld", o->target_uid);
        if (set_all_sets (0, err) < 0)
            return -1;
        if (!o->allow_setuid && prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            return capsa_error_make (err, errno, "cannot set no_new_privs");
        return 0;
    }
    if (c->mode == MODE_ROOT) {
        /* Root keeps its identity; its capabilities are limited only when
         * the policy says so (a bounding set of KEEP is enough for exec as
         * root, the other sets are set for a predictable view). */
        if (c->opts->ntarget_gids > 0) {
            if (setgroups ((size_t) c->opts->ntarget_gids, c->opts->target_gids) < 0
                || setresgid (c->opts->target_gids[0], c->opts->target_gids[0], c->opts->target_gids[0]) < 0)
                return capsa_error_make (err, errno, "cannot change to gid %u", c->opts->target_gids[0]);
        }
        if (keep == c->own_caps && !c->opts->no_privs)
            return 0;
        if (limit_bounding_set (keep, err) < 0 || set_all_sets (keep, err) < 0)
            return -1;
        if (keep == 0 && prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            return capsa_error_make (err, errno, "cannot set no_new_privs");
        return 0;
    }

    /* 1. Supplementary groups: the ones the caller had (the user namespace
     *    forbids setgroups; there they are unmapped anyway). */
    if (c->mode == MODE_SETUID && setgroups ((size_t) u->ngroups, u->groups) < 0)
        return capsa_error_make (err, errno, "setgroups");

    /* 2. Bounding set, while CAP_SETPCAP is still held. */
    if (limit_bounding_set (keep, err) < 0)
        return -1;
    if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        return capsa_error_make (err, errno, "cannot clear the ambient capabilities");

    /* 3. Securebits, locked: uid 0 never means capabilities again and the
     *    kernel's setuid fix-ups stay on.  Keep-caps only for the uid change
     *    below when something is granted; it is cleared again right after
     *    and by execve.  (It is not locked off: programs such as ping call
     *    PR_SET_KEEPCAPS themselves, and it can keep only what is already
     *    permitted.) */
    unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED;
    if (keep)
        bits |= SECBIT_KEEP_CAPS;
    if (prctl (PR_SET_SECUREBITS, bits, 0, 0, 0) < 0)
        return capsa_error_make (err, errno, "cannot set securebits");

    /* 4. Identity. */
    if (setresgid (u->gid, u->gid, u->gid) < 0)
        return capsa_error_make (err, errno, "setresgid");
    if (setresuid (u->uid, u->uid, u->uid) < 0)
        return capsa_error_make (err, errno, "setresuid");

    /* 5. Exactly the granted set in permitted, effective, inheritable and
     *    ambient (empty when nothing was granted). */
    if (set_all_sets (keep, err) < 0)
        return -1;
    if (keep && prctl (PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
        return capsa_error_make (err, errno, "cannot clear keep-caps");

    /* 6. Nothing executed from here can gain privilege (setuid binaries,
     *    file capabilities). */
    if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return capsa_error_make (err, errno, "cannot set no_new_privs");

    /* 7. Check. */
    if (u->uid != 0 && (setuid (0) == 0 || seteuid (0) == 0))
        return capsa_error_make (err, 0, "root could be regained after dropping privileges");
    return 0;
}
