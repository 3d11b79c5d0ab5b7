/* Identity and capability changes: see privs.h for the order. */
#include "runtime/privs.h"

#include <errno.h>
#include <grp.h>
#include <linux/securebits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include <stdnoreturn.h>

_Static_assert (CAPSA_SECUREBITS
                    == (SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE
                        | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED),
                "CAPSA_SECUREBITS");

/* ---- 1. starter start ------------------------------------------------------ */

/* What capsa_privs_init decided last, for the state brackets (-1: none). */
static int starter_mode = -1;
static uid_t starter_uid;
static gid_t starter_gid;

int
capsa_privs_init (enum capsa_mode mode, uid_t uid, gid_t gid, capsa_error_t *err)
{
    starter_mode = (int) mode;
    starter_uid = uid;
    starter_gid = gid;
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

/* ---- 1b. the starter's own state (instance.c) ------------------------------- */

static noreturn void
state_identity_failed (const char *what)
{
    capsa_die ("cannot %s privileges around the instance state: %s", what, strerror (errno));
}

void
capsa_privs_state_begin (void)
{
    if (starter_mode != MODE_SETUID)
        return;
    if (setresuid (-1, 0, -1) < 0 || setresgid (-1, 0, -1) < 0)
        state_identity_failed ("raise");
}

void
capsa_privs_state_end (void)
{
    if (starter_mode != MODE_SETUID)
        return;
    if (setresgid (-1, starter_gid, -1) < 0 || setresuid (-1, starter_uid, -1) < 0)
        state_identity_failed ("lower");
    if (geteuid () != starter_uid || (uid_t) setfsuid ((uid_t) -1) != starter_uid)
        capsa_die ("the effective uid is not the user's after the instance state");
}

/* ---- 2. the monitor -------------------------------------------------------- */

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
    if (c->mode == MODE_USERNS) {
        /* Nothing to give up, except after joining an instance's user
         * namespace (instance.c), which gave every capability of that
         * namespace: none is kept. */
        cap_t none = cap_init ();
        int r = none ? cap_set_proc (none) : -1;
        int e = errno;
        if (none)
            cap_free (none);
        if (r < 0)
            return capsa_error_make (err, e, "cannot drop capabilities");
        return 0;
    }
    if (c->mode != MODE_SETUID)
        return 0;
    if (setresgid (c->user.gid, c->user.gid, c->user.gid) < 0 || setresuid (c->user.uid, c->user.uid, c->user.uid) < 0)
        return capsa_error_make (err, errno, "cannot drop privileges");
    if (setuid (0) == 0 || seteuid (0) == 0)
        return capsa_error_make (err, 0, "privileges could be regained after dropping them");
    return 0;
}

/* ---- helpers --------------------------------------------------------------- */

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

int
capsa_privs_user_helper_drop (const struct capsa_container *c, capsa_error_t *err)
{
    const struct capsa_user *u = &c->user;
    if (c->mode != MODE_SETUID)
        return 0;
    if (seteuid (0) < 0 || setgroups ((size_t) u->ngroups, u->groups) < 0)
        return capsa_error_make (err, errno, "cannot set supplementary groups");
    if (setresgid (u->gid, u->gid, u->gid) < 0 || setresuid (u->uid, u->uid, u->uid) < 0)
        return capsa_error_make (err, errno, "cannot change to uid %u", u->uid);
    if (setuid (0) == 0 || seteuid (0) == 0)
        return capsa_error_make (err, 0, "root could be regained after dropping privileges");
    return 0;
}

/* ---- 3. the child before the final drop ------------------------------------ */

/* Set by capsa_privs_child_begin in the container's child; -1 elsewhere
 * (the front end's builds use mount.c too, with no identity to juggle). */
static int child_mode = -1;
static uid_t child_uid;
static gid_t child_gid;

/* Effective capabilities: all permitted ones (ON) or none. */
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

