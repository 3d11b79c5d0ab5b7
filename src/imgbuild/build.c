/* capsa build: see build.h and docs/build.md.
 *
 * Order of a definition-file build (Apptainer's): bootstrap the root
 * (localimage: extract or copy; debootstrap), the base layout, %setup on
 * the host, %files, %post inside the root, the metadata (%help, labels,
 * the definition, %environment, %startscript, %runscript, %test), %test
 * inside the finished root, then the squashfs and the SIF (or the sandbox
 * directory).  A directory or image source is the same without scripts,
 * as if built from "Bootstrap: localimage / From: SOURCE"; a directory
 * made into a SIF is not even copied: the layout's additions reach the
 * squashfs as mksquashfs pseudo files. */
#include "imgbuild/build.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <pwd.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imgbuild/assemble.h"
#include "imgbuild/deffile.h"
#include "imgbuild/layout.h"
#include "imgbuild/proc.h"
#include "imgbuild/tree.h"
#include "oci/oci.h"
#include "lib/utils.h"
#include "runtime/fakeroot.h"
#include "runtime/image.h"
#include "sif/sif.h"

extern char **environ;

enum bld_kind { BLD_SRC_DIR, BLD_SRC_IMAGE, BLD_SRC_DEF };

struct bld {
    const struct capsa_build_opts *o;
    char *out;     /* OUT without trailing slashes */
    char *workdir; /* private directory beside OUT */
    char *rootfs;  /* workdir/rootfs */
    int rootfd;
    struct deffile *def;
    bool fakeroot; /* scripts in a user namespace */
    bool ranges;   /* ... with the caller's subordinate ids mapped too */
    struct capsa_subid subuid, subgid;
    bool root;     /* real root */
    struct capsa_oci_config oci; /* an OCI source's config (has_oci) */
    bool has_oci;
    struct assemble_io io;
};

static void __attribute__ ((format (printf, 2, 3)))
bld_info (struct bld *b, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    if (b->o->ui.info == NULL)
        return;
    va_start (ap, fmt);
    vsnprintf (msg, sizeof (msg), fmt, ap);
    va_end (ap);
    b->o->ui.info (msg, b->o->ui.data);
}

static void
bld_warn_cb (const char *msg, void *data)
{
    struct bld *b = data;
    if (b->o->ui.warn)
        b->o->ui.warn (msg, b->o->ui.data);
}

/* ---- sources ---------------------------------------------------------------------- */

static int
bld_source_kind (const char *path, enum bld_kind *kind, capsa_error_t *err)
{
    struct stat st;
    unsigned char head[64];
    cleanup_close int fd = -1;

    if (stat (path, &st) < 0)
        return capsa_error_make (err, errno == ENOENT ? 0 : errno, "%s: %s", path,
                                 errno == ENOENT ? "no such file or directory" : "cannot use it as a source");
    if (S_ISDIR (st.st_mode)) {
        *kind = BLD_SRC_DIR;
        return 0;
    }
    if (!S_ISREG (st.st_mode))
        return capsa_error_make (err, 0, "%s: not a directory, an image or a definition file", path);
    fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return capsa_error_make (err, errno, "%s", path);
    memset (head, 0, sizeof (head));
    if (pread (fd, head, sizeof (head), 0) < 0)
        return capsa_error_make (err, errno, "read %s", path);
    if (memcmp (head, "hsqs", 4) == 0 || memcmp (head + 32, "SIF_MAGIC", 9) == 0)
        *kind = BLD_SRC_IMAGE;
    else
        *kind = BLD_SRC_DEF;
    return 0;
}

static int
bld_read_def (struct bld *b, const char *path, capsa_error_t *err)
{
    cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    cleanup_free char *buf = NULL;
    size_t len = 0;

    if (fd < 0)
        return capsa_error_make (err, errno, "%s", path);
    if (read_fd_all (fd, DEFFILE_MAX_SIZE, &buf, &len, err) < 0)
        return capsa_error_wrap (err, "definition file %s", path);
    return deffile_parse (path, buf, len, &b->def, err);
}

/* The recipe of an image or directory source: "bootstrap: localimage",
 * "from: SOURCE" (what Apptainer records for such builds). */
static int
bld_synth_def (struct bld *b, const char *source, capsa_error_t *err)
{
    static const char tmpl[] = "bootstrap: localimage\nfrom: x\n";
    struct deffile *d;

    if (deffile_parse (source, tmpl, sizeof (tmpl) - 1, &d, err) < 0)
        return -1;
    for (size_t i = 0; i < d->nheader; i++)
        if (strcmp (d->header[i].key, "from") == 0) {
            free (d->header[i].value);
            d->header[i].value = xstrdup (source);
            d->from = d->header[i].value;
        }
    free (d->raw);
    if (strncmp (source, "docker://", 9) == 0)
        d->raw = xasprintf ("bootstrap: docker\nfrom: %s\n", source + 9);
    else if (capsa_oci_is_source (source))
        d->raw = xasprintf ("bootstrap: %.*s\nfrom: %s\n", (int) strcspn (source, ":"), source,
                            source + strcspn (source, ":") + 1);
    else
        d->raw = xasprintf ("bootstrap: localimage\nfrom: %s\n", source);
    d->rawlen = strlen (d->raw);
    b->def = d;
    return 0;
}

