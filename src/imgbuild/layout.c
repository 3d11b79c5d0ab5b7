/* Apptainer's image layout and build metadata: see layout.h.
 *
 * What is written follows Apptainer's build (internal/pkg/build/metadata.go
 * and sources/base_environment.go) so that images move between the two:
 * the same paths, modes, label names and merge rules.  The scripts are
 * capsa's own, with the same behaviour. */
#include "imgbuild/layout.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "imgbuild/tree.h"

#define LAYOUT_READ_MAX (16 << 20)

/* ---- the skeleton ------------------------------------------------------------- */

#define SOURCE_ENV_SCRIPTS                                                                                             \
    "for script in /.singularity.d/env/*.sh; do\n"                                                                     \
    "    if [ -f \"$script\" ]; then\n"                                                                                \
    "        . \"$script\"\n"                                                                                          \
    "    fi\n"                                                                                                         \
    "done\n"

static const char action_exec[] = "#!/bin/sh\n" SOURCE_ENV_SCRIPTS "\nexec \"$@\"\n";

static const char action_run[] = "#!/bin/sh\n" SOURCE_ENV_SCRIPTS "\n"
                                 "if test -x /.singularity.d/runscript; then\n"
                                 "    exec /.singularity.d/runscript \"$@\"\n"
                                 "fi\n"
                                 "echo \"No runscript found, executing /bin/sh\" >&2\n"
                                 "exec /bin/sh \"$@\"\n";

static const char action_shell[] = "#!/bin/sh\n" SOURCE_ENV_SCRIPTS "\n"
                                   "if test -n \"${APPTAINER_SHELL:-}\" && test -x \"$APPTAINER_SHELL\"; then\n"
                                   "    exec \"$APPTAINER_SHELL\" \"$@\"\n"
                                   "elif test -x /bin/bash; then\n"
                                   "    SHELL=/bin/bash\n"
                                   "    export SHELL\n"
                                   "    exec /bin/bash --norc \"$@\"\n"
                                   "fi\n"
                                   "SHELL=/bin/sh\n"
                                   "export SHELL\n"
                                   "exec /bin/sh \"$@\"\n";

/* Instances: the runtime waits for this SIGCONT from the start script. */
static const char action_start[] = "#!/bin/sh\n"
                                   "kill -CONT 1\n\n" SOURCE_ENV_SCRIPTS "\n"
                                   "if test -x /.singularity.d/startscript; then\n"
                                   "    exec /.singularity.d/startscript\n"
                                   "fi\n";

static const char action_test[] = "#!/bin/sh\n" SOURCE_ENV_SCRIPTS "\n"
                                  "if test -x /.singularity.d/test; then\n"
                                  "    exec /.singularity.d/test \"$@\"\n"
                                  "fi\n"
                                  "echo \"No test found in container, executing /bin/sh -c true\" >&2\n"
                                  "exec /bin/sh -c true\n";

static const char env_01_base[] = "#!/bin/sh\n# Base environment of the image (sourced first).\n";
static const char env_90_environment[] = "#!/bin/sh\n# Custom environment shell code should follow\n\n";
static const char env_95_apps[] = "#!/bin/sh\n# SCIF apps are not used by images capsa builds.\n";
static const char env_99_base[] = "#!/bin/sh\n"
                                  "if [ -z \"${LD_LIBRARY_PATH:-}\" ]; then\n"
                                  "    LD_LIBRARY_PATH=/.singularity.d/libs\n"
                                  "else\n"
                                  "    LD_LIBRARY_PATH=\"$LD_LIBRARY_PATH:/.singularity.d/libs\"\n"
                                  "fi\n"
                                  "PS1=\"Capsa> \"\n"
                                  "export LD_LIBRARY_PATH PS1\n";