static int
as_user (capsa_error_t *err)
{
    switch (child_mode) {
    case MODE_SETUID:
        if (setresgid (-1, child_gid, -1) < 0 || setresuid (-1, child_uid, -1) < 0)
            return capsa_error_make (err, errno, "cannot lower privileges");
        /* (setresuid set the file-system ids to the user as well.) */
        if ((uid_t) setfsuid ((uid_t) -1) != child_uid)
            return capsa_error_make (err, 0, "file-system uid is not the user's");
        return 0;
    case MODE_USERNS:
        return set_effective (false, err);
    default:
        return 0;
    }
}

static int
as_root (capsa_error_t *err)
{
    switch (child_mode) {
    case MODE_SETUID:
        if (setresuid (-1, 0, -1) < 0 || setresgid (-1, 0, -1) < 0)
            return capsa_error_make (err, errno, "cannot raise privileges");
        return 0;
    case MODE_USERNS:
        return set_effective (true, err);
    default:
        return 0;
    }
}

int
capsa_privs_child_begin (struct capsa_container *c, capsa_error_t *err)
{
    child_mode = (int) c->mode;
    child_uid = c->user.uid;
    child_gid = c->user.gid;
    return as_user (err);
}

static noreturn void
identity_failed (capsa_error_t *err)
{
    capsa_error_fatal (err);
}

void
capsa_privs_mount_begin (void)
{
    capsa_error_t err = NULL;
    if (child_mode >= 0 && as_root (&err) < 0)
        identity_failed (&err);
}

void
capsa_privs_mount_end (void)
{
    capsa_error_t err = NULL;
    if (child_mode >= 0 && as_user (&err) < 0)
        identity_failed (&err);
}

/* ---- 4. the final drop ------------------------------------------------------ */

/* What the final drop does, decided from the mode and options first, then
 * applied in one fixed order. */
struct drop_plan {
    bool set_groups;
    const gid_t *groups;
    size_t ngroups;
    bool change_ids;
    uid_t uid;
    gid_t gid;
    bool set_caps;          /* bounding, ambient and the three sets := keep */
    capsa_capset_t keep;
    bool securebits;        /* CAPSA_SECUREBITS */
    bool no_new_privs;
    bool check_no_root;     /* root must not come back */
};

static void
plan_drop (const struct capsa_container *c, struct drop_plan *p)
{
    const struct capsa_opts *o = c->opts;
    memset (p, 0, sizeof (*p));
    p->keep = c->caps;
    switch (c->mode) {
    case MODE_SETUID:
        /* The user, with the groups the kernel gave the caller. */
        p->set_groups = true;
        p->groups = c->user.groups;
        p->ngroups = (size_t) c->user.ngroups;
        p->change_ids = true;
        p->uid = c->user.uid;
        p->gid = c->user.gid;
        p->set_caps = p->securebits = p->no_new_privs = p->check_no_root = true;
        break;
    case MODE_USERNS:
        /* setgroups is denied in the namespace (the groups are unmapped
         * anyway); the ids are already the user's (or --security's). */
        p->change_ids = true;
        p->uid = c->user.uid;
        p->gid = c->user.gid;
        p->set_caps = p->securebits = p->no_new_privs = true;
        p->check_no_root = c->user.uid != 0;
        if (c->fakeroot) {
            /* Root of the namespace, with the capabilities decided
             * (every one by default): uid 0 must mean root there, so no
             * NOROOT securebits.  The supplementary groups stay (unmapped,
             * they still open the caller's group files).  no_new_privs:
             * nothing executed can gain more (every mount is nosuid
             * anyway). */
            p->securebits = false;
            p->check_no_root = false;
        }
        break;
    case MODE_ROOT:
        if (o->ntarget_gids > 0) {
            p->set_groups = true;
            p->groups = o->target_gids;
            p->ngroups = (size_t) o->ntarget_gids;
        }
        if (o->target_uid > 0) {
            /* Root asked to run as another uid (--security uid:N): no
             * capabilities and no_new_privs, unless --allow-setuid lets
             * setuid binaries of the image work (then the bounding set
             * is left alone). */
            p->change_ids = true;
            p->uid = (uid_t) o->target_uid;
            p->gid = o->ntarget_gids > 0 ? o->target_gids[0] : 0;
            p->keep = 0;
            p->set_caps = !o->allow_setuid;
            p->no_new_privs = !o->allow_setuid;
            p->check_no_root = true;
            if (o->allow_setuid) {
                /* Only the three sets are emptied (below, by the uid change). */
            }
        } else {
            if (o->ntarget_gids > 0) {
                p->change_ids = true;
                p->uid = 0;
                p->gid = o->target_gids[0];
            }
            /* Root's capabilities are limited only when the policy says so. */
            p->set_caps = p->keep != c->own_caps || o->no_privs;
            p->no_new_privs = p->set_caps && p->keep == 0;
        }
        break;
    }
}

