/* capsa capability (alias caps): add | drop | list | avail.
 *
 * Changes take an exclusive lock on capability.json.lock, read the current
 * grants, write a complete new file beside the old one, fsync it and rename
 * it into place (then fsync the directory), so a reader sees either the old
 * or the new file, never a part. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "config.h"
#include "lib/log.h"
#include "lib/utils.h"
#include "runtime/caps.h"
#include "runtime/conf.h"

static const char *
grants_path (void)
{
    return CAPSA_SYSCONFDIR "/capability.json";
}


/* Load the grants for a change by root.  A file that a setuid run would
 * refuse (symlink, wrong owner or mode) is still read when it is a regular
 * file, so root can repair it with this command; a symlink is never
 * followed and its grants start empty. */
static int
load_for_change (struct capsa_grants *g, capsa_error_t *err)
{
    struct stat st;
    if (lstat (grants_path (), &st) == 0 && S_ISLNK (st.st_mode)) {
        warnf ("%s is a symbolic link; it will be replaced by a regular file", grants_path ());
        memset (g, 0, sizeof (*g));
        return 0;
    }
    return capsa_grants_load (g, grants_path (), false, true, err);
}

static int
change (bool add, const char *list, const char *user, const char *group)
{
    capsa_error_t err = NULL;
    struct strv unknown = { 0 };
    struct capsa_grants g;
    capsa_capset_t caps;

    if (getuid () != 0 || geteuid () != 0)
        capsa_die ("only root may change capability grants");
    if (user == NULL && group == NULL)
        capsa_die ("capability %s: give --user NAME and/or --group NAME", add ? "add" : "drop");
    if (user != NULL && getpwnam (user) == NULL)
        capsa_die ("user '%s' does not exist", user);
    if (group != NULL && getgrnam (group) == NULL)
        capsa_die ("group '%s' does not exist", group);
    caps = capsa_caps_parse (list, &unknown);
    for (size_t i = 0; i < unknown.n; i++)
        warnf ("unknown capability '%s', skipped", unknown.v[i]);
    strv_free (&unknown);
    if (caps == 0)
        capsa_die ("no known capability in '%s' (see 'capsa capability avail')", list);

    cleanup_free char *lockpath = xasprintf ("%s.lock", grants_path ());
    cleanup_close int lock = open (lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lock < 0 || flock (lock, LOCK_EX) < 0)
        capsa_die ("cannot lock %s: %s", lockpath, strerror (errno));
    if (load_for_change (&g, &err) < 0)
        capsa_error_fatal (&err);

    for (int pass = 0; pass < 2; pass++) {
        const char *name = pass == 0 ? user : group;
        bool is_group = pass == 1;
        if (name == NULL)
            continue;
        capsa_capset_t before = is_group ? capsa_grants_for_group (&g, name) : capsa_grants_for_user (&g, name);
        capsa_capset_t after = add ? (before | caps) : (before & ~caps);
        capsa_capset_t same = add ? (before & caps) : (caps & ~before);
        const char *kind = is_group ? "group" : "user";
        if (same) {
            cleanup_free char *names = capsa_caps_to_string (same);
            infof ("%s %s %s %s", kind, name, add ? "already has" : "does not have", names);
        }
        capsa_capset_t changed = before ^ after;
        if (changed && add) {
            cleanup_free char *names = capsa_caps_to_string (changed);
            warnf ("%s will likely let %s %s escalate privilege on the host; to undo: capsa capability drop --%s %s %s",
                   names, is_group ? "the members of group" : "user", name, kind, name, names);
        } else if (changed) {
            cleanup_free char *names = capsa_caps_to_string (changed);
            infof ("dropped %s from %s %s", names, kind, name);
        }
        capsa_grants_set (&g, is_group, name, after);
    }
    cleanup_free char *json = capsa_grants_to_json (&g);
    capsa_grants_free (&g);
    if (write_file_atomic (grants_path (), json, 0, 0, 0644, &err) < 0)
        capsa_error_fatal (&err);
    return 0;
}

