/* capsa pull [--name FILE | --dir DIR] [--force] [--no-https] [OUT] URI:
 * a SIF from oras:// (src/oci/oras.c), docker:// (converted once into the
 * cache, src/imgbuild through capsa_build) or http(s):// (src/oci/net.c).
 * Also the conversions exec/run/shell/test/inspect use for docker:// and
 * http(s):// images (capsa_cmd_docker_cached, capsa_cmd_net_cached). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "config.h"
#include "imgbuild/build.h"
#include "lib/log.h"
#include "lib/utils.h"
#include "oci/oci.h"

/* ---- docker:// -> a SIF in the cache (oci-tmp/sha256/MANIFEST-DIGEST) ---- */

static void
build_info (const char *msg, void *data)
{
    (void) data;
    capsa_cmd_progress_done ();
    infof ("%s", msg);
}

static void
build_warn (const char *msg, void *data)
{
    (void) data;
    capsa_cmd_progress_done ();
    warnf ("%s", msg);
}

struct convert {
    const char *pinned; /* docker://HOST/REPO@DIGEST */
    const struct capsa_oci_opts *o;
    bool sandbox;
};

/* Build the image into OUT (a path that does not exist yet). */
static int
convert_to (const char *out, void *data, capsa_error_t *err)
{
    struct convert *cv = data;
    struct capsa_build_opts b = { .version = CAPSA_VERSION };
    b.out = out;
    b.source = cv->pinned;
    b.sandbox = cv->sandbox;
    b.oci = cv->o;
    b.ui.info = build_info;
    b.ui.warn = build_warn;
    infof ("Converting %s to a SIF image", cv->pinned);
    return capsa_build (&b, err);
}

int
capsa_cmd_docker_cached (const char *uri, const struct capsa_oci_opts *o, char **path, capsa_error_t *err)
{
    cleanup_free char *digest = NULL, *pinned = NULL, *refstr = NULL;
    bool unreachable = false;
    *path = NULL;
    if (capsa_oci_resolve (uri, o, &digest, &pinned, &refstr, &unreachable, err) < 0) {
        /* Offline: the conversion this reference had last time. */
        char *known = unreachable && refstr ? capsa_cache_lookup_ref (o, "oci-tmp", refstr) : NULL;
        if (known == NULL)
            return -1;
        warnf ("%s; using the cached conversion of %s", (*err)->msg, refstr);
        capsa_error_free (err);
        *path = known;
        return 0;
    }
    struct convert cv = { pinned, o, false };
    bool made = false;
    if (capsa_cache_ensure_file (o, "oci-tmp", digest, convert_to, &cv, path, &made, err) < 0)
        return capsa_error_wrap (err, "%s", uri);
    if (!made)
        verbosef ("using the cached conversion of %s (%s)", refstr, digest);
    capsa_error_t ignore = NULL;
    capsa_cache_set_ref (o, "oci-tmp", refstr, digest, &ignore);
    capsa_error_free (&ignore);
    return 0;
}

int
capsa_cmd_net_cached (const char *url, const struct capsa_oci_opts *o, char **path, bool *temporary,
                      capsa_error_t *err)
{
    int fd = -1;
    *temporary = false;
    if (capsa_net_fetch (url, o, path, &fd, err) < 0)
        return -1;
    if (*path != NULL)
        return 0;
    /* Not cacheable: a file of the user's own that outlives this process
     * (a container runs from it; Apptainer leaves such files in its
     * temporary directory too). */
    const char *dir = o && o->tmpdir ? o->tmpdir : getenv ("TMPDIR");
    char *tmpl = xasprintf ("%s/capsa-net-XXXXXX", dir && *dir ? dir : "/tmp");
    int out = mkostemp (tmpl, O_CLOEXEC);
    int r = out < 0 || lseek (fd, 0, SEEK_SET) < 0 ? -1 : 0;
    while (r == 0) {
        ssize_t n = copy_file_range (fd, NULL, out, NULL, 1 << 30, 0);
        if (n < 0 && errno != EINTR)
            r = -1;
        if (n == 0)
            break;
    }
    int e = errno;
    close (fd);
    if (out >= 0)
        close (out);
    if (r < 0) {
        capsa_error_make (err, e, "write %s", tmpl);
        unlink (tmpl);
        free (tmpl);
        return -1;
    }
    *path = tmpl;
    *temporary = true;
    return 0;
}

/* ---- pull ---------------------------------------------------------------- */

/* The file name Apptainer gives a pulled image (uri.GetName): the last
 * part of an http(s) URL; otherwise NAME_TAG.sif from the last component
 * of the reference, TAG "latest" when there is none. */