/* Apptainer's runtime hands a user's --env PATH... through these. */
static const char env_99_runtimevars[] = "#!/bin/sh\n"
                                         "if [ -n \"${SING_USER_DEFINED_PREPEND_PATH:-}\" ]; then\n"
                                         "    PATH=\"${SING_USER_DEFINED_PREPEND_PATH}:${PATH}\"\n"
                                         "fi\n"
                                         "if [ -n \"${SING_USER_DEFINED_APPEND_PATH:-}\" ]; then\n"
                                         "    PATH=\"${PATH}:${SING_USER_DEFINED_APPEND_PATH}\"\n"
                                         "fi\n"
                                         "if [ -n \"${SING_USER_DEFINED_PATH:-}\" ]; then\n"
                                         "    PATH=\"${SING_USER_DEFINED_PATH}\"\n"
                                         "fi\n"
                                         "unset SING_USER_DEFINED_PREPEND_PATH SING_USER_DEFINED_APPEND_PATH "
                                         "SING_USER_DEFINED_PATH\n"
                                         "export PATH\n";
static const char default_runscript[] = "#!/bin/sh\n\necho \"There is no runscript defined for this container\"\n";
static const char default_startscript[] = "#!/bin/sh\n";

static const struct {
    const char *path;
    mode_t mode;
} base_dirs[] = {
    { ".singularity.d", 0755 },
    { ".singularity.d/libs", 0755 },
    { ".singularity.d/actions", 0755 },
    { ".singularity.d/env", 0755 },
    { "dev", 0755 },
    { "proc", 0555 },
    { "root", 0700 },
    { "var", 0755 },
    { "var/tmp", 01777 },
    { "tmp", 01777 },
    { "etc", 0755 },
    { "sys", 0555 },
    { "home", 0755 },
};

static const struct {
    const char *path, *target;
} base_links[] = {
    { "apptainer", ".singularity.d/runscript" },  { "singularity", ".singularity.d/runscript" },
    { ".run", ".singularity.d/actions/run" },     { ".exec", ".singularity.d/actions/exec" },
    { ".test", ".singularity.d/actions/test" },   { ".shell", ".singularity.d/actions/shell" },
    { "environment", ".singularity.d/env/90-environment.sh" },
};

static const struct {
    const char *path, *text;
    mode_t mode;
} base_files[] = {
    { "etc/hosts", "", 0644 },
    { "etc/resolv.conf", "", 0644 },
    { ".singularity.d/actions/exec", action_exec, 0755 },
    { ".singularity.d/actions/run", action_run, 0755 },
    { ".singularity.d/actions/shell", action_shell, 0755 },
    { ".singularity.d/actions/start", action_start, 0755 },
    { ".singularity.d/actions/test", action_test, 0755 },
    { ".singularity.d/env/01-base.sh", env_01_base, 0755 },
    { ".singularity.d/env/90-environment.sh", env_90_environment, 0755 },
    { ".singularity.d/env/95-apps.sh", env_95_apps, 0755 },
    { ".singularity.d/env/99-base.sh", env_99_base, 0755 },
    { ".singularity.d/env/99-runtimevars.sh", env_99_runtimevars, 0755 },
    { ".singularity.d/runscript", default_runscript, 0755 },
    { ".singularity.d/startscript", default_startscript, 0755 },
};

/* ---- the layout: a tree, or a plan of pseudo files ------------------------------- */

struct layout_entry {
    char *path;   /* relative to the root, no leading '/' */
    mode_t type;  /* S_IFDIR, S_IFREG, S_IFLNK */
    mode_t mode;
    char *data;   /* file contents, or the symlink target */
    size_t len;
};

void
layout_init (struct layout *l, int rootfd, bool pseudo, int stagefd)
{
    memset (l, 0, sizeof (*l));
    l->rootfd = rootfd;
    l->pseudo = pseudo;
    l->stagefd = stagefd;
}

void
layout_free (struct layout *l)
{
    for (size_t i = 0; i < l->nplan; i++) {
        free (l->plan[i].path);
        free (l->plan[i].data);
    }
    free (l->plan);
    strv_free (&l->excludes);
    l->plan = NULL;
    l->nplan = 0;
}

static const char *
layout_rel (const char *path)
{
    while (*path == '/')
        path++;
    return path;
}

