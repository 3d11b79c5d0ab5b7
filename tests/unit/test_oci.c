/* Unit tests of src/oci: references, digests, base64, WWW-Authenticate,
 * manifests and configs, credentials, the cache, the scripts, and layer
 * extraction (whiteouts and hostile tarballs, with and without openat2). */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci/oci_private.h"
#include "tap.h"

void oci_extract_force_fallback (bool on);

static char tmpdir[] = "/tmp/capsa-test-oci.XXXXXX";

/* ---- helpers ------------------------------------------------------------ */

struct ent {
    const char *name;
    char type; /* 'f' file, 'd' dir, 'l' symlink, 'h' hard link, 'c' char device */
    const char *data; /* contents or link target */
    int mode;
};

/* Write a tar (gzip when gz) of ENTS to a new temporary file; return its fd. */
static int
make_tar (const struct ent *ents, size_t n, bool gz)
{
    char path[256];
    snprintf (path, sizeof (path), "%s/layer.XXXXXX", tmpdir);
    int fd = mkstemp (path);
    unlink (path);
    struct archive *a = archive_write_new ();
    archive_write_set_format_pax_restricted (a);
    if (gz)
        archive_write_add_filter_gzip (a);
    archive_write_open_fd (a, fd);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new ();
        archive_entry_set_pathname (e, ents[i].name);
        archive_entry_set_mode (e, ents[i].mode ? ents[i].mode : 0644);
        archive_entry_set_uid (e, 0);
        archive_entry_set_gid (e, 0);
        switch (ents[i].type) {
        case 'd':
            archive_entry_set_filetype (e, AE_IFDIR);
            archive_entry_set_perm (e, ents[i].mode ? ents[i].mode : 0755);
            break;
        case 'l':
            archive_entry_set_filetype (e, AE_IFLNK);
            archive_entry_set_symlink (e, ents[i].data);
            break;
        case 'h':
            archive_entry_set_filetype (e, AE_IFREG);
            archive_entry_set_hardlink (e, ents[i].data);
            break;
        case 'c':
            archive_entry_set_filetype (e, AE_IFCHR);
            archive_entry_set_rdevmajor (e, 1);
            archive_entry_set_rdevminor (e, 3);
            break;
        default:
            archive_entry_set_filetype (e, AE_IFREG);
            archive_entry_set_size (e, ents[i].data ? (la_int64_t) strlen (ents[i].data) : 0);
        }
        archive_write_header (a, e);
        if (ents[i].type == 'f' && ents[i].data)
            archive_write_data (a, ents[i].data, strlen (ents[i].data));
        archive_entry_free (e);
    }
    archive_write_close (a);
    archive_write_free (a);
    return fd;
}

