/* Bind specifications of the action commands, as Apptainer writes them:
 *
 *   -B|--bind   src[:dst[:opts]][,...]  with '\,' and '\:' escapes; opts
 *               ro or rw; an option word after a comma ("-B /a:/b:ro,rw"
 *               or "-B /a:/b,ro") applies to the bind before it
 *   --mount     Docker's syntax, one CSV record per line:
 *               type=bind,source=SRC,destination=DST[,ro|readonly[=BOOL]]
 *   --no-mount  names of default mounts to leave out
 *
 * Binds out of an image file (image-src=, id=) would make capsa mount a
 * second user-supplied image; they are refused with a message.  Plain
 * values only: nothing is opened here (the starter parses these with the
 * user's command line; tests/fuzz/fuzz_options.c reaches every parser). */
#include "runtime/options.h"

#include <string.h>

static bool
is_option_word (const char *s)
{
    return strcmp (s, "ro") == 0 || strcmp (s, "rw") == 0 || strncmp (s, "image-src=", 10) == 0
           || strncmp (s, "id=", 3) == 0;
}

static int
apply_option (struct capsa_bind *b, const char *opt, capsa_error_t *err)
{
    if (strcmp (opt, "ro") == 0)
        b->ro = true;
    else if (strcmp (opt, "rw") == 0)
        b->ro = false;
    else if (strncmp (opt, "image-src=", 10) == 0 || strncmp (opt, "id=", 3) == 0)
        return capsa_error_make (err, 0,
                                 "bind option '%s': binding a path from inside an image file is not supported by capsa",
                                 opt);
    else
        return capsa_error_make (err, 0, "invalid bind option '%s' (allowed: ro, rw)", opt);
    return 0;
}

static struct capsa_bind *
new_bind (struct capsa_opts *o, const char *src, const char *dst, bool ro)
{
    o->binds = xrealloc (o->binds, (o->nbinds + 1) * sizeof (*o->binds));
    struct capsa_bind *b = &o->binds[o->nbinds++];
    memset (b, 0, sizeof (*b));
    b->src = xstrdup (src);
    b->dst = xstrdup (dst);
    b->ro = ro;
    return b;
}

/* Split S in place on SEP not preceded by a backslash; "\SEP" becomes SEP.
 * Other backslashes stay.  Returns the pieces (pointers into S). */
static size_t
split_escaped (char *s, char sep, char **pieces, size_t max)
{
    size_t n = 0;
    char *out = s;
    pieces[n++] = out;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] == sep) {
            *out++ = sep;
            p++;
        } else if (*p == sep) {
            *out++ = '\0';
            if (n == max)
                return max + 1;
            pieces[n++] = out;
        } else {
            *out++ = *p;
        }
    }
    *out = '\0';
    return n;
}

static int
add_one_bind (struct capsa_opts *o, char *item, capsa_error_t *err)
{
    cleanup_free char *orig = xstrdup (item);
    char *parts[3] = { NULL };
    size_t n = split_escaped (item, ':', parts, 3);

    if (n > 3 || parts[0][0] == '\0')
        return capsa_error_make (err, 0, "invalid bind specification '%s'", orig);
    const char *dst = n >= 2 && parts[1][0] ? parts[1] : parts[0];
    if (dst[0] != '/')
        return capsa_error_make (err, 0, "bind destination '%s' must be an absolute path", dst);
    struct capsa_bind *b = new_bind (o, parts[0], dst, false);
    if (n == 3)
        return apply_option (b, parts[2], err);
    return 0;
}

