/* Which capabilities the command gets.  The semantics are Apptainer's:
 *   root:    'root default capabilities' (full | file | no), plus
 *            --add-caps (no grant needed), minus --drop-caps; --keep-privs
 *            keeps all of root's own; --no-privs drops all and wins.
 *   setuid:  --add-caps intersected with the grants of the user's name and
 *            of every group in the caller's group list; the rest refused
 *            with a warning; minus --drop-caps.
 *   userns:  --add-caps as asked, inside the namespace only.
 *   fakeroot: every capability, inside the namespace only (the caller is
 *            root there), minus --drop-caps; none with --no-privs.
 * capability.json is read here, in the starter, from the root-owned path. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/capability.h>
#include <unistd.h>

#include "lib/log.h"
#include "runtime/container.h"

static capsa_capset_t
own_permitted (void)
{
    capsa_capset_t set = 0;
    cap_t caps = cap_get_proc ();
    if (caps == NULL)
        return 0;
    for (int c = 0; c <= capsa_cap_last (); c++) {
        cap_flag_value_t v = CAP_CLEAR;
        if (cap_get_flag (caps, c, CAP_PERMITTED, &v) == 0 && v == CAP_SET)
            set |= UINT64_C (1) << c;
    }
    cap_free (caps);
    return set;
}

/* Grants of a user's name and of the names of all groups in GIDS. */
static capsa_capset_t
granted_to (const struct capsa_grants *g, const char *user, gid_t primary, const gid_t *gids, int n)
{
    capsa_capset_t set = capsa_grants_for_user (g, user);
    for (int i = -1; i < n; i++) {
        struct group *gr = getgrgid (i < 0 ? primary : gids[i]);
        if (gr != NULL)
            set |= capsa_grants_for_group (g, gr->gr_name);
    }
    return set;
}

static capsa_capset_t
parse_reporting (const char *list)
{
    struct strv unknown = { 0 };
    capsa_capset_t set = capsa_caps_parse (list, &unknown);
    for (size_t i = 0; i < unknown.n; i++)
        warnf ("unknown capability '%s', skipped", unknown.v[i]);
    strv_free (&unknown);
    return set;
}

int
capsa_caps_select (struct capsa_container *c, capsa_error_t *err)
{
    const struct capsa_opts *o = c->opts;
    capsa_capset_t requested = parse_reporting (o->add_caps);
    capsa_capset_t dropped = parse_reporting (o->drop_caps);
    struct capsa_grants grants = { 0 };
    capsa_capset_t set = 0;

    if (c->mode != MODE_ROOT) {
        if (o->keep_privs)
            return capsa_error_make (err, 0, "--keep-privs is for root only");
        if (o->allow_setuid)
            return capsa_error_make (err, 0, "--allow-setuid is for root only");
    }

    switch (c->mode) {
    case MODE_ROOT:
        c->own_caps = own_permitted ();
        switch (c->conf->root_default_caps) {
        case ROOT_CAPS_FULL:
            set = c->own_caps;
            break;
        case ROOT_CAPS_FILE: {
            if (capsa_grants_load (&grants, c->grants_path, true, true, err) < 0)
                return -1;
            gid_t groups[256];
            int n = getgroups (256, groups);
            set = granted_to (&grants, "root", 0, groups, n < 0 ? 0 : n);
            capsa_grants_free (&grants);
            break;
        }
        case ROOT_CAPS_NO:
            set = 0;
            break;
        }
        if (o->keep_privs)
            set = c->own_caps;
        set |= requested;
        set &= c->own_caps;
        break;

    case MODE_SETUID: {
        /* The grant file must be trustworthy whether or not capabilities
         * are asked for (an administrator must notice a bad one at once),
         * but it is parsed only when something is asked for. */
        if (requested == 0) {
            if (access (c->grants_path, F_OK) == 0) {
                int fd = capsa_open_trusted_file (c->grants_path, true, err);
                if (fd < 0)
                    return capsa_error_wrap (err, "capability grants");
                close (fd);
            }
            break;
        }
        if (capsa_grants_load (&grants, c->grants_path, true, true, err) < 0)
            return capsa_error_wrap (err, "capability grants");
        capsa_capset_t granted = granted_to (&grants, c->user.name, c->user.gid, c->user.groups, c->user.ngroups);
        capsa_grants_free (&grants);
        capsa_capset_t refused = requested & ~granted;
        if (refused) {
            cleanup_free char *names = capsa_caps_to_string (refused);
            warnf ("not authorized to add capability: %s", names);
        }
        set = requested & granted & own_permitted ();
        break;
    }

    case MODE_USERNS:
        if (c->fakeroot) {
            /* Root of its own user namespace: every capability, as
             * Apptainer gives it, valid in that namespace only. */
            for (int cap = 0; cap <= capsa_cap_last (); cap++)
                set |= UINT64_C (1) << cap;
            break;
        }
        set = requested;
        if (requested)
            verbosef ("capabilities are granted inside the user namespace only (no setuid starter): they give no "
                      "privilege on the host");
        break;
    }

    set &= ~dropped;
    if (o->no_privs)
        set = 0;
    c->caps = set;
    if (capsa_log_get_level () >= CAPSA_LOG_DEBUG) {
        cleanup_free char *names = capsa_caps_to_string (set);
        debugf ("capabilities of the command: %s", *names ? names : "(none)");
    }
    return 0;
}
