/* Apptainer directives that capsa accepts in capsa.conf without applying
 * them: features capsa does not have (CNI networks, cgroups,
 * monitoring, library downloads, plugins).  An apptainer.conf copied over
 * capsa.conf must run containers, so each is validated as Apptainer
 * validates it (its authorized values, unsigned integers) and then:
 *
 *   - silently accepted when its value asks for nothing capsa would do
 *     differently (Apptainer's default, or a permission for a feature capsa
 *     does not offer at all, such as 'enable fusemount = yes');
 *   - otherwise accepted with one WARNING naming it (c->warnings, printed
 *     by the starter), because capsa ignores it.
 *
 * None of these restricts anything capsa offers, so ignoring one never
 * gives a user more than the administrator allowed: directives whose
 * silent non-application would weaken security are implemented (conf.c)
 * or refused, never listed here. */
#include "runtime/confcompat.h"

#include <string.h>

enum ckind { C_BOOL, C_UINT, C_STRING, C_LIST, C_ENUM };

struct compat {
    const char *key;
    enum ckind kind;
    const char *allowed; /* C_ENUM: comma-separated authorized values */
    const char *silent;  /* values accepted without a warning: "a,b", "" = none, NULL = any */
    const char *why;     /* what capsa does instead */
};

static const struct compat table[] = {
    { "enable fusemount", C_BOOL, NULL, NULL, "capsa has no --fusemount" },
    { "enable underlay", C_ENUM, "yes,no,preferred", "yes,no",
      "capsa makes missing mount points in the overlay's private layer" },
    { "sync writable extfs", C_BOOL, NULL, "no", "capsa does not mount writable extfs images with sync" },
    { "shared loop devices", C_BOOL, NULL, "no", "each container gets a loop device of its own" },
    { "allow net users", C_LIST, NULL, "", "capsa offers only --network none" },
    { "allow net groups", C_LIST, NULL, "", "capsa offers only --network none" },
    { "allow net networks", C_LIST, NULL, "", "capsa offers only --network none" },
    { "allow netns paths", C_LIST, NULL, "", "capsa cannot join network namespaces" },
    { "cni configuration path", C_STRING, NULL, "", "capsa has no CNI networking" },
    { "cni plugin path", C_STRING, NULL, "", "capsa has no CNI networking" },
    { "binary path", C_STRING, NULL, "$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "capsa runs its helper programs by absolute path" },
    { "suidbinary path", C_STRING, NULL, "", "capsa runs its helper programs by absolute path" },
    { "mksquashfs procs", C_UINT, NULL, "0", "not used by capsa build" },
    { "mksquashfs mem", C_STRING, NULL, "", "not used by capsa build" },
    { "image driver", C_STRING, NULL, "", "capsa has no image driver plugins" },
    { "download concurrency", C_UINT, NULL, "3", "capsa has no library:// downloads" },
    { "download part size", C_UINT, NULL, "5242880", "capsa has no library:// downloads" },
    { "download buffer size", C_UINT, NULL, "32768", "capsa has no library:// downloads" },
    { "systemd cgroups", C_BOOL, NULL, NULL, "capsa does not manage cgroups" },
    /* The directive's name in Apptainer's code, and the name its confgen
     * template writes: both appear in real files.  Only read when
     * 'allow monitoring' is on. */
    { "apptheus communication socket path", C_STRING, NULL, NULL, "capsa has no apptheus monitoring" },
    { "apptheus socket path", C_STRING, NULL, NULL, "capsa has no apptheus monitoring" },
    { "allow monitoring", C_BOOL, NULL, "no", "capsa has no apptheus monitoring" },
};

/* Is VALUE one of the comma-separated words of LIST? */
static bool
in_list (const char *list, const char *value)
{
    size_t vlen = strlen (value);
    for (const char *p = list; p != NULL && *p;) {
        const char *comma = strchr (p, ',');
        size_t len = comma ? (size_t) (comma - p) : strlen (p);
        if (len == vlen && strncmp (p, value, len) == 0)
            return true;
        p = comma ? comma + 1 : NULL;
    }
    return false;
}

static bool
valid_uint (const char *v)
{
    /* Apptainer parses with strconv.ParseUint (base 0): decimal, 0x, 0o, 0b.
     * Decimal digits are what every real file has; accept those. */
    if (*v == '\0' || strlen (v) > 20)
        return false;
    for (const char *p = v; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

bool
capsa_conf_compat_known (const char *key)
{
    for (size_t i = 0; i < ARRAY_SIZE (table); i++)
        if (strcmp (table[i].key, key) == 0)
            return true;
    return false;
}

int
capsa_conf_compat (struct capsa_conf *c, const char *name, long lineno, const char *key, const char *value,
                   capsa_error_t *err)
{
    const struct compat *d = NULL;
    for (size_t i = 0; i < ARRAY_SIZE (table); i++)
        if (strcmp (table[i].key, key) == 0)
            d = &table[i];
    if (d == NULL)
        return 0;

    switch (d->kind) {
    case C_BOOL:
        if (strcmp (value, "yes") != 0 && strcmp (value, "no") != 0)
            return capsa_error_make (err, 0, "%s:%ld: '%s' is not a valid value for '%s' (allowed: yes, no)", name,
                                     lineno, value, key);
        break;
    case C_ENUM:
        if (!in_list (d->allowed, value))
            return capsa_error_make (err, 0, "%s:%ld: '%s' is not a valid value for '%s' (allowed: %s)", name, lineno,
                                     value, key, d->allowed);
        break;
    case C_UINT:
        if (!valid_uint (value))
            return capsa_error_make (err, 0, "%s:%ld: '%s' is not a valid value for '%s' (allowed: an unsigned integer)",
                                     name, lineno, value, key);
        break;
    case C_STRING:
    case C_LIST:
        break;
    }
    if (d->silent == NULL || in_list (d->silent, value))
        return 1;
    strv_push_take (&c->warnings, xasprintf ("%s:%ld: '%s = %s' is accepted but not applied: %s", name, lineno, key,
                                             value, d->why));
    return 1;
}
