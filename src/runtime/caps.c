#include "runtime/caps.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "runtime/conf.h"

#define GRANTS_MAX_SIZE (4 << 20)

int
capsa_cap_last (void)
{
    static int last = -1;
    if (last < 0) {
        /* The bounding set answers for every capability the kernel has. */
        int n = 0;
        while (n < 64 && prctl (PR_CAPBSET_READ, n, 0, 0, 0) >= 0)
            n++;
        last = n > 0 ? n - 1 : CAP_LAST_CAP;
    }
    return last;
}

capsa_capset_t
capsa_cap_all (void)
{
    int last = capsa_cap_last ();
    return last >= 63 ? ~UINT64_C (0) : (UINT64_C (1) << (last + 1)) - 1;
}

struct parse_ctx {
    capsa_capset_t set;
    struct strv *unknown;
};

static int
parse_one (const char *item, void *data, capsa_error_t *err)
{
    struct parse_ctx *ctx = data;
    cleanup_free char *name = NULL;
    cap_value_t v;
    size_t i;

    (void) err;
    if (strcasecmp (item, "all") == 0) {
        ctx->set |= capsa_cap_all ();
        return 0;
    }
    name = strncasecmp (item, "CAP_", 4) == 0 ? xstrdup (item) : xasprintf ("CAP_%s", item);
    for (i = 0; name[i]; i++)
        name[i] = (char) toupper ((unsigned char) name[i]);
    /* libcap also accepts numbers; capsa wants names only. */
    if (cap_from_name (name, &v) < 0 || isdigit ((unsigned char) name[4]) || v < 0 || v > capsa_cap_last ()) {
        if (ctx->unknown)
            strv_push (ctx->unknown, name);
        return 0;
    }
    ctx->set |= UINT64_C (1) << v;
    return 0;
}

capsa_capset_t
capsa_caps_parse (const char *list, struct strv *unknown)
{
    struct parse_ctx ctx = { 0, unknown };
    capsa_error_t err = NULL;
    if (list != NULL)
        split_list (list, ',', parse_one, &ctx, &err);
    capsa_error_free (&err);
    return ctx.set;
}

char *
capsa_caps_to_string (capsa_capset_t set)
{
    char *out = xstrdup ("");
    for (int c = 0; c < 64; c++) {
        if (!(set & (UINT64_C (1) << c)))
            continue;
        char *name = cap_to_name (c);
        char *upper = xstrdup (name ? name : "?");
        cap_free (name);
        for (char *p = upper; *p; p++)
            *p = (char) toupper ((unsigned char) *p);
        char *next = xasprintf ("%s%s%s", out, *out ? "," : "", upper);
        free (upper);
        free (out);
        out = next;
    }
    return out;
}

static const char *const descriptions[] = {
    [CAP_CHOWN] = "change the owner and group of any file",
    [CAP_DAC_OVERRIDE] = "bypass file read, write and execute permission checks",
    [CAP_DAC_READ_SEARCH] = "bypass file read and directory search permission checks",
    [CAP_FOWNER] = "bypass checks that the process owns the file (chmod, utime, ...)",
    [CAP_FSETID] = "keep set-user-ID and set-group-ID bits when a file is modified",
    [CAP_KILL] = "send signals to any process",
    [CAP_SETGID] = "change group IDs and supplementary groups at will",
    [CAP_SETUID] = "change user IDs at will",
    [CAP_SETPCAP] = "change capability sets and securebits",
    [CAP_LINUX_IMMUTABLE] = "set the immutable and append-only file attributes",
    [CAP_NET_BIND_SERVICE] = "bind to network ports below 1024",
    [CAP_NET_BROADCAST] = "broadcast and listen to multicast (unused)",
    [CAP_NET_ADMIN] = "configure networking: interfaces, routes, firewall, ...",
    [CAP_NET_RAW] = "use raw and packet sockets (ping, traceroute)",
    [CAP_IPC_LOCK] = "lock memory (mlock, mlockall, huge pages)",
    [CAP_IPC_OWNER] = "bypass permission checks on System V IPC objects",
    [CAP_SYS_MODULE] = "load and unload kernel modules",
    [CAP_SYS_RAWIO] = "perform raw I/O on ports and devices",
    [CAP_SYS_CHROOT] = "use chroot",
    [CAP_SYS_PTRACE] = "trace and inspect any process",
    [CAP_SYS_PACCT] = "switch process accounting on and off",
    [CAP_SYS_ADMIN] = "system administration: mount, namespaces, and much more",
    [CAP_SYS_BOOT] = "reboot the machine and load a new kernel",
    [CAP_SYS_NICE] = "raise priorities and set scheduling policies of any process",
    [CAP_SYS_RESOURCE] = "override resource limits and quotas",
    [CAP_SYS_TIME] = "set the system clock",
    [CAP_SYS_TTY_CONFIG] = "configure terminals (vhangup)",
    [CAP_MKNOD] = "create device files",
    [CAP_LEASE] = "take leases on any file",
    [CAP_AUDIT_WRITE] = "write records to the kernel audit log",
    [CAP_AUDIT_CONTROL] = "configure kernel auditing",
    [CAP_SETFCAP] = "set file capabilities",
    [CAP_MAC_OVERRIDE] = "override mandatory access control",
    [CAP_MAC_ADMIN] = "configure mandatory access control",
    [CAP_SYSLOG] = "use privileged syslog operations",
    [CAP_WAKE_ALARM] = "trigger wake-up alarms",
    [CAP_BLOCK_SUSPEND] = "prevent the system from suspending",
    [CAP_AUDIT_READ] = "read the audit log through multicast netlink",
#ifdef CAP_PERFMON
    [CAP_PERFMON] = "use performance monitoring (perf_event_open)",
#endif
#ifdef CAP_BPF
    [CAP_BPF] = "use privileged BPF operations",
#endif
#ifdef CAP_CHECKPOINT_RESTORE
    [CAP_CHECKPOINT_RESTORE] = "checkpoint and restore processes",
#endif
};