static struct layout_entry *
layout_planned (struct layout *l, const char *path)
{
    for (size_t i = 0; i < l->nplan; i++)
        if (strcmp (l->plan[i].path, path) == 0)
            return &l->plan[i];
    return NULL;
}

/* The type of PATH in the source tree, never following a symlink.
 * Returns 1 when a parent is not a plain directory (blocked), else 0 with
 * *type (0: missing). */
static int
layout_src_lookup (struct layout *l, const char *path, mode_t *type)
{
    cleanup_free char *copy = xstrdup (path);
    cleanup_close int cur = openat (l->rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    char *save = NULL, *comp = strtok_r (copy, "/", &save);
    struct stat st;

    *type = 0;
    while (comp != NULL) {
        char *next = strtok_r (NULL, "/", &save);
        if (fstatat (cur, comp, &st, AT_SYMLINK_NOFOLLOW) < 0)
            return 0;
        if (next == NULL) {
            *type = st.st_mode & S_IFMT;
            return 0;
        }
        if (!S_ISDIR (st.st_mode))
            return 1;
        int fd = openat (cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return 1;
        close (cur);
        cur = fd;
        comp = next;
    }
    *type = S_IFDIR;
    return 0;
}

/* What is at PATH after the build: 0 missing, else its S_IF* type.
 * *blocked: in pseudo mode, a parent is a symlink or a file in the source. */
static mode_t
layout_type (struct layout *l, const char *path, bool *blocked)
{
    struct layout_entry *e;
    mode_t t;

    *blocked = false;
    path = layout_rel (path);
    if (!l->pseudo)
        return tree_type (l->rootfd, path);
    if ((e = layout_planned (l, path)) != NULL)
        return e->type;
    if (layout_src_lookup (l, path, &t) == 1) {
        *blocked = true;
        return 0;
    }
    return t;
}

static void
layout_plan (struct layout *l, const char *path, mode_t type, mode_t mode, const char *data, size_t len)
{
    struct layout_entry *e = layout_planned (l, path);
    if (e == NULL) {
        l->plan = xrealloc (l->plan, (l->nplan + 1) * sizeof (*l->plan));
        e = &l->plan[l->nplan++];
        memset (e, 0, sizeof (*e));
        e->path = xstrdup (path);
    }
    free (e->data);
    e->type = type;
    e->mode = mode;
    e->data = xmalloc (len + 1);
    memcpy (e->data, data, len);
    e->data[len] = '\0';
    e->len = len;
}

static int layout_mkdir (struct layout *l, const char *path, mode_t mode, capsa_error_t *err);

/* Pseudo mode: the parents of PATH must exist, as planned directories if
 * not in the source. */
static int
layout_parents (struct layout *l, const char *path, capsa_error_t *err)
{
    cleanup_free char *copy = xstrdup (path);
    char *slash = strrchr (copy, '/');
    if (slash == NULL)
        return 0;
    *slash = '\0';
    return layout_mkdir (l, copy, 0755, err);
}

static int
layout_mkdir (struct layout *l, const char *path, mode_t mode, capsa_error_t *err)
{
    bool blocked;
    path = layout_rel (path);
    if (layout_type (l, path, &blocked) != 0 || blocked)
        return 0;
    if (!l->pseudo)
        return tree_mkdir (l->rootfd, path, mode, err);
    if (layout_parents (l, path, err) < 0)
        return -1;
    layout_plan (l, path, S_IFDIR, mode, "", 0);
    return 0;
}

static int
layout_symlink (struct layout *l, const char *path, const char *target, capsa_error_t *err)
{
    bool blocked;
    path = layout_rel (path);
    if (layout_type (l, path, &blocked) != 0 || blocked)
        return 0;
    if (!l->pseudo)
        return tree_symlink (l->rootfd, path, target, err);
    if (layout_parents (l, path, err) < 0)
        return -1;
    layout_plan (l, path, S_IFLNK, 0777, target, strlen (target));
    return 0;
}

/* Read PATH as the image will hold it: ENOENT (-1, *err NULL) if missing. */
static int
layout_read (struct layout *l, const char *path, char **out, size_t *len, capsa_error_t *err)
{
    struct layout_entry *e;

    path = layout_rel (path);
    if (l->pseudo && (e = layout_planned (l, path)) != NULL) {
        if (e->type != S_IFREG) {
            errno = ENOENT;
            return -1;
        }
        *out = xmalloc (e->len + 1);
        memcpy (*out, e->data, e->len + 1);
        if (len)
            *len = e->len;
        return 0;
    }
    return tree_read (l->rootfd, path, LAYOUT_READ_MAX, out, len, err);
}

static int
layout_write (struct layout *l, const char *path, const char *data, size_t len, mode_t mode, bool append,
              capsa_error_t *err)
{
    bool blocked;
    mode_t t;

    path = layout_rel (path);
    if (!l->pseudo)
        return tree_write (l->rootfd, path, data, len, mode, append, err);
    t = layout_type (l, path, &blocked);
    if (blocked) {
        l->unsupported = true;
        return 0;
    }
    if (append && t == S_IFREG) {
        cleanup_free char *old = NULL;
        size_t oldlen = 0;
        if (layout_read (l, path, &old, &oldlen, err) < 0 && *err != NULL)
            return -1;
        cleanup_free char *both = xmalloc (oldlen + len + 1);
        if (old)
            memcpy (both, old, oldlen);
        memcpy (both + oldlen, data, len);
        if (layout_planned (l, path) == NULL)
            strv_push (&l->excludes, path);
        layout_plan (l, path, S_IFREG, mode, both, oldlen + len);
        return 0;
    }
    if (t == S_IFDIR) {
        l->unsupported = true; /* a directory cannot be replaced by a pseudo file */
        return 0;
    }
    if (t != 0 && layout_planned (l, path) == NULL)
        strv_push (&l->excludes, path);
    if (layout_parents (l, path, err) < 0)
        return -1;
    layout_plan (l, path, S_IFREG, mode, data, len);
    return 0;
}

static int
layout_write_str (struct layout *l, const char *path, const char *text, mode_t mode, bool append, capsa_error_t *err)
{
    return layout_write (l, path, text, strlen (text), mode, append, err);
}

int
layout_base (struct layout *l, const struct layout_opts *o, capsa_error_t *err)
{
    bool blocked;

    for (size_t i = 0; i < ARRAY_SIZE (base_dirs); i++)
        if (layout_mkdir (l, base_dirs[i].path, base_dirs[i].mode, err) < 0)
            return -1;
    for (size_t i = 0; i < ARRAY_SIZE (base_links); i++)
        if (layout_symlink (l, base_links[i].path, base_links[i].target, err) < 0)
            return -1;
    for (size_t i = 0; i < ARRAY_SIZE (base_files); i++) {
        mode_t t = layout_type (l, base_files[i].path, &blocked);
        if (blocked || (t != 0 && !o->overwrite_base))
            continue;
        if (t == S_IFDIR)
            continue;
        if (layout_write_str (l, base_files[i].path, base_files[i].text, base_files[i].mode, false, err) < 0)
            return -1;
    }
    return 0;
}

int
layout_default_runscript (struct layout *l, capsa_error_t *err)
{
    return layout_write_str (l, ".singularity.d/runscript", "#!/bin/sh\n", 0755, false, err);
}

/* ---- labels --------------------------------------------------------------------- */

struct sbuf {
    char *s;
    size_t n, cap;
};

static void
sb_add (struct sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = xrealloc (b->s, b->cap);
    }
    memcpy (b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void
sb_str (struct sbuf *b, const char *s)
{
    sb_add (b, s, strlen (s));
}

/* A JSON string as Go's encoding/json writes it (HTML characters escaped). */
static void
sb_json_string (struct sbuf *b, const char *s)
{
    sb_str (b, "\"");
    for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': sb_str (b, "\\\""); break;
        case '\\': sb_str (b, "\\\\"); break;
        case '\n': sb_str (b, "\\n"); break;
        case '\r': sb_str (b, "\\r"); break;
        case '\t': sb_str (b, "\\t"); break;
        case '<': case '>': case '&':
            snprintf (esc, sizeof (esc), "\\u%04x", *p);
            sb_str (b, esc);
            break;
        default:
            if (*p < 0x20) {
                snprintf (esc, sizeof (esc), "\\u%04x", *p);
                sb_str (b, esc);
            } else {
                sb_add (b, (const char *) p, 1);
            }
        }
    }
    sb_str (b, "\"");
}

static int
layout_cmp_str (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

/* labels.json as Go's json.MarshalIndent(map, "", "\t"): keys sorted. */
static char *
labels_to_text (json_object *labels)
{
    struct strv keys = { 0 };
    struct sbuf b = { 0 };

    json_object_object_foreach (labels, key, val)
    {
        (void) val;
        strv_push (&keys, key);
    }
    if (keys.n == 0) {
        strv_free (&keys);
        return xstrdup ("{}");
    }
    qsort (keys.v, keys.n, sizeof (char *), layout_cmp_str);
    sb_str (&b, "{\n");
    for (size_t i = 0; i < keys.n; i++) {
        sb_str (&b, "\t");
        sb_json_string (&b, keys.v[i]);
        sb_str (&b, ": ");
        sb_json_string (&b, json_object_get_string (json_object_object_get (labels, keys.v[i])));
        sb_str (&b, i + 1 < keys.n ? ",\n" : "\n");
    }
    sb_str (&b, "}");
    strv_free (&keys);
    return b.s;
}

static void
set_label (json_object *labels, const char *key, const char *value)
{
    json_object_object_add (labels, key, json_object_new_string (value));
}

static void
build_labels (json_object *labels, const struct layout_opts *o)
{
    static const char *const days[] = { "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday" };
    static const char *const months[] = { "January", "February", "March",     "April",   "May",      "June",
                                          "July",    "August",   "September", "October", "November", "December" };
    time_t now = time (NULL);
    const char *sde = getenv ("SOURCE_DATE_EPOCH");
    struct tm tm;
    char buf[128], zone[32];
    long off;

    /* Reproducible builds set the time. */
    if (sde != NULL) {
        long v;
        if (parse_long (sde, 0, (long) 1 << 40, &v) == 0)
            now = (time_t) v;
    }
    localtime_r (&now, &tm);
    set_label (labels, "org.label-schema.schema-version", "1.0");
    strftime (buf, sizeof (buf), "%Y-%m-%dT%H:%M:%S", &tm);
    off = tm.tm_gmtoff;
    if (off == 0)
        snprintf (zone, sizeof (zone), "Z");
    else
        snprintf (zone, sizeof (zone), "%c%02ld:%02ld", off < 0 ? '-' : '+', labs (off) / 3600, (labs (off) % 3600) / 60);
    cleanup_free char *created = xasprintf ("%s%s", buf, zone);
    set_label (labels, "org.opencontainers.image.created", created);
    cleanup_free char *date = xasprintf ("%s_%d_%s_%d_%d:%d:%d_%s", days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
                                         tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
                                         tm.tm_zone ? tm.tm_zone : "UTC");
    set_label (labels, "org.label-schema.build-date", date);
    set_label (labels, "org.label-schema.usage.capsa.version", o->version ? o->version : "unknown");
    const struct def_section *help = &o->def->sec[DEF_HELP];
    if (help->present && help->body[0] != '\0') {
        set_label (labels, "org.label-schema.usage", "/.singularity.d/runscript.help");
        set_label (labels, "org.label-schema.usage.apptainer.runscript.help", "/.singularity.d/runscript.help");
    }
    for (size_t i = 0; i < o->def->nheader; i++) {
        cleanup_free char *key = xasprintf ("org.label-schema.usage.singularity.deffile.%s", o->def->header[i].key);
        set_label (labels, key, o->def->header[i].value);
    }
    set_label (labels, "org.opencontainers.image.architecture", o->arch);
    set_label (labels, "org.label-schema.build-arch", o->arch);
}

static void
layout_warn (const struct layout_opts *o, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
static void
layout_warn (const struct layout_opts *o, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    if (o->warn == NULL)
        return;
    va_start (ap, fmt);
    vsnprintf (msg, sizeof (msg), fmt, ap);
    va_end (ap);
    o->warn (msg, o->data);
}

static int
layout_labels (struct layout *l, const struct layout_opts *o, capsa_error_t *err)
{
    json_object *labels = json_object_new_object (), *recipe = NULL;
    cleanup_free char *old = NULL, *text = NULL;
    int ret = -1;

    /* The labels the image already has. */
    if (layout_read (l, ".singularity.d/labels.json", &old, NULL, err) == 0) {
        json_object *j = json_tokener_parse (old);
        if (j == NULL || !json_object_is_type (j, json_type_object)) {
            json_object_put (j);
            layout_warn (o, "ignoring /.singularity.d/labels.json of the source image: not a JSON object");
        } else {
            json_object_object_foreach (j, key, val)
            {
                if (json_object_is_type (val, json_type_string))
                    set_label (labels, key, json_object_get_string (val));
                else
                    set_label (labels, key, json_object_to_json_string_ext (val, JSON_C_TO_STRING_PLAIN));
            }
            json_object_put (j);
        }
    } else if (*err != NULL) {
        goto out;
    }
    build_labels (labels, o);
    /* The recipe's: a repeated key keeps its last value; existing labels
     * win unless --force (Apptainer's rule). */
    recipe = json_object_new_object ();
    for (size_t i = 0; i < o->def->nlabels; i++)
        set_label (recipe, o->def->labels[i].key, o->def->labels[i].value);
    json_object_object_foreach (recipe, rkey, rval)
    {
        if (json_object_object_get_ex (labels, rkey, NULL) && !o->force) {
            layout_warn (o, "Label: %s already exists and force option is false, not overwriting", rkey);
            continue;
        }
        set_label (labels, rkey, json_object_get_string (rval));
    }
    text = labels_to_text (labels);
    ret = layout_write_str (l, ".singularity.d/labels.json", text, 0644, false, err);
out:
    json_object_put (recipe);
    json_object_put (labels);
    return ret;
}

/* ---- metadata -------------------------------------------------------------------- */

static int
layout_script (struct layout *l, const struct def_section *s, const char *path, capsa_error_t *err)
{
    const char *script;
    if (!s->present || s->body[0] == '\0')
        return 0;
    cleanup_free char *shebang = deffile_shebang (s, &script);
    cleanup_free char *text = xasprintf ("%s\n\n%s\n", shebang, script);
    return layout_write_str (l, path, text, 0755, false, err);
}

static int
layout_definition (struct layout *l, const struct layout_opts *o, capsa_error_t *err)
{
    bool blocked;
    const char *def_path = ".singularity.d/Singularity", *hist = ".singularity.d/bootstrap_history";

    /* A definition already there moves to the image's build history. */
    if (layout_type (l, def_path, &blocked) == S_IFREG) {
        cleanup_free char *old = NULL;
        size_t oldlen = 0;
        unsigned n = 0;
        if (layout_mkdir (l, hist, 0755, err) < 0)
            return -1;
        /* Count what the history holds (in the tree and planned). */
        capsa_error_t ignore = NULL;
        int d = tree_open_dir (l->rootfd, hist, false, &ignore);
        capsa_error_free (&ignore);
        if (d >= 0) {
            DIR *dir = fdopendir (d);
            if (dir == NULL)
                close (d);
            else {
                for (struct dirent *e; (e = readdir (dir));)
                    if (e->d_name[0] != '.')
                        n++;
                closedir (dir);
            }
        }
        for (size_t i = 0; l->pseudo && i < l->nplan; i++)
            if (strncmp (l->plan[i].path, hist, strlen (hist)) == 0 && l->plan[i].path[strlen (hist)] == '/')
                n++;
        cleanup_free char *to = xasprintf ("%s/Apptainer%u", hist, n);
        if (!l->pseudo) {
            if (tree_rename (l->rootfd, def_path, to, err) < 0)
                return -1;
        } else {
            if (layout_read (l, def_path, &old, &oldlen, err) < 0) {
                if (*err != NULL)
                    return -1;
            } else if (layout_write (l, to, old, oldlen, 0644, false, err) < 0) {
                return -1;
            }
        }
    }
    return layout_write (l, def_path, o->def->raw, o->def->rawlen, 0644, false, err);
}

int
layout_metadata (struct layout *l, const struct layout_opts *o, capsa_error_t *err)
{
    const struct deffile *d = o->def;
    const struct def_section *help = &d->sec[DEF_HELP], *env = &d->sec[DEF_ENVIRONMENT];
    bool blocked;

    if (help->present && help->body[0] != '\0') {
        if (layout_type (l, ".singularity.d/runscript.help", &blocked) == 0 || o->force) {
            cleanup_free char *text = xasprintf ("%s\n", help->body);
            if (layout_write_str (l, ".singularity.d/runscript.help", text, 0644, false, err) < 0)
                return -1;
        } else {
            layout_warn (o, "Help message already exists and force option is false, not overwriting");
        }
    }
    if (layout_labels (l, o, err) < 0 || layout_definition (l, o, err) < 0)
        return -1;
    if (env->present && env->body[0] != '\0') {
        const char *p = ".singularity.d/env/90-environment.sh";
        if (layout_type (l, p, &blocked) == 0) {
            cleanup_free char *text = xasprintf ("#!/bin/sh\n\n%s\n", env->body);
            if (layout_write_str (l, p, text, 0755, false, err) < 0)
                return -1;
        } else {
            cleanup_free char *text = xasprintf ("\n%s\n", env->body);
            if (layout_write_str (l, p, text, 0755, true, err) < 0)
                return -1;
        }
    }
    if (layout_script (l, &d->sec[DEF_STARTSCRIPT], ".singularity.d/startscript", err) < 0
        || layout_script (l, &d->sec[DEF_RUNSCRIPT], ".singularity.d/runscript", err) < 0
        || layout_script (l, &d->sec[DEF_TEST], ".singularity.d/test", err) < 0)
        return -1;
    return 0;
}

/* ---- inspect-metadata.json -------------------------------------------------------- */

static void
attr_text (struct layout *l, json_object *attrs, const char *key, const char *path)
{
    char *text = NULL;
    capsa_error_t ignore = NULL;
    if (layout_read (l, path, &text, NULL, &ignore) == 0 && text[0] != '\0')
        json_object_object_add (attrs, key, json_object_new_string (text));
    capsa_error_free (&ignore);
    free (text);
}

/* The environment files Apptainer's inspect shows. */
static bool
env_shown (const char *name)
{
    size_t n = strlen (name);
    if (strcmp (name, "90-environment.sh") == 0 || strcmp (name, "91-environment.sh") == 0)
        return true;
    return strncmp (name, "10-docker", 9) == 0 && n > 3 && strcmp (name + n - 3, ".sh") == 0;
}

int
layout_inspect_json (struct layout *l, char **out, capsa_error_t *err)
{
    json_object *root = json_object_new_object (), *data = json_object_new_object ();
    json_object *attrs = json_object_new_object ();
    struct strv names = { 0 };
    char *text = NULL;
    capsa_error_t ignore = NULL;

    if (layout_read (l, ".singularity.d/labels.json", &text, NULL, &ignore) == 0) {
        json_object *j = json_tokener_parse (text);
        if (j != NULL && json_object_is_type (j, json_type_object))
            json_object_object_add (attrs, "labels", j);
        else
            json_object_put (j);
    }
    capsa_error_free (&ignore);
    free (text);
    attr_text (l, attrs, "deffile", ".singularity.d/Singularity");
    attr_text (l, attrs, "runscript", ".singularity.d/runscript");
    attr_text (l, attrs, "startscript", ".singularity.d/startscript");
    attr_text (l, attrs, "test", ".singularity.d/test");
    attr_text (l, attrs, "helpfile", ".singularity.d/runscript.help");

    /* Environment files: those of the tree and the planned ones. */
    int d = tree_open_dir (l->rootfd, ".singularity.d/env", false, &ignore);
    capsa_error_free (&ignore);
    if (d >= 0) {
        DIR *dir = fdopendir (d);
        if (dir == NULL)
            close (d);
        else {
            for (struct dirent *e; (e = readdir (dir));)
                if (env_shown (e->d_name))
                    strv_push (&names, e->d_name);
            closedir (dir);
        }
    }
    for (size_t i = 0; l->pseudo && i < l->nplan; i++) {
        const char *p = l->plan[i].path, *pre = ".singularity.d/env/";
        if (strncmp (p, pre, strlen (pre)) == 0 && strchr (p + strlen (pre), '/') == NULL && env_shown (p + strlen (pre))) {
            bool dup = false;
            for (size_t k = 0; k < names.n; k++)
                dup |= strcmp (names.v[k], p + strlen (pre)) == 0;
            if (!dup)
                strv_push (&names, p + strlen (pre));
        }
    }
    if (names.n > 0)
        qsort (names.v, names.n, sizeof (char *), layout_cmp_str);
    json_object *env = json_object_new_object ();
    for (size_t i = 0; i < names.n; i++) {
        cleanup_free char *rel = xasprintf (".singularity.d/env/%s", names.v[i]);
        cleanup_free char *key = xasprintf ("/%s", rel);
        text = NULL;
        if (layout_read (l, rel, &text, NULL, &ignore) == 0)
            json_object_object_add (env, key, json_object_new_string (text));
        capsa_error_free (&ignore);
        free (text);
    }
    strv_free (&names);
    json_object_object_add (attrs, "environment", env);

    json_object_object_add (data, "attributes", attrs);
    json_object_object_add (root, "data", data);
    json_object_object_add (root, "type", json_object_new_string ("container"));
    *out = xstrdup (json_object_to_json_string_ext (root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put (root);
    (void) err;
    return 0;
}

/* ---- pseudo files ------------------------------------------------------------------ */

int
layout_write_pseudo (struct layout *l, const char *pf_name, const char *ef_name, bool *any, capsa_error_t *err)
{
    struct sbuf pf = { 0 }, ef = { 0 };
    int ret = -1;

    *any = l->nplan > 0 || l->excludes.n > 0;
    if (!*any)
        return 0;
    for (size_t i = 0; i < l->nplan; i++) {
        struct layout_entry *e = &l->plan[i];
        char line[256];
        /* The names are capsa's own: no space, no newline. */
        if (e->type == S_IFDIR) {
            snprintf (line, sizeof (line), "%s d %o 0 0\n", e->path, (unsigned) e->mode);
        } else if (e->type == S_IFLNK) {
            snprintf (line, sizeof (line), "%s s 777 0 0 %s\n", e->path, e->data);
        } else {
            char stage[32];
            snprintf (stage, sizeof (stage), "%zu", i + 1);
            cleanup_close int fd = openat (l->stagefd, stage, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
            if (fd < 0 || write_all (fd, e->data, e->len) < 0) {
                capsa_error_make (err, errno, "stage /%s", e->path);
                goto out;
            }
            /* mksquashfs runs with the staging directory as its cwd. */
            snprintf (line, sizeof (line), "%s f %o 0 0 cat %s\n", e->path, (unsigned) e->mode, stage);
        }
        sb_str (&pf, line);
    }
    for (size_t i = 0; i < l->excludes.n; i++) {
        sb_str (&ef, l->excludes.v[i]);
        sb_str (&ef, "\n");
    }
    const char *names[2] = { pf_name, ef_name };
    struct sbuf *bufs[2] = { &pf, &ef };
    for (int k = 0; k < 2; k++) {
        cleanup_close int fd = openat (l->stagefd, names[k], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || write_all (fd, bufs[k]->s ? bufs[k]->s : "", bufs[k]->n) < 0) {
            capsa_error_make (err, errno, "write %s", names[k]);
            goto out;
        }
    }
    ret = 0;
out:
    free (pf.s);
    free (ef.s);
    return ret;
}
