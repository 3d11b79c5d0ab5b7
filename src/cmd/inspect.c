/* capsa inspect: an image's metadata, as Apptainer shows it.
 *
 * Source of truth, in order: the SIF object "inspect-metadata.json"
 * (JSON.Generic), else the files of /.singularity.d inside the image (read
 * from a directory directly, or extracted from a squashfs with unsquashfs
 * into a private temporary directory).  Runs unprivileged, as the user. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "lib/log.h"
#include "lib/utils.h"
#include "runtime/image.h"
#include "sif/sif.h"

#define META_MAX (16 << 20)

enum what { W_LABELS, W_RUNSCRIPT, W_DEFFILE, W_ENVIRONMENT, W_HELPFILE, W_TEST, W_STARTSCRIPT };

static char *
read_text (int dirfd, const char *path)
{
    char *text = NULL;
    capsa_error_t err = NULL;
    cleanup_close int fd = openat (dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat (fd, &st) < 0 || !S_ISREG (st.st_mode))
        return NULL;
    if (read_fd_all (fd, META_MAX, &text, NULL, &err) < 0) {
        capsa_error_free (&err);
        return NULL;
    }
    return text;
}

static void
add_string (json_object *attrs, const char *key, char *text)
{
    if (text != NULL)
        json_object_object_add (attrs, key, json_object_new_string (text));
    free (text);
}

static int
cmp_str (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Attributes of one metadata directory SD (/.singularity.d, or an app's
 * /scif/apps/NAME/scif), added to ATTRS; ENVPREFIX names its env/ in the
 * image ("/.singularity.d/env"). */
static void attrs_from_dir (int sd, json_object *attrs, const char *envprefix);