int
capsa_opts_add_binds (struct capsa_opts *o, const char *spec, capsa_error_t *err)
{
    size_t len = strlen (spec);
    cleanup_free char *copy = xstrdup (spec);
    cleanup_free char **items = xcalloc (len + 2, sizeof (char *));
    /* Split on commas first, keeping "\:" for the second split. */
    size_t n = 0;
    char *out = copy;
    items[n++] = out;
    for (const char *p = spec; *p; p++) {
        if (p[0] == '\\' && p[1] == ',') {
            *out++ = ',';
            p++;
        } else if (*p == ',') {
            *out++ = '\0';
            items[n++] = out;
        } else {
            *out++ = *p;
        }
    }
    *out = '\0';

    for (size_t i = 0; i < n; i++) {
        char *item = trim (items[i]);
        if (*item == '\0')
            continue;
        if (is_option_word (item) && o->nbinds > 0) {
            if (apply_option (&o->binds[o->nbinds - 1], item, err) < 0)
                return -1;
            continue;
        }
        if (add_one_bind (o, item, err) < 0)
            return -1;
    }
    return 0;
}

/* ---- --mount ----------------------------------------------------------- */

/* One CSV record from *P (RFC 4180 as Go's encoding/csv reads it: fields
 * separated by commas, "..." quoting with "" for a quote, records ending
 * at a newline outside quotes).  Fields go to FIELDS (owned).  Returns 1
 * for a record, 0 at the end, -1 on a syntax error. */
static int
csv_record (const char **p, struct strv *fields, capsa_error_t *err)
{
    const char *s = *p;
    /* Empty lines are skipped, as encoding/csv does. */
    while (*s == '\n' || (*s == '\r' && s[1] == '\n'))
        s += *s == '\r' ? 2 : 1;
    if (*s == '\0') {
        *p = s;
        return 0;
    }
    for (;;) {
        char *field = NULL;
        size_t flen = 0;
        str_append (&field, &flen, "");
        if (*s == '"') {
            s++;
            for (;;) {
                if (*s == '\0') {
                    free (field);
                    return capsa_error_make (err, 0, "unterminated quoted field");
                }
                if (*s == '"' && s[1] == '"') {
                    str_append (&field, &flen, "\"");
                    s += 2;
                } else if (*s == '"') {
                    s++;
                    break;
                } else {
                    char c[2] = { *s++, '\0' };
                    str_append (&field, &flen, c);
                }
            }
            if (*s != ',' && *s != '\n' && *s != '\0' && !(*s == '\r' && s[1] == '\n')) {
                free (field);
                return capsa_error_make (err, 0, "extraneous character after a quoted field");
            }
        } else {
            while (*s != ',' && *s != '\n' && *s != '\0' && !(*s == '\r' && s[1] == '\n')) {
                if (*s == '"') {
                    free (field);
                    return capsa_error_make (err, 0, "bare \" in a field that is not quoted");
                }
                char c[2] = { *s++, '\0' };
                str_append (&field, &flen, c);
            }
        }
        strv_push_take (fields, field);
        if (*s == ',') {
            s++;
            continue;
        }
        if (*s == '\r')
            s++;
        if (*s == '\n')
            s++;
        *p = s;
        return 1;
    }
}

static int
parse_bool_value (const char *v, bool *out)
{
    if (*v == '\0' || strcmp (v, "true") == 0 || strcmp (v, "1") == 0)
        *out = true;
    else if (strcmp (v, "false") == 0 || strcmp (v, "0") == 0)
        *out = false;
    else
        return -1;
    return 0;
}