static int
new_root (const char *name)
{
    char path[256];
    snprintf (path, sizeof (path), "%s/%s", tmpdir, name);
    mkdir (path, 0755);
    return open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int
apply (int rootfd, const struct ent *ents, size_t n, bool as_root, char **msg)
{
    capsa_error_t err = NULL;
    int fd = make_tar (ents, n, n % 2 == 0);
    struct oci_extract_opts o = { .as_root = as_root, .what = "layer 1/1" };
    int r = oci_apply_layer (rootfd, fd, &o, &err);
    close (fd);
    if (msg)
        *msg = err ? xstrdup (err->msg) : NULL;
    capsa_error_free (&err);
    return r;
}

static bool
exists_at (int rootfd, const char *p)
{
    struct stat st;
    return fstatat (rootfd, p, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static char *
read_at (int rootfd, const char *p)
{
    static char buf[256];
    int fd = openat (rootfd, p, O_RDONLY | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    ssize_t n = read (fd, buf, sizeof (buf) - 1);
    close (fd);
    buf[n < 0 ? 0 : n] = '\0';
    return buf;
}

/* ---- tests -------------------------------------------------------------- */

static void
test_refs (void)
{
    struct capsa_oci_ref r;
    capsa_error_t err = NULL;
    char *s;

    CHECK (capsa_oci_ref_parse ("127.0.0.1:5000/test/bb:1", &r, &err) == 0, "ref: host:port/repo:tag");
    CHECK_STR (r.registry, "127.0.0.1:5000", "ref: registry");
    CHECK_STR (r.repository, "test/bb", "ref: repository");
    CHECK_STR (r.tag, "1", "ref: tag");
    capsa_oci_ref_free (&r);
    CHECK (capsa_oci_ref_parse ("alpine", &r, &err) == 0 && strcmp (r.registry, "docker.io") == 0
               && strcmp (r.repository, "library/alpine") == 0 && strcmp (r.tag, "latest") == 0,
           "ref: docker hub defaults");
    capsa_oci_ref_free (&r);
    CHECK (capsa_oci_ref_parse ("localhost/x/y", &r, &err) == 0 && strcmp (r.registry, "localhost") == 0,
           "ref: localhost is a registry");
    capsa_oci_ref_free (&r);
    CHECK (capsa_oci_ref_parse ("ghcr.io/apptainer/ubuntu_ping:v1.0", &r, &err) == 0
               && strcmp (r.repository, "apptainer/ubuntu_ping") == 0,
           "ref: ghcr.io");
    s = capsa_oci_ref_string (&r);
    CHECK_STR (s, "ghcr.io/apptainer/ubuntu_ping:v1.0", "ref: string");
    free (s);
    capsa_oci_ref_free (&r);
    CHECK (capsa_oci_ref_parse ("h:1/r@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", &r, &err)
                   == 0
               && r.tag == NULL && r.digest != NULL,
           "ref: digest");
    capsa_oci_ref_free (&r);
    CHECK (capsa_oci_ref_parse ("h:1/r@sha512:00", &r, &err) < 0 && strstr (err->msg, "sha256"), "ref: only sha256");
    capsa_error_free (&err);
    CHECK (capsa_oci_ref_parse ("h:1/Upper/x:1", &r, &err) < 0, "ref: upper-case repository refused");
    capsa_error_free (&err);
    CHECK (capsa_oci_ref_parse ("h:1/a//b:1", &r, &err) < 0, "ref: empty component refused");
    capsa_error_free (&err);
    CHECK (capsa_oci_ref_parse ("h:1/a:b:c", &r, &err) < 0, "ref: bad tag refused");
    capsa_error_free (&err);
    s = capsa_oras_default_name ("oras://127.0.0.1:5000/test/bb:1");
    CHECK_STR (s, "bb_1.sif", "oras default file name");
    free (s);
}

static void
test_digest_base64 (void)
{
    char d[OCI_DIGEST_LEN + 1];
    oci_digest_buf ("{}", 2, d);
    CHECK_STR (d, OCI_EMPTY_CONFIG_DIGEST, "sha256 of {}");
    CHECK (oci_digest_valid (d), "digest valid");
    CHECK (!oci_digest_valid ("sha256:ABC"), "digest: short/upper refused");
    char *b = oci_base64_encode ("user:pa:ss", 10), *back = NULL;
    size_t n = 0;
    CHECK_STR (b, "dXNlcjpwYTpzcw==", "base64 encode");
    CHECK (oci_base64_decode (b, &back, &n) == 0 && n == 10 && strcmp (back, "user:pa:ss") == 0, "base64 round trip");
    free (b);
    free (back);
    CHECK (oci_base64_decode ("a=bc", &back, &n) < 0, "base64: misplaced padding refused");
    CHECK (oci_base64_decode ("abc", &back, &n) < 0, "base64: bad length refused");
}

static void
test_challenge (void)
{
    struct oci_challenge c;
    capsa_error_t err = NULL;
    CHECK (oci_challenge_parse ("Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
                                "scope=\"repository:library/alpine:pull\"",
                                &c, &err)
               == 0,
           "challenge: bearer");
    CHECK_STR (c.scheme, "bearer", "challenge: scheme lower-cased");
    CHECK_STR (c.realm, "https://auth.docker.io/token", "challenge: realm");
    CHECK_STR (c.service, "registry.docker.io", "challenge: service");
    CHECK_STR (c.scope, "repository:library/alpine:pull", "challenge: scope");
    oci_challenge_free (&c);
    CHECK (oci_challenge_parse ("Basic realm=\"a \\\"q\\\" b\"", &c, &err) == 0 && strcmp (c.scheme, "basic") == 0
               && strcmp (c.realm, "a \"q\" b") == 0,
           "challenge: basic with escapes");
    oci_challenge_free (&c);
    CHECK (oci_challenge_parse ("Bearer realm=x, error=insufficient_scope", &c, &err) == 0 && strcmp (c.realm, "x") == 0
               && strcmp (c.error, "insufficient_scope") == 0,
           "challenge: tokens and spaces");
    oci_challenge_free (&c);
    CHECK (oci_challenge_parse ("Bearer realm=\"open", &c, &err) < 0, "challenge: unterminated quote refused");
    capsa_error_free (&err);
    CHECK (oci_challenge_parse ("", &c, &err) < 0, "challenge: empty refused");
    capsa_error_free (&err);
}

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"

static void
test_manifest (void)
{
    struct oci_manifest m;
    capsa_error_t err = NULL;
    const char *man = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                      "\"config\":{\"mediaType\":\"application/vnd.sylabs.sif.config.v1+json\",\"digest\":\"" D1
                      "\",\"size\":2},\"layers\":[{\"mediaType\":\"application/vnd.sylabs.sif.layer.v1.sif\","
                      "\"digest\":\"" D2 "\",\"size\":42,\"annotations\":{\"org.opencontainers.image.title\":\"x.sif\"}}]}";
    CHECK (oci_manifest_parse (man, strlen (man), NULL, &m, &err) == 0 && m.kind == OCI_KIND_MANIFEST && m.nlayers == 1
               && m.layers[0].size == 42 && strcmp (m.layers[0].title, "x.sif") == 0,
           "manifest: ORAS SIF manifest");
    oci_manifest_free (&m);
    const char *idx = "{\"schemaVersion\":2,\"manifests\":[{\"digest\":\"" D1
                      "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}},"
                      "{\"digest\":\"" D2 "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}";
    const struct oci_descriptor *d = NULL;
    CHECK (oci_manifest_parse (idx, strlen (idx), DOCKER_MT_LIST, &m, &err) == 0 && m.kind == OCI_KIND_INDEX
               && m.nmanifests == 2,
           "manifest: index");
    CHECK (oci_index_select (&m, "amd64", &d, &err) == 0 && strcmp (d->digest, D2) == 0, "index: amd64 picked");
    CHECK (oci_index_select (&m, "arm64v8", &d, &err) == 0 && strcmp (d->digest, D1) == 0, "index: arm64v8 picked");
    CHECK (oci_index_select (&m, "s390x", &d, &err) < 0 && strstr (err->msg, "linux/amd64") != NULL,
           "index: missing platform lists what is there");
    capsa_error_free (&err);
    oci_manifest_free (&m);
    const char *bad[] = {
        "{\"schemaVersion\":1,\"fsLayers\":[]}",
        "{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:12\"},\"layers\":[]}",
        "{\"schemaVersion\":2,\"config\":{\"digest\":\"" D1 "\",\"size\":-1},\"layers\":[]}",
        "{\"schemaVersion\":2,\"config\":{\"digest\":\"" D1 "\"},\"layers\":{}}",
        "{\"schemaVersion\":2,\"config\":{\"digest\":\"" D1 "\"},\"layers\":[]} trailing",
        "[1,2]",
        "{\"schemaVersion\":\"2\"}",
    };
    for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
        char name[64];
        snprintf (name, sizeof (name), "manifest: invalid document %zu refused", i);
        CHECK (oci_manifest_parse (bad[i], strlen (bad[i]), NULL, &m, &err) < 0 && err != NULL, name);
        capsa_error_free (&err);
    }
    /* Deep nesting stops at the depth limit instead of recursing on. */
    size_t depth = 100000;
    char *deep = xmalloc (2 * depth + 1);
    memset (deep, '[', depth);
    memset (deep + depth, ']', depth);
    deep[2 * depth] = '\0';
    CHECK (oci_manifest_parse (deep, 2 * depth, NULL, &m, &err) < 0, "manifest: deep nesting refused");
    capsa_error_free (&err);
    free (deep);

    struct capsa_oci_config c = { 0 };
    const char *cfg = "{\"architecture\":\"amd64\",\"config\":{\"Env\":[\"PATH=/bin\",\"A=b c\"],"
                      "\"Entrypoint\":[\"/e\"],\"Cmd\":[\"x\",\"y\"],\"WorkingDir\":\"/w\",\"Labels\":{\"k\":\"v\"}}}";
    CHECK (oci_config_parse (cfg, strlen (cfg), &c, &err) == 0 && c.env.n == 2 && c.entrypoint.n == 1 && c.cmd.n == 2
               && strcmp (c.workingdir, "/w") == 0 && strcmp (c.arch, "amd64") == 0 && c.labels.n == 1,
           "config: Env, Entrypoint, Cmd, WorkingDir, Labels");
    char *rs = capsa_oci_runscript (&c), *es = capsa_oci_envscript (&c);
    CHECK (strstr (rs, "set -- 'x' 'y'") && strstr (rs, "set -- '/e' \"$@\"") && strstr (rs, "cd '/w'"),
           "runscript: CMD, ENTRYPOINT, WorkingDir");
    CHECK (strstr (es, "export A='b c'\n") != NULL, "envscript: quoted values");
    free (rs);
    free (es);
    capsa_oci_config_free (&c);
    const char *q = "{\"config\":{\"Env\":[\"X=it's\",\"1BAD=x\",\"noequal\"],\"Cmd\":null}}";
    CHECK (oci_config_parse (q, strlen (q), &c, &err) == 0, "config: null Cmd accepted");
    es = capsa_oci_envscript (&c);
    CHECK (strstr (es, "export X='it'\\''s'") && !strstr (es, "1BAD") && !strstr (es, "noequal"),
           "envscript: quotes escaped, invalid names skipped");
    free (es);
    capsa_oci_config_free (&c);
    const char *badcfg = "{\"config\":{\"Env\":[1]}}";
    CHECK (oci_config_parse (badcfg, strlen (badcfg), &c, &err) < 0, "config: non-string Env refused");
    capsa_error_free (&err);
    capsa_oci_config_free (&c);
}

static void
test_clean_path (void)
{
    char *p = NULL;
    capsa_error_t err = NULL;
    CHECK (oci_clean_path ("./a//b/./c/", &p, &err) == 0 && strcmp (p, "a/b/c") == 0, "path: cleaned");
    free (p);
    CHECK (oci_clean_path ("./", &p, &err) == 0 && p == NULL, "path: the root");
    CHECK (oci_clean_path ("a/../../etc", &p, &err) < 0, "path: .. refused");
    capsa_error_free (&err);
    CHECK (oci_clean_path ("/etc/passwd", &p, &err) < 0, "path: absolute refused");
    capsa_error_free (&err);
    CHECK (oci_clean_path ("a/..b/c..", &p, &err) == 0 && strcmp (p, "a/..b/c..") == 0, "path: dots in names kept");
    free (p);
}

static void
test_extract (bool fallback)
{
    const char *sfx = fallback ? " (no openat2)" : "";
    char name[160], root_name[32];
    char *msg = NULL;
    snprintf (root_name, sizeof (root_name), "root%d", fallback);
    oci_extract_force_fallback (fallback);
    int root = new_root (root_name);

    const struct ent l1[] = {
        { "./etc", 'd', NULL, 0 },         { "etc/gone", 'f', "x", 0 },       { "etc/keep", 'f', "k", 0 },
        { "data/old/a", 'f', "a", 0 },     { "usr/lib", 'd', NULL, 0 },       { "lib", 'l', "usr/lib", 0 },
        { "bin/su", 'f', "su", 04755 },    { "dev/null", 'c', NULL, 0 },      { "ro", 'd', NULL, 0555 },
        { "ro/f", 'f', "in-ro", 0444 },
    };
    snprintf (name, sizeof (name), "extract: base layer%s", sfx);
    CHECK (apply (root, l1, ARRAY_SIZE (l1), false, &msg) == 0, name);
    free (msg);
    struct stat st;
    snprintf (name, sizeof (name), "extract: setuid bit dropped without root%s", sfx);
    CHECK (fstatat (root, "bin/su", &st, 0) == 0 && (st.st_mode & 07777) == 0755, name);
    snprintf (name, sizeof (name), "extract: device node skipped without root%s", sfx);
    CHECK (!exists_at (root, "dev/null"), name);
    snprintf (name, sizeof (name), "extract: directories stay writable by their owner%s", sfx);
    CHECK (fstatat (root, "ro", &st, 0) == 0 && (st.st_mode & 0700) == 0700, name);

    const struct ent l2[] = {
        { "etc/.wh.gone", 'f', NULL, 0 }, { "data/.wh..wh..opq", 'f', NULL, 0 }, { "data/new", 'f', "n", 0 },
        { "lib/libx.so", 'f', "lib", 0 }, { "hl", 'h', "etc/keep", 0 },       { "etc/keep2", 'h', "./etc/keep", 0 },
    };
    int r = apply (root, l2, ARRAY_SIZE (l2), false, &msg);
    if (!fallback) {
        snprintf (name, sizeof (name), "extract: upper layer%s", sfx);
        CHECK (r == 0, name);
        CHECK (!exists_at (root, "etc/gone") && exists_at (root, "etc/keep"), "extract: whiteout removes the file");
        CHECK (!exists_at (root, "data/old") && exists_at (root, "data/new"), "extract: opaque directory emptied");
        CHECK (read_at (root, "usr/lib/libx.so") && strcmp (read_at (root, "usr/lib/libx.so"), "lib") == 0,
               "extract: a symlinked parent inside the root is followed");
        struct stat a, b;
        CHECK (fstatat (root, "hl", &a, 0) == 0 && fstatat (root, "etc/keep", &b, 0) == 0 && a.st_ino == b.st_ino,
               "extract: hard link inside the root");
    } else {
        CHECK (r < 0 && msg && strstr (msg, "'lib' is a symbolic link"), "extract: without openat2 symlinked parents are refused");
    }
    free (msg);

    /* Hostile layers; a canary directory outside the root must stay empty. */
    char canary[256], abs_target[300];
    snprintf (canary, sizeof (canary), "%s/canary%d", tmpdir, fallback);
    mkdir (canary, 0755);
    snprintf (abs_target, sizeof (abs_target), "%s", canary);
    struct {
        const char *what;
        struct ent e[2];
        size_t n;
    } evil[] = {
        { "'..' entry", { { "../../canary/evil", 'f', "e", 0 } }, 1 },
        { "absolute entry", { { "/tmp/capsa-unit-evil", 'f', "e", 0 } }, 1 },
        { "symlink to an absolute path, then a file through it", { { "esc", 'l', abs_target, 0 }, { "esc/evil", 'f', "e", 0 } }, 2 },
        { "symlink climbing out, then a file through it",
          { { "esc2", 'l', "../../../../../../../../../../../../../tmp", 0 }, { "esc2/capsa-unit-evil", 'f', "e", 0 } },
          2 },
        { "hard link out of the root", { { "hl2", 'h', "../../../../etc/passwd", 0 } }, 1 },
        { "hard link to an absolute path", { { "hl3", 'h', "/etc/passwd", 0 } }, 1 },
        { "hard link to a missing file", { { "hl4", 'h', "nope", 0 } }, 1 },
        { "whiteout with '..'", { { "../.wh.x", 'f', NULL, 0 } }, 1 },
    };
    for (size_t i = 0; i < ARRAY_SIZE (evil); i++) {
        snprintf (name, sizeof (name), "extract: %s refused with a clear error%s", evil[i].what, sfx);
        r = apply (root, evil[i].e, evil[i].n, true, &msg);
        CHECK (r < 0 && msg && strstr (msg, "layer 1/1: entry '"), name);
        if (r == 0 || !msg)
            printf ("# %s\n", msg ? msg : "(accepted)");
        free (msg);
    }
    snprintf (name, sizeof (name), "extract: nothing written outside%s", sfx);
    char evilpath[300];
    snprintf (evilpath, sizeof (evilpath), "%s/evil", canary);
    CHECK (access (evilpath, F_OK) < 0 && access ("/tmp/capsa-unit-evil", F_OK) < 0, name);

    /* A planted symlink as the last component is replaced, not followed. */
    const struct ent plant[] = { { "victim", 'l', abs_target, 0 }, { "victim", 'f', "safe", 0 } };
    snprintf (name, sizeof (name), "extract: a symlink in place of a file is replaced, not followed%s", sfx);
    CHECK (apply (root, plant, 2, true, NULL) == 0 && fstatat (root, "victim", &st, AT_SYMLINK_NOFOLLOW) == 0
               && S_ISREG (st.st_mode),
           name);
    close (root);
    oci_extract_force_fallback (false);
}

static void
test_creds (void)
{
    char path[256];
    capsa_error_t err = NULL;
    char *u = NULL, *p = NULL;
    bool found = false;
    snprintf (path, sizeof (path), "%s/home/.capsa/registry.json", tmpdir);
    CHECK (capsa_creds_get (path, "h:1", &u, &p, &found, &err) == 0 && !found, "creds: missing file is empty");
    CHECK (capsa_creds_set (path, "h:1", "me", "s3:cret", &err) == 0, "creds: set");
    struct stat st;
    CHECK (stat (path, &st) == 0 && (st.st_mode & 0777) == 0600, "creds: file mode 0600");
    CHECK (capsa_creds_get (path, "h:1", &u, &p, &found, &err) == 0 && found && strcmp (u, "me") == 0
               && strcmp (p, "s3:cret") == 0,
           "creds: get");
    free (u);
    free (p);
    CHECK (capsa_creds_set (path, "docker.io", "hub", "x", &err) == 0
               && capsa_creds_get (path, "registry-1.docker.io", &u, &p, &found, &err) == 0 && found,
           "creds: docker hub aliases");
    free (u);
    free (p);
    struct strv l = { 0 };
    CHECK (capsa_creds_list (path, &l, &err) == 0 && l.n == 2, "creds: list");
    strv_free (&l);
    CHECK (capsa_creds_remove (path, "h:1", &found, &err) == 0 && found
               && capsa_creds_get (path, "h:1", &u, &p, &found, &err) == 0 && !found,
           "creds: remove");
    chmod (path, 0644);
    CHECK (capsa_creds_get (path, "docker.io", &u, &p, &found, &err) < 0 && strstr (err->msg, "chmod 0600"),
           "creds: a file others can read is refused");
    capsa_error_free (&err);
}

static int fill_count;

static int
fill_ok (int fd, void *data, capsa_error_t *err)
{
    (void) err;
    fill_count++;
    if (data)
        usleep (200000);
    return write_all (fd, "{}", 2) == 2 ? 0 : -1;
}

static int
fill_bad (int fd, void *data, capsa_error_t *err)
{
    (void) data;
    (void) !write (fd, "partial", 7);
    return capsa_error_make (err, EBADMSG, "does not match its digest");
}

static void
test_cache (void)
{
    char dir[256];
    struct oci_cache *c = NULL;
    capsa_error_t err = NULL;
    char *path = NULL;
    bool filled = false;
    snprintf (dir, sizeof (dir), "%s/cache/sub", tmpdir);
    CHECK (oci_cache_open (dir, &c, &err) == 0, "cache: created");
    struct stat st;
    CHECK (stat (dir, &st) == 0 && (st.st_mode & 0777) == 0700, "cache: mode 0700");
    CHECK (oci_cache_ensure (c, "blob", D1, fill_bad, NULL, &path, &filled, &err) < 0, "cache: failed fill is an error");
    capsa_error_free (&err);
    size_t n = 0;
    struct capsa_cache_entry *e = NULL;
    char sub[300];
    snprintf (sub, sizeof (sub), "%s/blob/sha256", dir);
    int files = 0;
    DIR *d = opendir (sub);
    for (struct dirent *de; d && (de = readdir (d));)
        files += de->d_name[0] != '.' || (strcmp (de->d_name, ".") && strcmp (de->d_name, ".."));
    if (d)
        closedir (d);
    CHECK (files == 0, "cache: nothing kept after a failed fill");
    /* Four processes at once: one fill. */
    for (int i = 0; i < 4; i++) {
        if (fork () == 0) {
            char *pp = NULL;
            capsa_error_t e2 = NULL;
            struct oci_cache *cc = NULL;
            fill_count = 0;
            if (oci_cache_open (dir, &cc, &e2) < 0 || oci_cache_ensure (cc, "blob", D2, fill_ok, cc, &pp, NULL, &e2) < 0)
                _exit (2);
            _exit (fill_count);
        }
    }
    int fills = 0, status;
    while (wait (&status) > 0)
        fills += WIFEXITED (status) ? WEXITSTATUS (status) : 100;
    CHECK (fills == 1, "cache: concurrent callers share one fill");
    CHECK (oci_cache_ensure (c, "blob", D2, fill_ok, NULL, &path, &filled, &err) == 0 && !filled, "cache: reused");
    free (path);
    CHECK (oci_cache_set_ref (c, "blob", "h/r:1", D2, &err) == 0, "cache: reference recorded");
    char *got = oci_cache_get_ref (c, "blob", "h/r:1");
    CHECK_STR (got, D2, "cache: reference read back");
    free (got);
    CHECK (capsa_cache_list (dir, &e, &n, &err) == 0 && n == 1 && strcmp (e[0].ref, "h/r:1") == 0, "cache: list");
    capsa_cache_entries_free (e, n);
    size_t cnt = 0;
    CHECK (capsa_cache_clean (dir, NULL, false, &cnt, NULL, &err) == 0 && cnt == 1, "cache: clean");
    CHECK (capsa_cache_list (dir, &e, &n, &err) == 0 && n == 0, "cache: empty after clean");
    capsa_cache_entries_free (e, n);
    oci_cache_close (c);
}

int
main (void)
{
    if (mkdtemp (tmpdir) == NULL)
        return 2;
    test_refs ();
    test_digest_base64 ();
    test_challenge ();
    test_manifest ();
    test_clean_path ();
    test_extract (false);
    test_extract (true);
    test_creds ();
    test_cache ();
    char cmd[300];
    snprintf (cmd, sizeof (cmd), "rm -rf %s", tmpdir);
    if (system (cmd) != 0)
        return 2;
    return tap_done ();
}