static void
print_section (const struct capsa_grant *v, size_t n, const char *kind, const char *only)
{
    for (size_t i = 0; i < n; i++) {
        if (only && strcmp (only, v[i].name) != 0)
            continue;
        cleanup_free char *names = capsa_caps_to_string (v[i].caps);
        printf ("%s [%s]: %s\n", v[i].name, kind, names);
    }
}

static int
list (const char *name)
{
    capsa_error_t err = NULL;
    struct capsa_grants g;
    if (capsa_grants_load (&g, grants_path (), false, true, &err) < 0)
        capsa_error_fatal (&err);
    /* Sorted output: serialising sorts in place. */
    free (capsa_grants_to_json (&g));
    print_section (g.users, g.nusers, "user", name);
    print_section (g.groups, g.ngroups, "group", name);
    capsa_grants_free (&g);
    return 0;
}

static int
avail (const char *list_arg)
{
    struct strv unknown = { 0 };
    capsa_capset_t set = list_arg ? capsa_caps_parse (list_arg, &unknown) : capsa_cap_all ();
    for (size_t i = 0; i < unknown.n; i++)
        warnf ("unknown capability '%s', skipped", unknown.v[i]);
    strv_free (&unknown);
    for (int c = 0; c <= capsa_cap_last (); c++) {
        if (!(set & (UINT64_C (1) << c)))
            continue;
        cleanup_free char *name = capsa_caps_to_string (UINT64_C (1) << c);
        printf ("%-24s %s\n", name, capsa_cap_description (c));
    }
    return 0;
}

int
cmd_capability (int argc, char **argv)
{
    static const struct option opts[] = {
        { "user", required_argument, NULL, 'u' },
        { "group", required_argument, NULL, 'g' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *user = NULL, *group = NULL;
    int c;

    if (argc < 2)
        capsa_die ("usage: capsa capability add|drop|list|avail ... (see 'capsa help capability')");
    const char *sub = argv[1];
    optind = 0;
    opterr = 0;
    while ((c = getopt_long (argc - 1, argv + 1, "u:g:h", opts, NULL)) != -1) {
        switch (c) {
        case 'u':
            user = optarg;
            break;
        case 'g':
            group = optarg;
            break;
        case 'h':
            capsa_print_help ("capability");
            return 0;
        default:
            capsa_die ("capability %s: unknown option '%s'", sub, argv[optind]);
        }
    }
    /* Apptainer's APPTAINER_CAP_USER / APPTAINER_CAP_GROUP, for add and drop. */
    if ((strcmp (sub, "add") == 0 || strcmp (sub, "drop") == 0) && user == NULL && group == NULL) {
        user = capsa_optenv ("CAP_USER");
        group = capsa_optenv ("CAP_GROUP");
    }
    int nargs = argc - 1 - optind;
    char **args = argv + 1 + optind;

    if (strcmp (sub, "add") == 0 || strcmp (sub, "drop") == 0) {
        if (nargs != 1)
            capsa_die ("usage: capsa capability %s CAPABILITIES --user NAME --group NAME", sub);
        return change (sub[0] == 'a', args[0], user, group);
    }
    if (user || group)
        capsa_die ("capability %s takes no --user or --group", sub);
    if (strcmp (sub, "list") == 0) {
        if (nargs > 1)
            capsa_die ("usage: capsa capability list [NAME]");
        return list (nargs == 1 ? args[0] : NULL);
    }
    if (strcmp (sub, "avail") == 0) {
        if (nargs > 1)
            capsa_die ("usage: capsa capability avail [CAPABILITIES]");
        return avail (nargs == 1 ? args[0] : NULL);
    }
    capsa_die ("unknown capability command '%s' (allowed: add, drop, list, avail)", sub);
}