static int
mount_record (struct capsa_opts *o, const struct strv *fields, const char *spec, capsa_error_t *err)
{
    const char *src = NULL, *dst = NULL;
    bool ro = false;
    for (size_t i = 0; i < fields->n; i++) {
        const char *f = fields->v[i];
        const char *eq = strchr (f, '=');
        size_t klen = eq ? (size_t) (eq - f) : strlen (f);
        const char *val = eq ? eq + 1 : "";
#define KEY(k) (klen == strlen (k) && strncmp (f, k, klen) == 0)
        if (KEY ("type")) {
            if (strcmp (val, "bind") != 0)
                return capsa_error_make (err, 0, "--mount '%s': unsupported mount type '%s', only 'bind' is supported",
                                         spec, val);
        } else if (KEY ("source") || KEY ("src")) {
            if (*val == '\0')
                return capsa_error_make (err, 0, "--mount '%s': the source cannot be empty", spec);
            src = val;
        } else if (KEY ("destination") || KEY ("dst") || KEY ("target")) {
            if (*val == '\0')
                return capsa_error_make (err, 0, "--mount '%s': the destination cannot be empty", spec);
            dst = val;
        } else if (KEY ("ro") || KEY ("readonly")) {
            if (parse_bool_value (val, &ro) < 0)
                return capsa_error_make (err, 0, "--mount '%s': invalid value '%s' for %.*s (allowed: true, false)",
                                         spec, val, (int) klen, f);
        } else if (KEY ("image-src") || KEY ("id")) {
            return capsa_error_make (err, 0,
                                     "--mount '%s': %.*s: binding a path from inside an image file is not supported "
                                     "by capsa",
                                     spec, (int) klen, f);
        } else if (KEY ("nonested")) {
            /* Apptainer: not passed to nested containers; capsa passes none. */
        } else if (KEY ("bind-propagation")) {
            return capsa_error_make (err, 0, "--mount '%s': bind-propagation is not supported for single mounts", spec);
        } else {
            return capsa_error_make (err, 0, "--mount '%s': invalid key '%.*s' (allowed: type, source, destination, "
                                     "ro, readonly)", spec, (int) klen, f);
        }
#undef KEY
    }
    if (src == NULL || dst == NULL)
        return capsa_error_make (err, 0, "--mount '%s': a mount needs a source and a destination", spec);
    if (dst[0] != '/')
        return capsa_error_make (err, 0, "--mount '%s': the destination '%s' must be an absolute path", spec, dst);
    new_bind (o, src, dst, ro);
    return 0;
}

int
capsa_opts_add_mount (struct capsa_opts *o, const char *spec, capsa_error_t *err)
{
    const char *p = spec;
    int r, records = 0;
    for (;;) {
        struct strv fields = { 0 };
        r = csv_record (&p, &fields, err);
        if (r > 0)
            r = mount_record (o, &fields, spec, err) < 0 ? -1 : 1;
        strv_free (&fields);
        if (r < 0)
            return capsa_error_wrap (err, "invalid --mount '%s'", spec);
        if (r == 0)
            break;
        records++;
    }
    if (records == 0)
        return capsa_error_make (err, 0, "invalid --mount '%s': empty", spec);
    return 0;
}

/* ---- --no-mount -------------------------------------------------------- */

void
capsa_opts_add_no_mount (struct capsa_opts *o, const char *list)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {
        { "proc", NO_MOUNT_PROC },  { "sys", NO_MOUNT_SYS },       { "dev", NO_MOUNT_DEV }, { "devpts", NO_MOUNT_DEVPTS },
        { "tmp", NO_MOUNT_TMP },    { "hostfs", NO_MOUNT_HOSTFS }, { "cwd", NO_MOUNT_CWD },
    };
    cleanup_free char *copy = xstrdup (list);
    char *save = NULL;
    for (char *item = strtok_r (copy, ",", &save); item; item = strtok_r (NULL, ",", &save)) {
        bool known = false;
        item = trim (item);
        if (*item == '\0')
            continue;
        for (size_t i = 0; i < ARRAY_SIZE (names); i++) {
            if (strcmp (item, names[i].name) == 0) {
                o->no_mount |= names[i].bit;
                known = true;
            }
        }
        if (strcmp (item, "home") == 0) {
            o->no_home = true;
            known = true;
        } else if (strcmp (item, "bind-paths") == 0) {
            o->skip_all_bind_paths = true;
            known = true;
        } else if (item[0] == '/') {
            strv_push (&o->skip_bind_paths, item);
            known = true;
        }
        if (!known)
            strv_push_take (&o->warnings, xasprintf ("ignoring unknown mount type '%s' in --no-mount", item));
    }
}