static int
set_securebits (unsigned long bits, capsa_error_t *err)
{
    if (prctl (PR_SET_SECUREBITS, bits, 0, 0, 0) < 0)
        return capsa_error_make (err, errno, "cannot set securebits 0x%lx", bits);
    return 0;
}

/* Permitted, effective and inheritable := SET (plus EXTRA in effective and
 * permitted, e.g. CAP_SETPCAP for one more step). */
static int
set_sets (capsa_capset_t set, capsa_capset_t extra, capsa_error_t *err)
{
    cap_value_t list[64], more[64];
    int n = 0, m = 0;
    cap_t caps = cap_init ();

    if (caps == NULL)
        return capsa_error_make (err, errno, "cap_init");
    for (int c = 0; c < 64; c++) {
        if (set & (UINT64_C (1) << c))
            list[n++] = c;
        if ((set | extra) & (UINT64_C (1) << c))
            more[m++] = c;
    }
    if ((m > 0 && (cap_set_flag (caps, CAP_PERMITTED, m, more, CAP_SET) < 0 || cap_set_flag (caps, CAP_EFFECTIVE, m, more, CAP_SET) < 0))
        || (n > 0 && cap_set_flag (caps, CAP_INHERITABLE, n, list, CAP_SET) < 0)) {
        cap_free (caps);
        return capsa_error_make (err, errno, "cannot build the capability sets");
    }
    int r = cap_set_proc (caps);
    int e = errno;
    cap_free (caps);
    if (r < 0)
        return capsa_error_make (err, e, "cannot set capabilities");
    return 0;
}

static int
set_ambient (capsa_capset_t set, capsa_error_t *err)
{
    if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        return capsa_error_make (err, errno, "cannot clear the ambient capabilities");
    for (int c = 0; c < 64; c++)
        if ((set & (UINT64_C (1) << c)) && prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
            return capsa_error_make (err, errno, "cannot raise ambient capability %d", c);
    return 0;
}

/* The capability sets as the kernel has them now. */
static int
current_sets (capsa_capset_t *p, capsa_capset_t *e, capsa_capset_t *i, capsa_capset_t *a, capsa_error_t *err)
{
    cap_t caps = cap_get_proc ();
    if (caps == NULL)
        return capsa_error_make (err, errno, "cap_get_proc");
    *p = *e = *i = *a = 0;
    for (int c = 0; c <= capsa_cap_last (); c++) {
        cap_flag_value_t v;
        capsa_capset_t bit = UINT64_C (1) << c;
        if (cap_get_flag (caps, c, CAP_PERMITTED, &v) == 0 && v == CAP_SET)
            *p |= bit;
        if (cap_get_flag (caps, c, CAP_EFFECTIVE, &v) == 0 && v == CAP_SET)
            *e |= bit;
        if (cap_get_flag (caps, c, CAP_INHERITABLE, &v) == 0 && v == CAP_SET)
            *i |= bit;
        if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) == 1)
            *a |= bit;
    }
    cap_free (caps);
    return 0;
}