/* ---- the private directory ------------------------------------------------------------ */

/* Is DIR (absolute, resolved) or a directory above it writable by someone
 * other than root, such that they could rename what it holds (a sticky
 * directory protects root's entries)?  Then *WHERE is that directory. */
static bool
bld_path_not_root_only (const char *dir, char **where, struct stat *found)
{
    cleanup_free char *p = xstrdup (dir);
    size_t n = strlen (p);
    for (size_t i = 1; i <= n; i++) {
        if (i < n && p[i] != '/')
            continue;
        char saved = p[i];
        p[i] = '\0';
        struct stat st = { 0 };
        const char *d = p[0] == '\0' ? "/" : p;
        bool bad = lstat (d, &st) < 0 || !S_ISDIR (st.st_mode) || st.st_uid != 0
                   || ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX));
        if (bad) {
            *where = xstrdup (d);
            *found = st;
            return true;
        }
        p[i] = saved;
    }
    struct stat st;
    if (lstat ("/", &st) == 0 && (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)))) {
        *where = xstrdup ("/");
        *found = st;
        return true;
    }
    return false;
}

static int
bld_workdir (struct bld *b, capsa_error_t *err)
{
    cleanup_free char *dcopy = xstrdup (b->out), *bcopy = xstrdup (b->out);
    char dir[PATH_MAX];

    /* Absolute: helpers run in other directories. */
    if (realpath (dirname (dcopy), dir) == NULL)
        return capsa_error_make (err, errno, "cannot create %s: its directory", b->out);
    /* Root works in the private directory by path (%post's root, the
     * squashfs): no one else may be able to rename it or a directory
     * above it, or root would run their tree. */
    if (b->root) {
        cleanup_free char *unsafe = NULL;
        struct stat ust = { 0 };
        if (bld_path_not_root_only (dir, &unsafe, &ust)) {
            cleanup_free char *who = ust.st_uid != 0 ? xasprintf ("uid %u, its owner", (unsigned) ust.st_uid)
                                                     : xasprintf ("users other than root (mode %04o)",
                                                                  (unsigned) (ust.st_mode & 07777));
            return capsa_error_make (err, 0,
                                     "refusing to build as root into %s: %s can be written by %s, who could swap "
                                     "the build's private directory there; build into a directory only root can "
                                     "write, then move the image",
                                     dir, unsafe, who);
        }
    }
    char *tmpl = xasprintf ("%s/.capsa-build-%s.XXXXXX", dir, basename (bcopy));

    if (mkdtemp (tmpl) == NULL) {
        int e = errno;
        capsa_error_make (err, e, "cannot create a build directory beside %s (%s)", b->out, tmpl);
        free (tmpl);
        return -1;
    }
    b->workdir = tmpl;
    b->rootfs = xasprintf ("%s/rootfs", b->workdir);
    return 0;
}