static char *
default_name (const char *uri)
{
    const char *ref = strstr (uri, "://");
    ref = ref ? ref + 3 : uri;
    while (*ref == '/')
        ref++;
    const char *last = strrchr (ref, '/');
    last = last ? last + 1 : ref;
    if (capsa_net_is_uri (uri)) {
        size_t n = strcspn (last, "?#");
        return n ? xasprintf ("%.*s", (int) n, last) : NULL;
    }
    const char *colon = strchr (last, ':');
    if (colon == NULL)
        return *last ? xasprintf ("%s_latest.sif", last) : NULL;
    const char *tag = colon + 1;
    return xasprintf ("%.*s_%.*s.sif", (int) (colon - last), last, (int) strcspn (tag, ","), tag);
}

/* Copy the cached SRC to OUT: a temporary file beside OUT, renamed over it
 * (or next to nothing when OUT exists and !force). */
static int
copy_out (const char *src, const char *out, bool force, capsa_error_t *err)
{
    cleanup_free char *tmp = xasprintf ("%s.capsa-XXXXXX", out);
    cleanup_close int in = open (src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0)
        return capsa_error_make (err, errno, "open %s", src);
    int fd = mkostemp (tmp, O_CLOEXEC);
    if (fd < 0)
        return capsa_error_make (err, errno, "cannot create %s", tmp);
    int r = 0;
    char buf[1 << 16];
    for (;;) {
        ssize_t n = copy_file_range (in, NULL, fd, NULL, 1 << 30, 0);
        if (n > 0)
            continue;
        if (n == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP) {
            r = capsa_error_make (err, errno, "copy %s to %s", src, tmp);
            break;
        }
        for (;;) {
            ssize_t k = read (in, buf, sizeof (buf));
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0 || (k > 0 && write_all (fd, buf, (size_t) k) < 0)) {
                r = capsa_error_make (err, errno, "copy %s to %s", src, tmp);
                break;
            }
            if (k == 0)
                break;
        }
        break;
    }
    mode_t um = umask (0);
    umask (um);
    /* A SIF starts with "#!/usr/bin/env run-singularity": executable, as
     * Apptainer leaves it. */
    if (r == 0 && (fchmod (fd, 0777 & ~um) < 0 || fsync (fd) < 0))
        r = capsa_error_make (err, errno, "write %s", tmp);
    close (fd);
    if (r == 0 && (force ? rename (tmp, out) : renameat2 (AT_FDCWD, tmp, AT_FDCWD, out, RENAME_NOREPLACE)) < 0)
        r = capsa_error_make (err, errno, errno == EEXIST ? "%s already exists (use --force to replace it)"
                                                          : "cannot create %s", out);
    if (r < 0)
        unlink (tmp);
    return r;
}

static const char pull_usage[]
    = "usage: capsa pull [--name FILE | --dir DIR] [--force] [--no-https] [--authfile FILE] [--arch ARCH]\n"
      "                  [--disable-cache] [--sandbox] [OUT] oras://...|docker://...|https://...|http://...";