const char *
capsa_cap_description (int cap)
{
    if (cap >= 0 && (size_t) cap < ARRAY_SIZE (descriptions) && descriptions[cap])
        return descriptions[cap];
    return "(no description)";
}

void
capsa_grants_free (struct capsa_grants *g)
{
    for (size_t i = 0; i < g->nusers; i++)
        free (g->users[i].name);
    for (size_t i = 0; i < g->ngroups; i++)
        free (g->groups[i].name);
    free (g->users);
    free (g->groups);
    memset (g, 0, sizeof (*g));
}

static int
parse_section (json_object *obj, struct capsa_grants *g, bool group, const char *name, capsa_error_t *err)
{
    if (!json_object_is_type (obj, json_type_object))
        return capsa_error_make (err, 0, "%s: \"%s\" must be an object", name, group ? "groups" : "users");
    json_object_object_foreach (obj, key, val)
    {
        capsa_capset_t set = 0;
        if (!json_object_is_type (val, json_type_array))
            return capsa_error_make (err, 0, "%s: the entry of '%s' must be an array of capability names", name, key);
        size_t n = json_object_array_length (val);
        for (size_t i = 0; i < n; i++) {
            json_object *item = json_object_array_get_idx (val, i);
            struct strv unknown = { 0 };
            if (!json_object_is_type (item, json_type_string)) {
                return capsa_error_make (err, 0, "%s: the entry of '%s' must be an array of capability names", name,
                                         key);
            }
            capsa_capset_t one = capsa_caps_parse (json_object_get_string (item), &unknown);
            if (unknown.n > 0) {
                capsa_error_make (err, 0, "%s: unknown capability '%s' for '%s'", name, unknown.v[0], key);
                strv_free (&unknown);
                return -1;
            }
            set |= one;
        }
        if (strlen (key) == 0)
            return capsa_error_make (err, 0, "%s: empty %s name", name, group ? "group" : "user");
        capsa_grants_set (g, group, key, set);
    }
    return 0;
}