static int
bld_open_root (struct bld *b, capsa_error_t *err)
{
    b->rootfd = open (b->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (b->rootfd < 0)
        return capsa_error_make (err, errno, "open %s", b->rootfs);
    return 0;
}

/* ---- bootstrap ------------------------------------------------------------------------ */

/* docker://, docker-archive:, oci-archive: the layers into the root
 * (src/oci; archives are staged inside the private directory). */
static int
bld_oci (struct bld *b, const char *source, capsa_error_t *err)
{
    struct capsa_oci_opts o = { 0 };
    if (b->o->oci)
        o = *b->o->oci;
    o.tmpdir = b->workdir;
    bld_info (b, "Fetching %s", source);
    if (mkdir (b->rootfs, 0755) < 0)
        return capsa_error_make (err, errno, "mkdir %s", b->rootfs);
    if (capsa_oci_fetch_rootfs (source, b->rootfs, &o, &b->oci, err) < 0)
        return -1;
    b->has_oci = true;
    return 0;
}

/* An OCI source's runscript and environment (Apptainer's names); a
 * recipe's %runscript and %environment come later and win. */
static int
bld_oci_layout (struct bld *b, capsa_error_t *err)
{
    if (!b->has_oci)
        return 0;
    cleanup_free char *rs = capsa_oci_runscript (&b->oci);
    cleanup_free char *env = capsa_oci_envscript (&b->oci);
    if (tree_write (b->rootfd, ".singularity.d/runscript", rs, strlen (rs), 0755, false, err) < 0
        || tree_write (b->rootfd, ".singularity.d/env/10-docker2singularity.sh", env, strlen (env), 0755, false, err) < 0)
        return capsa_error_wrap (err, "image layout");
    return 0;
}

/* "Bootstrap: docker / From: REF" -> "docker://REF" (new string), NULL
 * for the other agents. */
static char *
bld_oci_source (const struct deffile *d)
{
    switch (d->bootstrap) {
    case DEF_BOOTSTRAP_DOCKER:
        return strncmp (d->from, "docker://", 9) == 0 ? xstrdup (d->from) : xasprintf ("docker://%s", d->from);
    case DEF_BOOTSTRAP_DOCKER_ARCHIVE:
        return xasprintf ("docker-archive:%s", d->from);
    case DEF_BOOTSTRAP_OCI_ARCHIVE:
        return xasprintf ("oci-archive:%s", d->from);
    default:
        return NULL;
    }
}

static int
bld_extract (struct bld *b, const char *image, capsa_error_t *err)
{
    struct capsa_image img;
    bool partial = false;
    int ret;

    if (capsa_oci_is_source (image))
        return bld_oci (b, image, err);
    if (capsa_image_open (&img, image, err) < 0)
        return -1;
    if (img.kind == IMAGE_DIR) {
        capsa_image_close (&img);
        bld_info (b, "Copying %s", image);
        const char *argv[] = { "cp", "-a", "--", NULL, NULL, NULL };
        cleanup_free char *src = xasprintf ("%s/.", image);
        int status;
        argv[3] = src;
        argv[4] = b->rootfs;
        struct build_proc p = { .argv = argv, .null_stdin = true, .out_fd = -1 };
        if (mkdir (b->rootfs, 0755) < 0)
            return capsa_error_make (err, errno, "mkdir %s", b->rootfs);
        if (build_proc_run (&p, &status, err) < 0)
            return -1;
        if (status != 0)
            return capsa_error_make (err, 0, "copying %s failed (cp: exit status %d)", image, status);
        return 0;
    }
    bld_info (b, "Extracting %s", image);
    ret = assemble_unsquashfs (image, img.offset, b->rootfs, &b->io, &partial, err);
    capsa_image_close (&img);
    if (ret == 0 && partial && b->o->ui.warn)
        b->o->ui.warn ("some files of the image could not be extracted by a non-root user (device nodes?)",
                       b->o->ui.data);
    return ret;
}

static const char *
bld_debian_arch (void)
{
    static const char *const map[][2] = {
        { "amd64", "amd64" }, { "arm64", "arm64" },   { "386", "i386" },       { "arm", "armhf" },
        { "ppc64le", "ppc64el" }, { "s390x", "s390x" }, { "riscv64", "riscv64" }, { "mips64le", "mips64el" },
    };
    const char *go = sif_host_arch ();
    for (size_t i = 0; i < ARRAY_SIZE (map); i++)
        if (strcmp (map[i][0], go) == 0)
            return map[i][1];
    return go;
}

struct bld_lines {
    struct bld *b;
    const char *step;
    struct build_tail tail;
};

static void
bld_on_line (const char *line, void *data)
{
    struct bld_lines *l = data;
    build_tail_push (&l->tail, line);
    if (l->b->o->ui.progress)
        l->b->o->ui.progress (l->step, line, l->b->o->ui.data);
}

static int
bld_debootstrap (struct bld *b, capsa_error_t *err)
{
    const struct deffile *d = b->def;
    cleanup_free char *arch = xasprintf ("--arch=%s", bld_debian_arch ());
    cleanup_free char *include = d->include[0] ? xasprintf ("--include=%s", d->include) : NULL;
    cleanup_free char *cache = b->o->debootstrap_cache ? xasprintf ("--cache-dir=%s", b->o->debootstrap_cache) : NULL;
    const char *argv[12];
    int n = 0, status;
    struct bld_lines lines = { .b = b, .step = "debootstrap" };

    argv[n++] = access ("/usr/sbin/debootstrap", X_OK) == 0 ? "/usr/sbin/debootstrap" : "debootstrap";
    argv[n++] = "--variant=minbase";
    argv[n++] = arch;
    if (include)
        argv[n++] = include;
    if (cache)
        argv[n++] = cache;
    argv[n++] = d->osversion;
    argv[n++] = b->rootfs;
    argv[n++] = d->mirror;
    argv[n] = NULL;
    if (mkdir (b->rootfs, 0755) < 0)
        return capsa_error_make (err, errno, "mkdir %s", b->rootfs);
    bld_info (b, "Running debootstrap %s from %s%s%s", d->osversion, d->mirror, d->include[0] ? " with " : "",
              d->include);
    struct build_proc p = {
        .argv = argv,
        .flags = BP_NAMESPACES | (b->fakeroot ? BP_FAKEROOT : 0),
        .null_stdin = true,
        .on_line = bld_on_line,
        .data = &lines,
        .out_fd = -1,
    };
    /* In a user namespace debootstrap cannot make device nodes: told it
     * runs in a container ("lxc"), it binds the host's /dev instead. */
    struct strv env = { 0 };
    if (b->fakeroot) {
        const char *path = getenv ("PATH");
        for (char **e = environ; *e; e++)
            if (strncmp (*e, "PATH=", 5) != 0 && strncmp (*e, "container=", 10) != 0)
                strv_push (&env, *e);
        strv_push_take (&env, xasprintf ("PATH=%s%s/usr/sbin:/usr/bin:/sbin:/bin", path ? path : "", path ? ":" : ""));
        strv_push (&env, "container=lxc");
        p.envp = (const char *const *) env.v;
    }
    int ret = build_proc_run (&p, &status, err);
    strv_free (&env);
    if (b->o->ui.progress)
        b->o->ui.progress ("debootstrap", NULL, b->o->ui.data);
    if (ret == 0 && status != 0) {
        char buf[64];
        cleanup_free char *tail = build_tail_text (&lines.tail);
        capsa_error_make (err, 0, "%s:%d: debootstrap failed (%s)%s%s", d->name, d->bootstrap_line,
                          build_status_text (status, buf, sizeof (buf)), tail[0] ? ":\n" : "", tail);
        ret = -1;
    }
    build_tail_free (&lines.tail);
    if (ret == 0 && chmod (b->rootfs, 0755) < 0)
        ret = capsa_error_make (err, errno, "chmod %s", b->rootfs);
    return ret;
}

/* ---- scripts ---------------------------------------------------------------------------- */

static bool
bld_has_script (const struct deffile *d, enum def_section_kind k)
{
    const struct def_section *s = &d->sec[k];
    if (!s->present)
        return false;
    for (const char *c = s->body; *c; c++)
        if (*c != ' ' && *c != '\t' && *c != '\n' && *c != '\r')
            return true;
    return false;
}

static void
bld_env_set (struct strv *env, const char *key, const char *value)
{
    size_t kl = strlen (key);
    for (size_t i = 0; i < env->n; i++)
        if (strncmp (env->v[i], key, kl) == 0 && env->v[i][kl] == '=') {
            free (env->v[i]);
            env->v[i] = xasprintf ("%s=%s", key, value);
            return;
        }
    strv_push_take (env, xasprintf ("%s=%s", key, value));
}

/* The environment of %post and %test: clean, with the proxies kept for
 * package managers. */
static void
bld_container_env (struct strv *env, bool post)
{
    static const char *const keep[] = {
        "TERM", "http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy",
        "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY",
    };
    bld_env_set (env, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    bld_env_set (env, "HOME", "/root");
    bld_env_set (env, "LANG", "C");
    for (size_t i = 0; i < ARRAY_SIZE (keep); i++) {
        const char *v = getenv (keep[i]);
        if (v != NULL)
            bld_env_set (env, keep[i], v);
    }
    if (post) {
        /* %post may add to the image's environment through this file. */
        bld_env_set (env, "APPTAINER_ENVIRONMENT", "/.singularity.d/env/91-environment.sh");
        bld_env_set (env, "SINGULARITY_ENVIRONMENT", "/.singularity.d/env/91-environment.sh");
        bld_env_set (env, "CAPSA_ENVIRONMENT", "/.singularity.d/env/91-environment.sh");
    }
    bld_env_set (env, "APPTAINER_ROOTFS", "/");
    bld_env_set (env, "SINGULARITY_ROOTFS", "/");
    bld_env_set (env, "CAPSA_ROOTFS", "/");
}

static int
bld_run_script (struct bld *b, enum def_section_kind k, const char *const *argv, struct strv *env, bool in_root,
                capsa_error_t *err)
{
    const struct def_section *s = &b->def->sec[k];
    struct build_proc p = {
        .argv = argv,
        .envp = (const char *const *) env->v,
        .rootfs = in_root ? b->rootfs : NULL,
        .cwd = in_root ? "/" : NULL,
        .flags = BP_NAMESPACES | (b->fakeroot ? BP_FAKEROOT : 0),
        .null_stdin = true,
        .out_fd = -1,
    };
    int status;
    char buf[64];

    bld_info (b, "Running %s%s", deffile_section_name (k), b->fakeroot ? " (fakeroot)" : "");
    if (build_proc_run (&p, &status, err) < 0)
        return capsa_error_wrap (err, "%s:%d: %s", b->def->name, s->line, deffile_section_name (k));
    if (status != 0)
        return capsa_error_make (err, 0, "%s:%d: %s failed (%s)", b->def->name, s->line, deffile_section_name (k),
                                 build_status_text (status, buf, sizeof (buf)));
    return 0;
}

static int
bld_setup (struct bld *b, capsa_error_t *err)
{
    const struct deffile *d = b->def;
    struct strv env = { 0 };
    const char *sh = d->shell[DEF_SETUP] ? d->shell[DEF_SETUP] : "/bin/sh";
    const char *argv[] = { sh, "-e", "-c", d->sec[DEF_SETUP].body, NULL };
    int ret;

    /* %setup runs on the host, with capsa's environment and the root's
     * path in the variables Apptainer sets. */
    for (char **e = environ; *e; e++)
        strv_push (&env, *e);
    bld_env_set (&env, "APPTAINER_ROOTFS", b->rootfs);
    bld_env_set (&env, "SINGULARITY_ROOTFS", b->rootfs);
    bld_env_set (&env, "CAPSA_ROOTFS", b->rootfs);
    ret = bld_run_script (b, DEF_SETUP, argv, &env, false, err);
    strv_free (&env);
    return ret;
}

static int
bld_files (struct bld *b, capsa_error_t *err)
{
    const struct deffile *d = b->def;

    if (d->nfiles == 0)
        return 0;
    bld_info (b, "Copying %%files");
    for (size_t i = 0; i < d->nfiles; i++) {
        const struct def_file_entry *f = &d->files[i];
        glob_t g;
        int r = glob (f->src, GLOB_NOESCAPE, NULL, &g);
        if (r == GLOB_NOMATCH)
            return capsa_error_make (err, 0, "%s:%d: %%files source '%s' does not exist", d->name, f->line, f->src);
        if (r != 0)
            return capsa_error_make (err, 0, "%s:%d: %%files source '%s': cannot expand it", d->name, f->line, f->src);
        for (size_t k = 0; k < g.gl_pathc; k++) {
            const char *src = g.gl_pathv[k];
            if (tree_copy_in (b->rootfd, src, f->dst ? f->dst : src, err) < 0) {
                globfree (&g);
                return capsa_error_wrap (err, "%s:%d: %%files", d->name, f->line);
            }
        }
        globfree (&g);
        if (build_check_interrupted (err) < 0)
            return -1;
    }
    return 0;
}

static int
bld_post (struct bld *b, capsa_error_t *err)
{
    const struct deffile *d = b->def;
    struct strv env = { 0 };
    const char *sh = d->shell[DEF_POST] ? d->shell[DEF_POST] : "/bin/sh";
    const char *argv[] = { sh, "-e", "-c", d->sec[DEF_POST].body, NULL };
    int ret;

    bld_container_env (&env, true);
    ret = bld_run_script (b, DEF_POST, argv, &env, true, err);
    strv_free (&env);
    return ret;
}

static int
bld_test (struct bld *b, capsa_error_t *err)
{
    struct strv env = { 0 };
    /* As Apptainer's test action: the image's environment, then its test. */
    const char *argv[] = { "/bin/sh", "-c",
                           "for s in /.singularity.d/env/*.sh; do if [ -f \"$s\" ]; then . \"$s\"; fi; done; "
                           "exec /.singularity.d/test",
                           NULL };
    int ret;

    bld_container_env (&env, false);
    ret = bld_run_script (b, DEF_TEST, argv, &env, true, err);
    strv_free (&env);
    return ret;
}

/* ---- output ----------------------------------------------------------------------------- */

/* Move FROM (inside the private directory) to OUT in one step. */
static int
bld_publish (struct bld *b, const char *from, capsa_error_t *err)
{
    struct stat st;

    if (lstat (b->out, &st) == 0) {
        if (!b->o->force)
            return capsa_error_make (err, 0, "%s already exists (use --force to replace it)", b->out);
        /* Swap, so OUT is never missing; the old one ends up in the
         * private directory and goes with it. */
        if (renameat2 (AT_FDCWD, from, AT_FDCWD, b->out, RENAME_EXCHANGE) < 0)
            return capsa_error_make (err, errno, "replace %s", b->out);
        return 0;
    }
    if (renameat2 (AT_FDCWD, from, AT_FDCWD, b->out, RENAME_NOREPLACE) < 0) {
        if (errno == EEXIST)
            return capsa_error_make (err, 0, "%s already exists (use --force to replace it)", b->out);
        return capsa_error_make (err, errno, "create %s", b->out);
    }
    return 0;
}

static const struct layout_opts *
bld_layout_opts (struct bld *b, struct layout_opts *lo, bool overwrite_base)
{
    memset (lo, 0, sizeof (*lo));
    lo->def = b->def;
    lo->overwrite_base = overwrite_base;
    lo->force = b->o->force;
    lo->version = b->o->version;
    lo->arch = sif_host_arch ();
    lo->warn = bld_warn_cb;
    lo->data = b;
    return lo;
}

/* Where mksquashfs writes: a file in the private directory, or for an
 * encrypted image a memfd (named through /proc so that mksquashfs can
 * open it): the plaintext squashfs never reaches a file. */
static int
bld_squash_target (struct bld *b, char **dest, capsa_error_t *err)
{
    int fd;
    if (b->o->key != NULL) {
        fd = memfd_create ("capsa-build-squashfs", MFD_CLOEXEC);
        if (fd < 0)
            return capsa_error_make (err, errno, "memfd_create");
        *dest = xasprintf ("/proc/%d/fd/%d", (int) getpid (), fd);
        return fd;
    }
    *dest = xasprintf ("%s/rootfs.squashfs", b->workdir);
    fd = open (*dest, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return capsa_error_make (err, errno, "create %s", *dest);
    return fd;
}

/* SIF from the private root, or the root itself as the sandbox. */
static int
bld_output (struct bld *b, struct layout *l, capsa_error_t *err)
{
    cleanup_free char *sqfs = NULL, *sif = NULL, *json = NULL;

    if (build_check_interrupted (err) < 0)
        return -1;
    if (b->o->sandbox)
        return bld_publish (b, b->rootfs, err);
    if (layout_inspect_json (l, &json, err) < 0)
        return -1;
    cleanup_close int sqfd = bld_squash_target (b, &sqfs, err);
    if (sqfd < 0)
        return -1;
    sif = xasprintf ("%s/image.sif", b->workdir);
    struct squash_opts so = {
        .src = b->rootfs,
        .dest = sqfs,
        .comp = b->o->comp,
        .all_root = !b->root && !b->ranges,
        .fakeroot = b->ranges,
    };
    bld_info (b, "Creating the squashfs file system (%s)", b->o->comp ? b->o->comp : "gzip");
    if (assemble_mksquashfs (&so, &b->io, err) < 0)
        return -1;
    if (build_check_interrupted (err) < 0)
        return -1;
    bld_info (b, "Creating SIF file%s", b->o->key ? " (encrypting the root file system)" : "");
    if (assemble_sif (sif, b->def->raw, b->def->rawlen, json, sqfd, b->o->key, err) < 0)
        return -1;
    if (build_check_interrupted (err) < 0)
        return -1;
    return bld_publish (b, sif, err);
}

/* A directory made into a SIF without copying it: the layout's additions
 * become pseudo files.  Returns 1 when the tree does not allow that (a
 * symlinked /.singularity.d...): the caller copies it instead. */
static int
bld_dir_to_sif (struct bld *b, const char *source, capsa_error_t *err)
{
    struct layout l;
    struct layout_opts lo;
    cleanup_close int srcfd = open (source, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cleanup_close int stagefd = -1;
    cleanup_free char *stage = xasprintf ("%s/stage", b->workdir);
    cleanup_free char *sqfs = NULL;
    cleanup_free char *sif = xasprintf ("%s/image.sif", b->workdir);
    cleanup_free char *json = NULL;
    cleanup_close int sqfd = -1;
    char src_abs[PATH_MAX], work_abs[PATH_MAX];
    bool any = false;
    int ret = -1;

    if (srcfd < 0)
        return capsa_error_make (err, errno, "%s", source);
    if (mkdir (stage, 0700) < 0 || (stagefd = open (stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return capsa_error_make (err, errno, "mkdir %s", stage);
    if (realpath (source, src_abs) == NULL || realpath (b->workdir, work_abs) == NULL)
        return capsa_error_make (err, errno, "%s", source);

    layout_init (&l, srcfd, true, stagefd);
    if (layout_base (&l, bld_layout_opts (b, &lo, false), err) < 0 || layout_metadata (&l, &lo, err) < 0)
        goto out;
    if (l.unsupported) {
        ret = 1;
        goto out;
    }
    /* OUT inside SOURCE: keep the build directory out of the image. */
    size_t sl = strlen (src_abs);
    if (strncmp (work_abs, src_abs, sl) == 0 && (src_abs[sl - 1] == '/' || work_abs[sl] == '/'))
        strv_push (&l.excludes, work_abs + sl + (src_abs[sl - 1] == '/' ? 0 : 1));
    if (layout_write_pseudo (&l, "pseudo", "exclude", &any, err) < 0 || layout_inspect_json (&l, &json, err) < 0)
        goto out;
    if ((sqfd = bld_squash_target (b, &sqfs, err)) < 0)
        goto out;
    struct squash_opts so = {
        .src = src_abs,
        .dest = sqfs,
        .comp = b->o->comp,
        .all_root = !b->root && !b->ranges,
        .fakeroot = b->ranges,
        .cwd = stage,
        .pseudo_file = any ? "pseudo" : NULL,
        .exclude_file = any ? "exclude" : NULL,
    };
    bld_info (b, "Creating the squashfs file system (%s)", b->o->comp ? b->o->comp : "gzip");
    if (assemble_mksquashfs (&so, &b->io, err) < 0 || build_check_interrupted (err) < 0)
        goto out;
    bld_info (b, "Creating SIF file%s", b->o->key ? " (encrypting the root file system)" : "");
    if (assemble_sif (sif, b->def->raw, b->def->rawlen, json, sqfd, b->o->key, err) < 0
        || build_check_interrupted (err) < 0)
        goto out;
    ret = bld_publish (b, sif, err);
out:
    layout_free (&l);
    return ret;
}

/* --fakeroot: the caller's subordinate ids, mapped as well when there are
 * some (debootstrap and package managers need them). */
static int
bld_fakeroot_ranges (struct bld *b, capsa_error_t *err)
{
    struct passwd *pw = getpwuid (getuid ());
    const char *why_u = NULL, *why_g = NULL;
    if (pw == NULL)
        return capsa_error_make (err, 0, "user %u is not in the password database", (unsigned) getuid ());
    int u = capsa_subid_lookup (CAPSA_SUBUID_FILE, pw->pw_name, pw->pw_uid, &b->subuid, &why_u, err);
    int g = u < 0 ? -1 : capsa_subid_lookup (CAPSA_SUBGID_FILE, pw->pw_name, pw->pw_uid, &b->subgid, &why_g, err);
    if (u < 0 || g < 0)
        return capsa_error_wrap (err, "--fakeroot");
    b->ranges = u == 1 && g == 1;
    if (!b->ranges && b->o->ui.warn) {
        char msg[512];
        snprintf (msg, sizeof (msg),
                  "--fakeroot: %s has no subordinate ids in %s (%s): only your own uid and gid are mapped, to root; "
                  "package managers that change owners or switch users (dpkg, apt, debootstrap) will fail",
                  pw->pw_name, u == 0 ? CAPSA_SUBUID_FILE : CAPSA_SUBGID_FILE, u == 0 ? why_u : why_g);
        b->o->ui.warn (msg, b->o->ui.data);
    }
    build_proc_set_fakeroot_ranges (b->ranges ? &b->subuid : NULL, b->ranges ? &b->subgid : NULL);
    return 0;
}

/* ---- the whole build ---------------------------------------------------------------------- */

static int
bld_check_privileges (struct bld *b, capsa_error_t *err)
{
    const struct deffile *d = b->def;
    static const enum def_section_kind scripts[] = { DEF_SETUP, DEF_POST, DEF_TEST };

    if (d->bootstrap == DEF_BOOTSTRAP_DEBOOTSTRAP && !b->root && !b->ranges)
        return capsa_error_make (err, 0, "%s:%d: 'Bootstrap: debootstrap' needs root, or --fakeroot with subordinate ids "
                                 "in %s and %s ('capsa config fakeroot --add USER')%s",
                                 d->name, d->bootstrap_line, CAPSA_SUBUID_FILE, CAPSA_SUBGID_FILE,
                                 b->fakeroot ? ": you have none, and one uid is too few for dpkg" : "");
    for (size_t i = 0; i < ARRAY_SIZE (scripts); i++) {
        enum def_section_kind k = scripts[i];
        if (k == DEF_TEST && b->o->notest)
            continue;
        if (bld_has_script (d, k) && !b->root && !b->fakeroot)
            return capsa_error_make (err, 0, "%s:%d: %s runs as root: build as root or with --fakeroot", d->name,
                                     d->sec[k].line, deffile_section_name (k));
    }
    return 0;
}

static int
bld_from_def (struct bld *b, capsa_error_t *err)
{
    const struct deffile *d = b->def;
    struct layout l;
    struct layout_opts lo;
    bool debootstrap = d->bootstrap == DEF_BOOTSTRAP_DEBOOTSTRAP;
    cleanup_free char *oci_src = bld_oci_source (d);
    int ret = -1;

    if (bld_check_privileges (b, err) < 0)
        return -1;
    if (!debootstrap && oci_src == NULL) {
        struct stat st;
        const struct def_kv *from = deffile_header (d, "from");
        if (stat (d->from, &st) < 0)
            return capsa_error_make (err, 0, "%s:%d: From: %s: %s", d->name, from ? from->line : d->bootstrap_line,
                                     d->from, strerror (errno));
    }
    if (bld_workdir (b, err) < 0)
        return -1;
    if (debootstrap ? bld_debootstrap (b, err) < 0 : bld_extract (b, oci_src ? oci_src : d->from, err) < 0)
        return -1;
    if (build_check_interrupted (err) < 0 || bld_open_root (b, err) < 0)
        return -1;
    layout_init (&l, b->rootfd, false, -1);
    if (layout_base (&l, bld_layout_opts (b, &lo, debootstrap), err) < 0)
        goto out;
    if (debootstrap && layout_default_runscript (&l, err) < 0)
        goto out;
    if (bld_oci_layout (b, err) < 0)
        goto out;
    if (bld_has_script (d, DEF_SETUP) && bld_setup (b, err) < 0)
        goto out;
    if (bld_files (b, err) < 0)
        goto out;
    if (bld_has_script (d, DEF_POST) && bld_post (b, err) < 0)
        goto out;
    if (build_check_interrupted (err) < 0 || layout_metadata (&l, &lo, err) < 0)
        goto out;
    if (bld_has_script (d, DEF_TEST) && !b->o->notest && bld_test (b, err) < 0)
        goto out;
    ret = bld_output (b, &l, err);
out:
    layout_free (&l);
    return ret;
}

static int
bld_from_image (struct bld *b, const char *source, enum bld_kind kind, capsa_error_t *err)
{
    struct layout l;
    struct layout_opts lo;
    int ret = -1;

    if (bld_synth_def (b, source, err) < 0 || bld_workdir (b, err) < 0)
        return -1;
    if (kind == BLD_SRC_DIR && !b->o->sandbox) {
        int r = bld_dir_to_sif (b, source, err);
        if (r <= 0)
            return r;
        /* Fall back to a copy the layout can be written into. */
        tree_remove (b->workdir, err);
        capsa_error_free (err);
        if (mkdir (b->workdir, 0700) < 0)
            return capsa_error_make (err, errno, "mkdir %s", b->workdir);
    }
    if (bld_extract (b, source, err) < 0 || build_check_interrupted (err) < 0 || bld_open_root (b, err) < 0)
        return -1;
    layout_init (&l, b->rootfd, false, -1);
    if (layout_base (&l, bld_layout_opts (b, &lo, false), err) < 0 || bld_oci_layout (b, err) < 0
        || layout_metadata (&l, &lo, err) < 0)
        goto out;
    ret = bld_output (b, &l, err);
out:
    layout_free (&l);
    return ret;
}

int
capsa_build (const struct capsa_build_opts *o, capsa_error_t *err)
{
    struct bld b = { .o = o, .rootfd = -1 };
    enum bld_kind kind = BLD_SRC_DEF;
    struct stat st;
    int ret = -1;

    b.root = geteuid () == 0;
    b.fakeroot = o->fakeroot && !b.root;
    if (b.fakeroot && bld_fakeroot_ranges (&b, err) < 0)
        goto done;
    b.io.terminal = o->terminal;
    b.out = xstrdup (o->out);
    for (size_t n = strlen (b.out); n > 1 && b.out[n - 1] == '/'; n--)
        b.out[n - 1] = '\0';

    if (lstat (b.out, &st) == 0 && !o->force) {
        capsa_error_make (err, 0, "%s already exists (use --force to replace it)", b.out);
        goto done;
    }
    if (o->comp != NULL) {
        static const char *const comps[] = { "gzip", "lzo", "lz4", "xz", "zstd", "lzma" };
        bool ok = false;
        for (size_t i = 0; i < ARRAY_SIZE (comps); i++)
            ok |= strcmp (o->comp, comps[i]) == 0;
        if (!ok) {
            capsa_error_make (err, 0, "unknown compressor '%s' (gzip, lz4, lzo, xz, zstd)", o->comp);
            goto done;
        }
    }
    if (o->sandbox && o->key != NULL) {
        capsa_error_make (err, 0, "a sandbox directory cannot be encrypted (build a SIF file)");
        goto done;
    }
    if (capsa_oci_is_source (o->source))
        kind = BLD_SRC_IMAGE;
    else if (bld_source_kind (o->source, &kind, err) < 0)
        goto done;

    build_signals_begin ();
    bld_info (&b, "Starting build...");
    if (kind == BLD_SRC_DEF) {
        if (bld_read_def (&b, o->source, err) == 0)
            ret = bld_from_def (&b, err);
    } else {
        ret = bld_from_image (&b, o->source, kind, err);
    }
    /* An interruption wins over whatever the interrupted step reported. */
    if (ret < 0 && build_interrupted ()) {
        capsa_error_free (err);
        build_check_interrupted (err);
    }
    if (b.rootfd >= 0)
        close (b.rootfd);
    if (b.workdir != NULL) {
        capsa_error_t cleanup = NULL;
        /* Files the build gave to subordinate ids are removed from inside
         * the namespace. */
        if (tree_remove (b.workdir, &cleanup) < 0 && b.ranges) {
            capsa_error_free (&cleanup);
            build_proc_remove_fakeroot (b.workdir, &cleanup);
        }
        if (cleanup != NULL) {
            if (ret == 0)
                *err = cleanup;
            else
                capsa_error_free (&cleanup);
            ret = -1;
        }
    }
    build_signals_end ();
    if (ret == 0)
        bld_info (&b, "Build complete: %s", b.out);
done:
    deffile_free (b.def);
    capsa_oci_config_free (&b.oci);
    free (b.out);
    free (b.workdir);
    free (b.rootfs);
    return ret;
}