int
cmd_pull (int argc, char **argv)
{
    static const struct option opts[] = {
        { "force", no_argument, NULL, 'F' },          { "no-https", no_argument, NULL, 'N' },
        { "nohttps", no_argument, NULL, 'N' },        { "authfile", required_argument, NULL, 'a' },
        { "arch", required_argument, NULL, 'A' },     { "disable-cache", no_argument, NULL, 'D' },
        { "dir", required_argument, NULL, 'd' },      { "name", required_argument, NULL, 'n' },
        { "sandbox", no_argument, NULL, 'S' },        { "tmpdir", required_argument, NULL, 't' },
        { "docker-username", required_argument, NULL, 'u' },
        { "docker-password", required_argument, NULL, 'p' },
        { "allow-unsigned", no_argument, NULL, 'U' }, { "allow-unauthenticated", no_argument, NULL, 'U' },
        { "no-cleanup", no_argument, NULL, 'C' },
        { "arch-variant", required_argument, NULL, 'R' }, { "library", required_argument, NULL, 'R' },
        { "docker-host", required_argument, NULL, 'R' },  { "docker-login", no_argument, NULL, 'R' },
        { "reproducible", no_argument, NULL, 'R' },
        { NULL, 0, NULL, 0 },
    };
    /* Variables first (CAPSA_ / APPTAINER_ / SINGULARITY_), flags win. */
    bool force = capsa_optenv_bool ("FORCE") == 1, no_cache = capsa_optenv_bool ("DISABLE_CACHE") == 1;
    bool sandbox = capsa_optenv_bool ("SANDBOX") == 1;
    const char *arch = capsa_optenv ("PULL_ARCH"), *dir = capsa_optenv ("PULLDIR"), *name = capsa_optenv ("PULL_NAME");
    const char *tmpdir = NULL;
    int c;
    if (dir == NULL)
        dir = capsa_optenv ("PULLFOLDER");
    optind = 0;
    opterr = 0;
    while ((c = getopt_long (argc, argv, "FU", opts, NULL)) != -1) {
        switch (c) {
        case 'F': force = true; break;
        case 'N': capsa_cmd_set_no_https (); break;
        case 'a': capsa_cmd_set_authfile (optarg); break;
        case 'A': arch = optarg; break;
        case 'D': no_cache = true; break;
        case 'd': dir = optarg; break;
        case 'n': name = optarg; break;
        case 'S': sandbox = true; break;
        case 't': tmpdir = optarg; break;
        case 'u': capsa_cmd_set_docker_user (optarg, NULL); break;
        case 'p': capsa_cmd_set_docker_user (NULL, optarg); break;
        case 'U': break; /* capsa does not verify signatures (docs/apptainer.md) */
        case 'C': break;
        case 'R':
            capsa_die ("pull: %s is not supported (see docs/apptainer.md)", argv[optind - 1]);
        default:
            capsa_die ("pull: unknown option '%s' (see 'capsa help pull')", argv[optind - 1]);
        }
    }
    if (optind != argc - 1 && optind != argc - 2)
        capsa_die ("%s", pull_usage);
    const char *uri = argv[argc - 1];
    bool oras = capsa_oras_is_uri (uri), docker = strncmp (uri, "docker://", 9) == 0, net = capsa_net_is_uri (uri);
    if (!oras && !docker && !net) {
        if (strstr (uri, "://") == NULL && strchr (uri, ':') == NULL)
            capsa_die ("pull: '%s' is not a URI (oras://, docker://, https://, http://)", uri);
        capsa_die ("pull: %.*s images are not supported (oras://, docker://, https://, http://; see "
                   "docs/apptainer.md)",
                   (int) strcspn (uri, ":"), uri);
    }
    if (sandbox && !docker)
        capsa_die ("pull --sandbox: only for docker:// images (for a SIF: capsa build --sandbox DIR IMAGE.sif)");
    cleanup_free char *defname = NULL;
    if (name == NULL && optind == argc - 2)
        name = argv[optind];
    if (name == NULL) {
        defname = default_name (uri);
        if (defname == NULL)
            capsa_die ("pull: no file name in '%s'; give one with --name FILE", uri);
        name = defname;
    }
    cleanup_free char *out = dir && name[0] != '/' ? xasprintf ("%s/%s", dir, name) : xstrdup (name);
    struct stat st;
    if (!force && lstat (out, &st) == 0)
        capsa_die ("image file already exists: '%s' - will not overwrite (use --force)", out);

    struct capsa_oci_opts o;
    capsa_error_t err = NULL;
    capsa_cmd_oci_opts (&o);
    o.arch = arch;
    o.no_cache = no_cache;
    if (tmpdir)
        o.tmpdir = tmpdir;
    int r;
    if (oras) {
        r = capsa_oras_pull (uri, out, force, &o, &err);
    } else if (docker && (no_cache || sandbox)) {
        /* Straight into OUT (build replaces it whole, or leaves nothing). */
        cleanup_free char *digest = NULL, *pinned = NULL, *refstr = NULL;
        bool unreachable;
        r = capsa_oci_resolve (uri, &o, &digest, &pinned, &refstr, &unreachable, &err);
        if (r == 0) {
            struct capsa_build_opts b = { .version = CAPSA_VERSION };
            b.out = out;
            b.source = pinned;
            b.sandbox = sandbox;
            b.force = force;
            b.oci = &o;
            b.ui.info = build_info;
            b.ui.warn = build_warn;
            r = capsa_build (&b, &err);
        }
    } else {
        cleanup_free char *cached = NULL;
        bool temporary = false;
        r = docker ? capsa_cmd_docker_cached (uri, &o, &cached, &err)
                   : capsa_cmd_net_cached (uri, &o, &cached, &temporary, &err);
        if (r == 0)
            r = copy_out (cached, out, force, &err);
        if (temporary)
            unlink (cached);
    }
    capsa_cmd_progress_done ();
    if (r < 0)
        capsa_error_fatal (&err);
    infof ("Pulled %s to %s", uri, out);
    return 0;
}