/* SCIF apps: /scif/apps/NAME/scif of each app, as Apptainer lists them. */
static void
apps_from_tree (int rootfd, json_object *attrs)
{
    cleanup_close int ad = openat (rootfd, "scif/apps", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    DIR *d = ad >= 0 ? fdopendir (ad) : NULL;
    if (d == NULL)
        return;
    ad = -1;
    json_object *apps = json_object_new_object ();
    for (struct dirent *e; (e = readdir (d));) {
        if (e->d_name[0] == '.')
            continue;
        cleanup_free char *sub = xasprintf ("%s/scif", e->d_name);
        cleanup_close int sd = openat (dirfd (d), sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (sd < 0)
            continue;
        json_object *app = json_object_new_object ();
        cleanup_free char *envprefix = xasprintf ("/scif/apps/%s/scif/env", e->d_name);
        attrs_from_dir (sd, app, envprefix);
        json_object_object_add (apps, e->d_name, app);
    }
    closedir (d);
    if (json_object_object_length (apps) > 0)
        json_object_object_add (attrs, "apps", apps);
    else
        json_object_put (apps);
}

/* Attributes from a /.singularity.d tree (ROOTFD is a descriptor of the
 * directory that holds ".singularity.d"). */
static json_object *
attrs_from_tree (int rootfd)
{
    json_object *attrs = json_object_new_object ();
    cleanup_close int sd = openat (rootfd, ".singularity.d", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    apps_from_tree (rootfd, attrs);
    if (sd < 0)
        return attrs;
    attrs_from_dir (sd, attrs, "/.singularity.d/env");
    add_string (attrs, "deffile", read_text (sd, "Singularity"));
    return attrs;
}

static void
attrs_from_dir (int sd, json_object *attrs, const char *envprefix)
{
    cleanup_free char *labels = read_text (sd, "labels.json");
    if (labels) {
        json_object *l = json_tokener_parse (labels);
        if (l && json_object_is_type (l, json_type_object))
            json_object_object_add (attrs, "labels", l);
        else
            json_object_put (l);
    }
    add_string (attrs, "runscript", read_text (sd, "runscript"));
    add_string (attrs, "startscript", read_text (sd, "startscript"));
    add_string (attrs, "test", read_text (sd, "test"));
    add_string (attrs, "helpfile", read_text (sd, "runscript.help"));

    int envfd = openat (sd, "env", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    DIR *d = envfd >= 0 ? fdopendir (envfd) : NULL;
    if (d != NULL) {
        struct strv names = { 0 };
        json_object *env = json_object_new_object ();
        for (struct dirent *e; (e = readdir (d));)
            if (e->d_name[0] != '.' && strlen (e->d_name) > 3 && strcmp (e->d_name + strlen (e->d_name) - 3, ".sh") == 0)
                strv_push (&names, e->d_name);
        if (names.n > 0)
            qsort (names.v, names.n, sizeof (char *), cmp_str);
        for (size_t i = 0; i < names.n; i++) {
            cleanup_free char *text = read_text (dirfd (d), names.v[i]);
            cleanup_free char *key = xasprintf ("%s/%s", envprefix, names.v[i]);
            if (text && *text)
                json_object_object_add (env, key, json_object_new_string (text));
        }
        strv_free (&names);
        json_object_object_add (attrs, "environment", env);
        closedir (d);
    } else if (envfd >= 0) {
        close (envfd);
    }
}

/* Extract /.singularity.d of a squashfs (at OFFSET in FD) with unsquashfs,
 * as the calling user, into a new private directory. */
static json_object *
attrs_from_squashfs (int fd, uint64_t offset, capsa_error_t *err)
{
    char tmpl[] = "/tmp/capsa-inspect.XXXXXX";
    char *dir = mkdtemp (tmpl);
    char src[64], off[32], dst[sizeof (tmpl) + 8];
    json_object *attrs = NULL;
    pid_t pid;
    int status;

    if (dir == NULL) {
        capsa_error_make (err, errno, "cannot create a temporary directory");
        return NULL;
    }
    snprintf (src, sizeof (src), "/proc/self/fd/%d", fd);
    snprintf (off, sizeof (off), "%llu", (unsigned long long) offset);
    snprintf (dst, sizeof (dst), "%s/x", dir);
    pid = fork ();
    if (pid == 0) {
        int devnull = open ("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2 (devnull, STDOUT_FILENO);
            dup2 (devnull, STDERR_FILENO);
        }
        fcntl (fd, F_SETFD, 0);
        execlp ("unsquashfs", "unsquashfs", "-n", "-o", off, "-d", dst, src, ".singularity.d",
                "scif/apps/*/scif/runscript", "scif/apps/*/scif/startscript", "scif/apps/*/scif/test",
                "scif/apps/*/scif/labels.json", "scif/apps/*/scif/runscript.help", "scif/apps/*/scif/env",
                (char *) NULL);
        _exit (127);
    }
    if (pid < 0 || waitpid (pid, &status, 0) < 0) {
        capsa_error_make (err, errno, "cannot run unsquashfs");
    } else {
        int rootfd = open (dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        attrs = rootfd >= 0 ? attrs_from_tree (rootfd) : json_object_new_object ();
        if (rootfd >= 0)
            close (rootfd);
    }
    pid = fork ();
    if (pid == 0) {
        execlp ("rm", "rm", "-rf", "--one-file-system", dir, (char *) NULL);
        _exit (127);
    }
    if (pid > 0)
        waitpid (pid, NULL, 0);
    return attrs;
}

/* SIF objects: the metadata JSON and the definition file. */
static json_object *
attrs_from_sif (int fd, const char *path, bool *encrypted, capsa_error_t *err)
{
    struct sif_image *sif = NULL;
    json_object *attrs = NULL;
    cleanup_free char *deffile = NULL;

    if (sif_open_fd_named (fd, path, &sif, err) < 0)
        return NULL;
    for (size_t i = 0; i < sif_descriptor_count (sif); i++) {
        const struct sif_descriptor *d = sif_descriptor_at (sif, i);
        char *buf = NULL;
        size_t len = 0;
        if (d->datatype == SIF_DATA_GENERIC_JSON && strcmp (d->name, "inspect-metadata.json") == 0 && attrs == NULL) {
            if (sif_read_object (sif, d, META_MAX, &buf, &len, err) < 0)
                goto out;
            json_object *root = json_tokener_parse (buf);
            json_object *data, *a;
            if (root && json_object_object_get_ex (root, "data", &data)
                && json_object_object_get_ex (data, "attributes", &a) && json_object_is_type (a, json_type_object))
                attrs = json_object_get (a);
            json_object_put (root);
            free (buf);
            if (attrs == NULL) {
                capsa_error_make (err, 0, "image %s: inspect-metadata.json is not valid metadata", path);
                goto out;
            }
        } else if (d->datatype == SIF_DATA_DEFFILE && deffile == NULL) {
            if (sif_read_object (sif, d, META_MAX, &buf, &len, err) < 0)
                goto out;
            deffile = buf;
        }
    }
    const struct sif_descriptor *prim = NULL;
    struct sif_partition part;
    capsa_error_t ignore = NULL;
    if (sif_find_primary_partition (sif, &prim, &ignore) == 0 && sif_get_partition (prim, &part, &ignore) == 0) {
        *encrypted = part.fstype == SIF_FS_ENCRYPTED_SQUASHFS || part.fstype == SIF_FS_GOCRYPTFS_SQUASHFS;
        if (attrs == NULL && part.fstype == SIF_FS_SQUASHFS)
            attrs = attrs_from_squashfs (fd, (uint64_t) prim->offset, err);
    }
    capsa_error_free (&ignore);
    if (attrs == NULL)
        attrs = json_object_new_object ();
    if (deffile != NULL && !json_object_object_get_ex (attrs, "deffile", NULL))
        json_object_object_add (attrs, "deffile", json_object_new_string (deffile));
out:
    sif_close (sif);
    return attrs;
}

static const char *
get_str (json_object *attrs, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex (attrs, key, &v) || !json_object_is_type (v, json_type_string))
        return NULL;
    return json_object_get_string (v);
}

static void
print_text (const char *s)
{
    if (s == NULL)
        return;
    fputs (s, stdout);
    if (*s && s[strlen (s) - 1] != '\n')
        putchar ('\n');
}

/* The keys of OBJ, in byte order (Apptainer prints labels sorted). */
static void
sorted_keys (json_object *obj, struct strv *keys)
{
    json_object_object_foreach (obj, key, val)
    {
        (void) val;
        strv_push (keys, key);
    }
    if (keys->n)
        qsort (keys->v, keys->n, sizeof (char *), cmp_str);
}

static int
print_what (json_object *attrs, enum what w, const char *image)
{
    json_object *v;
    switch (w) {
    case W_LABELS:
        if (json_object_object_get_ex (attrs, "labels", &v) && json_object_is_type (v, json_type_object)) {
            struct strv keys = { 0 };
            sorted_keys (v, &keys);
            for (size_t i = 0; i < keys.n; i++) {
                json_object *lv = json_object_object_get (v, keys.v[i]);
                printf ("%s: %s\n", keys.v[i], json_object_is_type (lv, json_type_string) ? json_object_get_string (lv)
                                                                                     : json_object_to_json_string (lv));
            }
            strv_free (&keys);
        }
        return 0;
    case W_ENVIRONMENT:
        if (json_object_object_get_ex (attrs, "environment", &v) && json_object_is_type (v, json_type_object)) {
            struct strv keys = { 0 };
            sorted_keys (v, &keys);
            for (size_t i = 0; i < keys.n; i++) {
                printf ("=== %s ===\n", keys.v[i]);
                print_text (json_object_get_string (json_object_object_get (v, keys.v[i])));
                putchar ('\n');
            }
            strv_free (&keys);
        }
        return 0;
    case W_RUNSCRIPT:
        print_text (get_str (attrs, "runscript"));
        return 0;
    case W_DEFFILE:
        print_text (get_str (attrs, "deffile"));
        return 0;
    case W_HELPFILE:
        print_text (get_str (attrs, "helpfile"));
        return 0;
    case W_TEST:
        print_text (get_str (attrs, "test"));
        return 0;
    case W_STARTSCRIPT:
        print_text (get_str (attrs, "startscript"));
        return 0;
    }
    (void) image;
    return 0;
}

/* The attributes of IMAGE (a path or a URI), as the user. */
static json_object *
load_attrs (char **image, bool *encrypted)
{
    struct capsa_image img;
    capsa_error_t err = NULL;
    json_object *attrs = NULL;
    char *cached = capsa_cmd_resolve_uri (*image, false, NULL);
    if (cached != NULL)
        *image = cached; /* the cached SIF, pulled when needed */

    if (capsa_image_open (&img, *image, &err) < 0 && img.kind != IMAGE_SIF)
        capsa_error_fatal (&err);
    if (err != NULL) {
        /* A SIF that cannot be run here (another architecture, encrypted)
         * can still be inspected. */
        capsa_error_free (&err);
        img.fd = open (*image, O_RDONLY | O_CLOEXEC);
        if (img.fd < 0)
            capsa_die ("image %s: %s", *image, strerror (errno));
    }
    switch (img.kind) {
    case IMAGE_DIR: {
        char buf[64];
        snprintf (buf, sizeof (buf), "/proc/self/fd/%d", img.fd);
        int rootfd = open (buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
            capsa_die ("image %s: %s", *image, strerror (errno));
        attrs = attrs_from_tree (rootfd);
        close (rootfd);
        break;
    }
    case IMAGE_SQUASHFS:
        attrs = attrs_from_squashfs (img.fd, 0, &err);
        break;
    case IMAGE_SIF:
        attrs = attrs_from_sif (img.fd, *image, encrypted, &err);
        break;
    }
    if (attrs == NULL)
        capsa_error_fatal (&err);
    capsa_image_close (&img);
    return attrs;
}

/* The attributes of app NAME (an empty object when there is none). */
static json_object *
app_attrs (json_object *attrs, const char *name)
{
    json_object *apps, *app;
    if (json_object_object_get_ex (attrs, "apps", &apps) && json_object_is_type (apps, json_type_object)
        && json_object_object_get_ex (apps, name, &app) && json_object_is_type (app, json_type_object))
        return json_object_get (app);
    return json_object_new_object ();
}

static void
list_apps (json_object *attrs)
{
    json_object *apps;
    struct strv keys = { 0 };
    if (!json_object_object_get_ex (attrs, "apps", &apps) || !json_object_is_type (apps, json_type_object))
        return;
    sorted_keys (apps, &keys);
    for (size_t i = 0; i < keys.n; i++)
        printf ("%s\n", keys.v[i]);
    strv_free (&keys);
}

int
cmd_inspect (int argc, char **argv)
{
    static const struct option opts[] = {
        { "labels", no_argument, NULL, 'l' },     { "runscript", no_argument, NULL, 'r' },
        { "deffile", no_argument, NULL, 'd' },    { "environment", no_argument, NULL, 'e' },
        { "helpfile", no_argument, NULL, 'H' },   { "test", no_argument, NULL, 't' },
        { "startscript", no_argument, NULL, 's' }, { "json", no_argument, NULL, 'j' },
        { "all", no_argument, NULL, 'A' },        { "list-apps", no_argument, NULL, 'L' },
        { "app", required_argument, NULL, 'a' },
        { "no-https", no_argument, NULL, 'N' },   { "nohttps", no_argument, NULL, 'N' },
        { NULL, 0, NULL, 0 },
    };
    bool want[7] = { false }, json = false, any = false, encrypted = false, all = false, apps = false;
    const char *app = NULL;
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long (argc, argv, "+lrdeHtsj", opts, NULL)) != -1) {
        switch (c) {
        case 'l': want[W_LABELS] = any = true; break;
        case 'r': want[W_RUNSCRIPT] = any = true; break;
        case 'd': want[W_DEFFILE] = any = true; break;
        case 'e': want[W_ENVIRONMENT] = any = true; break;
        case 'H': want[W_HELPFILE] = any = true; break;
        case 't': want[W_TEST] = any = true; break;
        case 's': want[W_STARTSCRIPT] = any = true; break;
        case 'j': json = true; break;
        case 'A': all = json = true; break;
        case 'L': apps = any = true; break;
        case 'a': app = optarg; break;
        case 'N': capsa_cmd_set_no_https (); break;
        default:
            capsa_die ("inspect: unknown option '%s' (see 'capsa help inspect')", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        capsa_die ("usage: capsa inspect [--labels|--runscript|--deffile|--environment|--helpfile|--test|"
                   "--startscript|--list-apps|--all] [--json] [--app NAME] IMAGE");
    /* Labels by default, as Apptainer; --all is every section, as JSON. */
    if (!any || all)
        want[W_LABELS] = true;
    json_object *attrs = load_attrs (&argv[optind], &encrypted);
    if (encrypted)
        infof ("the root file system of %s is encrypted; this metadata is stored in clear", argv[optind]);

    if (json) {
        /* The sections asked for (all with --all), in Apptainer's shape:
         * {"data":{"attributes":{...}},"type":"container"}. */
        static const char *const keys[] = { [W_LABELS] = "labels",     [W_RUNSCRIPT] = "runscript",
                                            [W_DEFFILE] = "deffile",   [W_ENVIRONMENT] = "environment",
                                            [W_HELPFILE] = "helpfile", [W_TEST] = "test",
                                            [W_STARTSCRIPT] = "startscript" };
        json_object *out = json_object_new_object (), *v;
        for (int w = 0; w < 7; w++)
            if ((all || want[w]) && json_object_object_get_ex (attrs, keys[w], &v))
                json_object_object_add (out, keys[w], json_object_get (v));
        if ((all || apps || app) && json_object_object_get_ex (attrs, "apps", &v)) {
            if (app && !all) {
                json_object *one = json_object_new_object ();
                json_object_object_add (one, app, app_attrs (attrs, app));
                json_object_object_add (out, "apps", one);
            } else {
                json_object_object_add (out, "apps", json_object_get (v));
            }
        }
        json_object *root = json_object_new_object (), *data = json_object_new_object ();
        json_object_object_add (data, "attributes", out);
        json_object_object_add (root, "data", data);
        json_object_object_add (root, "type", json_object_new_string ("container"));
        puts (json_object_to_json_string_ext (root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put (root);
    } else {
        json_object *shown = app ? app_attrs (attrs, app) : json_object_get (attrs);
        if (apps)
            list_apps (attrs);
        /* Apptainer's order of sections. */
        static const enum what order[]
            = { W_DEFFILE, W_RUNSCRIPT, W_STARTSCRIPT, W_TEST, W_HELPFILE, W_ENVIRONMENT, W_LABELS };
        for (size_t k = 0; k < ARRAY_SIZE (order); k++)
            if (want[order[k]] && !(app && order[k] == W_DEFFILE))
                print_what (order[k] == W_DEFFILE ? attrs : shown, order[k], argv[optind]);
        json_object_put (shown);
    }
    json_object_put (attrs);
    return 0;
}

/* capsa run-help [--app NAME] IMAGE: the image's help text (%help). */
int
cmd_run_help (int argc, char **argv)
{
    static const struct option opts[] = {
        { "app", required_argument, NULL, 'a' },
        { NULL, 0, NULL, 0 },
    };
    const char *app = NULL;
    bool encrypted = false;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long (argc, argv, "+", opts, NULL)) != -1) {
        if (c == 'a')
            app = optarg;
        else
            capsa_die ("run-help: unknown option '%s' (see 'capsa help run-help')", argv[optind - 1]);
    }
    if (optind != argc - 1)
        capsa_die ("usage: capsa run-help [--app NAME] IMAGE");
    struct stat st;
    if (strstr (argv[optind], "://") == NULL && stat (argv[optind], &st) < 0)
        capsa_die ("container not found: %s: %s", argv[optind], strerror (errno));
    json_object *attrs = load_attrs (&argv[optind], &encrypted);
    json_object *shown = app ? app_attrs (attrs, app) : json_object_get (attrs);
    const char *help = get_str (shown, "helpfile");
    if (help == NULL || *help == '\0')
        puts ("No help sections were defined for this image");
    else
        print_text (help);
    json_object_put (shown);
    json_object_put (attrs);
    return 0;
}