int
capsa_grants_parse (struct capsa_grants *g, const char *name, const char *text, size_t len, capsa_error_t *err)
{
    json_tokener *tok = json_tokener_new ();
    json_object *root;
    enum json_tokener_error jerr;
    int ret = -1;

    memset (g, 0, sizeof (*g));
    if (tok == NULL)
        return capsa_error_make (err, ENOMEM, "%s", name);
    if (len > INT32_MAX) {
        json_tokener_free (tok);
        return capsa_error_make (err, EFBIG, "%s", name);
    }
    root = json_tokener_parse_ex (tok, text, (int) len);
    jerr = json_tokener_get_error (tok);
    if (root == NULL || jerr != json_tokener_success || (size_t) json_tokener_get_parse_end (tok) < len) {
        /* Trailing white space is fine; anything else is not. */
        size_t end = root ? json_tokener_get_parse_end (tok) : 0;
        bool trailing_ok = root != NULL && jerr == json_tokener_success;
        for (size_t i = end; trailing_ok && i < len; i++)
            if (!isspace ((unsigned char) text[i]))
                trailing_ok = false;
        if (!trailing_ok) {
            capsa_error_make (err, 0, "%s: invalid JSON at byte %zu: %s", name, json_tokener_get_parse_end (tok),
                              root ? "unexpected data after the object" : json_tokener_error_desc (jerr));
            goto out;
        }
    }
    if (!json_object_is_type (root, json_type_object)) {
        capsa_error_make (err, 0, "%s: expected an object with \"users\" and \"groups\"", name);
        goto out;
    }
    json_object_object_foreach (root, key, val)
    {
        if (strcmp (key, "users") == 0 || strcmp (key, "groups") == 0) {
            if (parse_section (val, g, key[0] == 'g', name, err) < 0)
                goto out;
        } else {
            capsa_error_make (err, 0, "%s: unknown key \"%s\" (allowed: users, groups)", name, key);
            goto out;
        }
    }
    ret = 0;
out:
    if (ret < 0)
        capsa_grants_free (g);
    json_object_put (root);
    json_tokener_free (tok);
    return ret;
}

int
capsa_grants_load (struct capsa_grants *g, const char *path, bool strict, bool missing_ok, capsa_error_t *err)
{
    cleanup_free char *text = NULL;
    size_t len = 0;
    memset (g, 0, sizeof (*g));
    if (missing_ok && access (path, F_OK) < 0 && errno == ENOENT)
        return 0;
    cleanup_close int fd = capsa_open_trusted_file (path, strict, err);
    if (fd < 0)
        return -1;
    if (read_fd_all (fd, GRANTS_MAX_SIZE, &text, &len, err) < 0)
        return capsa_error_wrap (err, "%s", path);
    return capsa_grants_parse (g, path, text, len, err);
}

static capsa_capset_t
lookup (const struct capsa_grant *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp (v[i].name, name) == 0)
            return v[i].caps;
    return 0;
}

capsa_capset_t
capsa_grants_for_user (const struct capsa_grants *g, const char *user)
{
    return lookup (g->users, g->nusers, user);
}

capsa_capset_t
capsa_grants_for_group (const struct capsa_grants *g, const char *group)
{
    return lookup (g->groups, g->ngroups, group);
}

void
capsa_grants_set (struct capsa_grants *g, bool group, const char *name, capsa_capset_t caps)
{
    struct capsa_grant **v = group ? &g->groups : &g->users;
    size_t *n = group ? &g->ngroups : &g->nusers;
    for (size_t i = 0; i < *n; i++) {
        if (strcmp ((*v)[i].name, name) != 0)
            continue;
        if (caps != 0) {
            (*v)[i].caps = caps;
        } else {
            free ((*v)[i].name);
            memmove (&(*v)[i], &(*v)[i + 1], (*n - i - 1) * sizeof (**v));
            (*n)--;
        }
        return;
    }
    if (caps == 0)
        return;
    *v = xrealloc (*v, (*n + 1) * sizeof (**v));
    (*v)[*n].name = xstrdup (name);
    (*v)[*n].caps = caps;
    (*n)++;
}

static int
cmp_grant (const void *a, const void *b)
{
    return strcmp (((const struct capsa_grant *) a)->name, ((const struct capsa_grant *) b)->name);
}

static json_object *
section_to_json (struct capsa_grant *v, size_t n)
{
    json_object *obj = json_object_new_object ();
    if (n > 0)
        qsort (v, n, sizeof (*v), cmp_grant);
    for (size_t i = 0; i < n; i++) {
        json_object *arr = json_object_new_array ();
        for (int c = 0; c < 64; c++) {
            if (!(v[i].caps & (UINT64_C (1) << c)))
                continue;
            cleanup_free char *s = capsa_caps_to_string (UINT64_C (1) << c);
            json_object_array_add (arr, json_object_new_string (s));
        }
        json_object_object_add (obj, v[i].name, arr);
    }
    return obj;
}

char *
capsa_grants_to_json (const struct capsa_grants *g)
{
    json_object *root = json_object_new_object ();
    json_object_object_add (root, "users", section_to_json (g->users, g->nusers));
    json_object_object_add (root, "groups", section_to_json (g->groups, g->ngroups));
    char *s = xasprintf ("%s\n", json_object_to_json_string_ext (root, JSON_C_TO_STRING_PRETTY
                                                                           | JSON_C_TO_STRING_SPACED
                                                                           | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put (root);
    return s;
}