int
capsa_drop_privileges (struct capsa_container *c, int monitor_fd, capsa_error_t *err)
{
    struct drop_plan p;
    const capsa_capset_t setpcap = UINT64_C (1) << CAP_SETPCAP;

    plan_drop (c, &p);
    /* Root's effective ids (setuid mode) or capabilities (user namespace)
     * for the steps below. */
    if (as_root (err) < 0)
        return -1;
    child_mode = -1; /* no more mount brackets from here on */

    /* 1. Supplementary groups. */
    if (p.set_groups && setgroups (p.ngroups, p.groups) < 0)
        return capsa_error_make (err, errno, "setgroups");

    /* 2. Bounding set, while CAP_SETPCAP is still held; ambient cleared. */
    if (p.set_caps) {
        for (int cap = 0; cap <= capsa_cap_last (); cap++)
            if (!(p.keep & (UINT64_C (1) << cap)) && prctl (PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
                return capsa_error_make (err, errno, "cannot drop capability %d from the bounding set", cap);
        if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
            return capsa_error_make (err, errno, "cannot clear the ambient capabilities");
    }

    /* 3. Securebits, all but the ambient lock, plus keep-caps for the uid
     *    change: the permitted set must survive it for step 5. */
    if (p.securebits
        && set_securebits (SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS, err) < 0)
        return -1;

    /* 4. Identity. */
    if (p.change_ids) {
        if (setresgid (p.gid, p.gid, p.gid) < 0)
            return capsa_error_make (err, errno, "cannot change to gid %u", p.gid);
        if (setresuid (p.uid, p.uid, p.uid) < 0)
            return capsa_error_make (err, errno, "cannot change to uid %u", p.uid);
    }

    /* 5. Exactly the granted set in permitted, effective, inheritable and
     *    ambient; then the final securebits (the ambient lock needs
     *    CAP_SETPCAP for a moment), keep-caps off; then CAP_SETPCAP goes. */
    if (p.set_caps) {
        if (set_sets (p.keep, p.securebits ? setpcap : 0, err) < 0 || set_ambient (p.keep, err) < 0)
            return -1;
        if (p.securebits && set_securebits (CAPSA_SECUREBITS, err) < 0)
            return -1;
        if (set_sets (p.keep, 0, err) < 0)
            return -1;
    }

    /* 6. Nothing executed from here can gain privilege (setuid binaries,
     *    file capabilities). */
    if (p.no_new_privs && prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return capsa_error_make (err, errno, "cannot set no_new_privs");

    /* 7. Die with the monitor.  Every credential change above cleared the
     *    parent-death signal; if the monitor died before it was armed
     *    again, its end of the socket is closed. */
    if (prctl (PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        return capsa_error_make (err, errno, "cannot set the parent-death signal");
    if (monitor_fd >= 0) {
        char byte;
        struct pollfd pfd = { .fd = monitor_fd, .events = POLLIN };
        if (poll (&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR)) != 0)
            _exit (CAPSA_EXIT_FATAL);
        if (recv (monitor_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
            _exit (CAPSA_EXIT_FATAL);
    }

    /* 8. Check. */
    if (p.check_no_root && (setuid (0) == 0 || seteuid (0) == 0))
        return capsa_error_make (err, 0, "root could be regained after dropping privileges");
    if (p.set_caps) {
        capsa_capset_t cp = 0, ce = 0, ci = 0, ca = 0;
        if (current_sets (&cp, &ce, &ci, &ca, err) < 0)
            return -1;
        if (cp != p.keep || ce != p.keep || ci != p.keep || ca != p.keep)
            return capsa_error_make (err, 0, "the capability sets are not what was granted");
    }
    if (p.securebits && (unsigned long) prctl (PR_GET_SECUREBITS, 0, 0, 0, 0) != CAPSA_SECUREBITS)
        return capsa_error_make (err, 0, "the securebits are not 0x%lx", CAPSA_SECUREBITS);
    return 0;
}
