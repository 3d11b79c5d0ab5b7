/* Unit tests for src/runtime/conf.c: capsa.conf parsing (defaults, every
 * directive and its values, exact error messages with line numbers) and
 * the trusted-file checks of capsa_conf_load / capsa_open_trusted_file on
 * real files (symlink, directory, NUL byte, modes, ownership). */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/utils.h"
#include "runtime/conf.h"
#include "tap.h"

static char tmpdir[] = "/tmp/capsa-test-conf.XXXXXX";

/* Parse TEXT into a fresh conf; returns the error message (owned) or NULL. */
static char *
parse_msg (struct capsa_conf *c, const char *text)
{
    capsa_error_t err = NULL;
    char *msg = NULL;

    capsa_conf_init (c);
    if (capsa_conf_parse (c, "capsa.conf", text, &err) < 0) {
        msg = xstrdup (err && err->msg ? err->msg : "(no message)");
        capsa_error_free (&err);
    }
    return msg;
}

/* Does TEXT parse without error? */
static bool
parses (const char *text)
{
    struct capsa_conf c;
    cleanup_free char *msg = parse_msg (&c, text);
    capsa_conf_free (&c);
    return msg == NULL;
}

/* The Nth bind path, or "" when there are fewer. */
static const char *
bind_at (const struct capsa_conf *c, size_t n)
{
    return n < c->bind_paths.n ? c->bind_paths.v[n] : "";
}

static bool
contains (const char *hay, const char *needle)
{
    return hay != NULL && strstr (hay, needle) != NULL;
}

/* ---- defaults ------------------------------------------------------------- */

static void
test_defaults (void)
{
    struct capsa_conf c;
    capsa_conf_init (&c);
    CHECK (c.allow_setuid && c.allow_pid_ns && c.allow_ipc_ns && c.allow_uts_ns && c.allow_net_ns
               && c.allow_user_ns,
           "defaults: every 'allow ... ns' and 'allow setuid' is yes");
    CHECK (c.mount_proc && c.mount_sys && c.mount_home && c.mount_tmp, "defaults: mount proc/sys/home/tmp yes");
    CHECK (c.mount_dev == MOUNT_DEV_MINIMAL, "defaults: mount dev = minimal");
    CHECK (c.user_bind_control, "defaults: user bind control = yes");
    CHECK (c.config_passwd && c.config_group && c.config_resolv_conf, "defaults: config passwd/group/resolv_conf yes");
    CHECK (c.root_default_caps == ROOT_CAPS_FULL, "defaults: root default capabilities = full");
    CHECK (c.max_loop_devices == 256, "defaults: max loop devices = 256");
    CHECK (c.setuid_mount_squashfs == TRI_IFLIMITED, "defaults: allow setuid-mount squashfs = iflimited");
    CHECK (c.setuid_mount_encrypted == TRI_IFLIMITED, "defaults: allow setuid-mount encrypted = iflimited");
    CHECK (c.bind_paths.n == 0 && c.bind_paths.v == NULL, "defaults: no bind path");
    capsa_conf_free (&c);

    cleanup_free char *msg = parse_msg (&c, "");
    CHECK (msg == NULL, "empty text parses");
    CHECK (c.mount_dev == MOUNT_DEV_MINIMAL && c.max_loop_devices == 256, "empty text keeps the defaults");
    capsa_conf_free (&c);

    cleanup_free char *msg2 = parse_msg (&c, "# only a comment\n\n   \n\t# indented comment\n");
    CHECK (msg2 == NULL, "comments and blank lines only: parses");
    capsa_conf_free (&c);
}

/* ---- every directive ------------------------------------------------------ */

struct bool_directive {
    const char *key;
    size_t off;
};

#define B(k, f) { k, offsetof (struct capsa_conf, f) }
static const struct bool_directive bools[] = {
    B ("allow setuid", allow_setuid),
    B ("allow pid ns", allow_pid_ns),
    B ("allow ipc ns", allow_ipc_ns),
    B ("allow uts ns", allow_uts_ns),
    B ("allow net ns", allow_net_ns),
    B ("allow user ns", allow_user_ns),
    B ("mount proc", mount_proc),
    B ("mount sys", mount_sys),
    B ("mount home", mount_home),
    B ("mount tmp", mount_tmp),
    B ("user bind control", user_bind_control),
    B ("config passwd", config_passwd),
    B ("config group", config_group),
    B ("config resolv_conf", config_resolv_conf),
};
#undef B

static void
test_bool_directives (void)
{
    for (size_t i = 0; i < ARRAY_SIZE (bools); i++) {
        struct capsa_conf c;
        cleanup_free char *no = xasprintf ("%s = no\n", bools[i].key);
        cleanup_free char *yes = xasprintf ("%s = no\n%s = yes\n", bools[i].key, bools[i].key);
        cleanup_free char *bad = xasprintf ("%s = true\n", bools[i].key);
        cleanup_free char *want = xasprintf ("capsa.conf:1: 'true' is not a valid value for '%s' (allowed: yes, no)",
                                             bools[i].key);
        cleanup_free char *name = NULL;

        cleanup_free char *m1 = parse_msg (&c, no);
        name = xasprintf ("'%s = no' sets false", bools[i].key);
        CHECK (m1 == NULL && *(bool *) ((char *) &c + bools[i].off) == false, name);
        capsa_conf_free (&c);
        free (name);

        cleanup_free char *m2 = parse_msg (&c, yes);
        name = xasprintf ("'%s = yes' after 'no' sets true (last one wins)", bools[i].key);
        CHECK (m2 == NULL && *(bool *) ((char *) &c + bools[i].off) == true, name);
        capsa_conf_free (&c);
        free (name);

        cleanup_free char *m3 = parse_msg (&c, bad);
        name = xasprintf ("'%s = true' refused with the exact message", bools[i].key);
        CHECK_STR (m3, want, name);
        capsa_conf_free (&c);
        free (name);
        name = NULL;
    }
    /* Values are case-sensitive. */
    CHECK (!parses ("mount proc = Yes\n"), "bool values are case-sensitive ('Yes' refused)");
    /* As in Apptainer, "key =" without a value keeps the default. */
    struct capsa_conf ce;
    cleanup_free char *me = parse_msg (&ce, "mount proc =\nmount home = \t\n");
    CHECK (me == NULL && ce.mount_proc && ce.mount_home, "an empty value keeps the default (as Apptainer)");
    capsa_conf_free (&ce);
}

static void
test_enum_directives (void)
{
    struct capsa_conf c;

    static const struct {
        const char *text;
        enum capsa_mount_dev want;
    } devs[] = {
        { "mount dev = yes", MOUNT_DEV_YES },
        { "mount dev = no", MOUNT_DEV_NO },
        { "mount dev = minimal", MOUNT_DEV_MINIMAL },
    };
    for (size_t i = 0; i < ARRAY_SIZE (devs); i++) {
        cleanup_free char *m = parse_msg (&c, devs[i].text);
        cleanup_free char *name = xasprintf ("'%s'", devs[i].text);
        CHECK (m == NULL && c.mount_dev == devs[i].want, name);
        capsa_conf_free (&c);
    }
    {
        cleanup_free char *m = parse_msg (&c, "mount dev = full");
        CHECK_STR (m, "capsa.conf:1: 'full' is not a valid value for 'mount dev' (allowed: yes, no, minimal)",
                   "'mount dev = full' refused with the exact message");
        capsa_conf_free (&c);
    }

    static const struct {
        const char *text;
        enum capsa_root_caps want;
    } caps[] = {
        { "root default capabilities = full", ROOT_CAPS_FULL },
        { "root default capabilities = file", ROOT_CAPS_FILE },
        { "root default capabilities = no", ROOT_CAPS_NO },
    };
    for (size_t i = 0; i < ARRAY_SIZE (caps); i++) {
        cleanup_free char *m = parse_msg (&c, caps[i].text);
        cleanup_free char *name = xasprintf ("'%s'", caps[i].text);
        CHECK (m == NULL && c.root_default_caps == caps[i].want, name);
        capsa_conf_free (&c);
    }
    {
        cleanup_free char *m = parse_msg (&c, "root default capabilities = yes");
        CHECK_STR (m,
                   "capsa.conf:1: 'yes' is not a valid value for 'root default capabilities' (allowed: full, file, "
                   "no)",
                   "'root default capabilities = yes' refused with the exact message");
        capsa_conf_free (&c);
    }

    static const char *const tri_keys[] = { "allow setuid-mount squashfs", "allow setuid-mount encrypted" };
    static const struct {
        const char *v;
        enum capsa_tristate want;
    } tris[] = { { "yes", TRI_YES }, { "no", TRI_NO }, { "iflimited", TRI_IFLIMITED } };
    for (size_t k = 0; k < ARRAY_SIZE (tri_keys); k++) {
        for (size_t i = 0; i < ARRAY_SIZE (tris); i++) {
            cleanup_free char *text = xasprintf ("%s = %s", tri_keys[k], tris[i].v);
            cleanup_free char *m = parse_msg (&c, text);
            cleanup_free char *name = xasprintf ("'%s'", text);
            enum capsa_tristate got = k == 0 ? c.setuid_mount_squashfs : c.setuid_mount_encrypted;
            enum capsa_tristate other = k == 0 ? c.setuid_mount_encrypted : c.setuid_mount_squashfs;
            CHECK (m == NULL && got == tris[i].want && other == TRI_IFLIMITED, name);
            capsa_conf_free (&c);
        }
        cleanup_free char *text = xasprintf ("%s = limited", tri_keys[k]);
        cleanup_free char *want = xasprintf (
            "capsa.conf:1: 'limited' is not a valid value for '%s' (allowed: yes, no, iflimited)", tri_keys[k]);
        cleanup_free char *m = parse_msg (&c, text);
        cleanup_free char *name = xasprintf ("'%s' refused with the exact message", text);
        CHECK_STR (m, want, name);
        capsa_conf_free (&c);
    }
}

static void
test_long_directive (void)
{
    struct capsa_conf c;
    static const struct {
        const char *v;
        long want;
    } ok[] = { { "0", 0 }, { "1", 1 }, { "4096", 4096 }, { "17", 17 } };
    for (size_t i = 0; i < ARRAY_SIZE (ok); i++) {
        cleanup_free char *text = xasprintf ("max loop devices = %s", ok[i].v);
        cleanup_free char *m = parse_msg (&c, text);
        cleanup_free char *name = xasprintf ("'%s'", text);
        CHECK (m == NULL && c.max_loop_devices == ok[i].want, name);
        capsa_conf_free (&c);
    }
    static const char *const bad[] = { "4097", "-1", "abc", "12abc", "99999999999999999999999", "1 2" };
    for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
        cleanup_free char *text = xasprintf ("max loop devices = %s", bad[i]);
        cleanup_free char *want = xasprintf (
            "capsa.conf:1: '%s' is not a valid value for 'max loop devices' (allowed: an integer from 0 to 4096)",
            bad[i]);
        cleanup_free char *m = parse_msg (&c, text);
        cleanup_free char *name = xasprintf ("'%s' refused with the exact message", text);
        CHECK_STR (m, want, name);
        CHECK (c.max_loop_devices == 256, "a refused max loop devices leaves the default");
        capsa_conf_free (&c);
    }
}

static void
test_bind_path (void)
{
    struct capsa_conf c;
    cleanup_free char *m1
        = parse_msg (&c, "bind path = /opt\n# between\nbind path = /etc/hosts:/etc/hosts2\nbind path = /srv\n"
                         "bind path = /opt\n");
    CHECK (m1 == NULL, "several 'bind path' lines parse");
    CHECK (c.bind_paths.n == 4, "every bind path entry kept, repeated ones too");
    CHECK_STR (bind_at (&c, 0), "/opt", "bind path 1 in file order");
    CHECK_STR (bind_at (&c, 1), "/etc/hosts:/etc/hosts2",
               "bind path 2 keeps ':DESTINATION'");
    CHECK_STR (bind_at (&c, 2), "/srv", "bind path 3 in file order");
    CHECK_STR (bind_at (&c, 3), "/opt", "bind path 4: the repeat of 1");
    CHECK (c.bind_paths.n == 4 && c.bind_paths.v[4] == NULL, "bind path list NULL-terminated");
    capsa_conf_free (&c);

    cleanup_free char *m2 = parse_msg (&c, "bind path = /a\nbind path = opt\n");
    CHECK_STR (m2,
               "capsa.conf:2: 'opt' is not a valid value for 'bind path' (allowed: an absolute path, optionally "
               "followed by :DESTINATION and then :ro or :rw)",
               "relative bind path refused with the exact message");
    capsa_conf_free (&c);

    CHECK (!parses ("bind path = ./opt"), "bind path './opt' refused");
    CHECK (parses ("bind path = /a:/b:ro") && parses ("bind path = /a:/b:rw"), "bind path SRC:DST:ro and :rw parse");
    CHECK (!parses ("bind path = /a:/b:nosuid"), "bind path with a third field other than ro/rw refused");
    CHECK (!parses ("bind path = /opt/../etc"), "bind path with '/../' refused");
    cleanup_free char *m3 = parse_msg (&c, "bind path =\n");
    CHECK (m3 == NULL && c.bind_paths.n == 0, "an empty bind path is ignored (as Apptainer)");
    capsa_conf_free (&c);
    cleanup_free char *m4 = parse_msg (&c, "bind path = /a, /b:/c ,/d\nbind path = /e\n");
    CHECK (m4 == NULL && c.bind_paths.n == 4 && strcmp (bind_at (&c, 0), "/a") == 0
               && strcmp (bind_at (&c, 1), "/b:/c") == 0 && strcmp (bind_at (&c, 2), "/d") == 0
               && strcmp (bind_at (&c, 3), "/e") == 0,
           "bind path: comma-separated entries, as Apptainer splits them");
    capsa_conf_free (&c);
    CHECK (!parses ("bind path = /a,rel\n"), "bind path: one bad entry of a list refuses the line");
    CHECK (!parses ("bind path = ,\n"), "bind path: only commas refused");
}

/* ---- line numbers and syntax errors --------------------------------------- */

static void
test_errors (void)
{
    struct capsa_conf c;

    cleanup_free char *m1 = parse_msg (&c,
                                       "# capsa.conf\n"           /* 1 */
                                       "\n"                       /* 2 */
                                       "allow setuid = yes\n"     /* 3 */
                                       "   # indented comment\n"  /* 4 */
                                       "\t\n"                     /* 5 */
                                       "mount proc = no\n"        /* 6 */
                                       "\n"                       /* 7 */
                                       "  mount dev = maybe  \n"  /* 8 */
                                       "mount sys = no\n");       /* 9 */
    CHECK_STR (m1, "capsa.conf:8: 'maybe' is not a valid value for 'mount dev' (allowed: yes, no, minimal)",
               "bad value: exact message, line counts comments and blank lines");
    CHECK (c.mount_proc == false, "lines before the error were applied");
    CHECK (c.mount_sys == true, "lines after the error were not applied");
    capsa_conf_free (&c);

    cleanup_free char *m2 = parse_msg (&c, "\n\n\nmount tmp = no");
    CHECK_STR (m2 == NULL ? "ok" : m2, "ok", "last line without a newline parses");
    CHECK (c.mount_tmp == false, "last line without a newline is applied");
    capsa_conf_free (&c);

    cleanup_free char *m2b = parse_msg (&c, "\n\n\nmount tmp = nope");
    CHECK_STR (m2b, "capsa.conf:4: 'nope' is not a valid value for 'mount tmp' (allowed: yes, no)",
               "error on a last line without a newline: right line number");
    capsa_conf_free (&c);

    cleanup_free char *m3 = parse_msg (&c, "# x\nallow setuid = yes\nenable teleport = yes\n");
    CHECK_STR (m3, "capsa.conf:3: unknown directive 'enable teleport'", "unknown directive: exact message");
    capsa_conf_free (&c);

    cleanup_free char *m4 = parse_msg (&c, "mount proc = yes\n\n   mount sys   \n");
    CHECK_STR (m4, "capsa.conf:3: expected 'key = value', got 'mount sys'", "line without '=': exact message");
    capsa_conf_free (&c);

    cleanup_free char *m5 = parse_msg (&c, "= yes\n");
    CHECK_STR (m5, "capsa.conf:1: unknown directive ''", "line with an empty key refused");
    capsa_conf_free (&c);

    cleanup_free char *m6 = parse_msg (&c, "Mount Proc = yes\n");
    CHECK (contains (m6, "unknown directive 'Mount Proc'"), "directive names are case-sensitive");
    capsa_conf_free (&c);

    cleanup_free char *m7 = parse_msg (&c, "mount proc = yes # trailing comment\n");
    CHECK_STR (m7,
               "capsa.conf:1: 'yes # trailing comment' is not a valid value for 'mount proc' (allowed: yes, no)",
               "no trailing comments: the whole rest of the line is the value");
    capsa_conf_free (&c);

    /* The name given is the one in messages. */
    capsa_error_t err = NULL;
    capsa_conf_init (&c);
    CHECK (capsa_conf_parse (&c, "other.conf", "\nbogus = 1\n", &err) < 0 && err
               && strcmp (err->msg, "other.conf:2: unknown directive 'bogus'") == 0,
           "messages use the NAME given to capsa_conf_parse");
    capsa_error_free (&err);
    capsa_conf_free (&c);

    /* CRLF: '\r' is whitespace and trimmed. */
    cleanup_free char *m8 = parse_msg (&c, "mount proc = no\r\nmount sys = no\r\n");
    CHECK (m8 == NULL && !c.mount_proc && !c.mount_sys, "CRLF line ends accepted");
    capsa_conf_free (&c);
}

static void
test_whitespace (void)
{
    struct capsa_conf c;
    cleanup_free char *m = parse_msg (&c,
                                      "   mount proc=no\n"
                                      "\tmount sys\t=\tno\t\n"
                                      "max loop devices      =       12    \n"
                                      "  bind path =   /opt/x:/y  \n"
                                      "allow setuid-mount squashfs=yes\n");
    CHECK (m == NULL, "whitespace around keys and values accepted");
    CHECK (!c.mount_proc, "'   mount proc=no' (no spaces around '=')");
    CHECK (!c.mount_sys, "tabs around key, '=' and value trimmed");
    CHECK (c.max_loop_devices == 12, "many spaces around '=' trimmed");
    CHECK_STR (bind_at (&c, 0), "/opt/x:/y", "bind path value trimmed");
    CHECK (c.setuid_mount_squashfs == TRI_YES, "'key=value' without spaces");
    capsa_conf_free (&c);

    /* Inner whitespace of a key is significant. */
    CHECK (!parses ("mount  proc = no\n"), "two spaces inside a key: unknown directive");

    /* A value may contain '=' (only the first one splits). */
    cleanup_free char *m2 = parse_msg (&c, "bind path = /a=b\n");
    CHECK (m2 == NULL && c.bind_paths.n == 1 && strcmp (c.bind_paths.v[0], "/a=b") == 0,
           "only the first '=' separates key and value");
    capsa_conf_free (&c);

    /* The shipped capsa.conf parses. */
    int fd = open ("etc/capsa.conf", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char *text = NULL;
        capsa_error_t err = NULL;
        if (read_fd_all (fd, 1 << 20, &text, NULL, &err) == 0) {
            cleanup_free char *m3 = parse_msg (&c, text);
            CHECK (m3 == NULL, "the shipped etc/capsa.conf parses");
            if (m3)
                printf ("# %s\n", m3);
            capsa_conf_free (&c);
        } else {
            capsa_error_free (&err);
        }
        free (text);
        close (fd);
    }
}

/* ---- files: capsa_conf_load / capsa_open_trusted_file --------------------- */

static char *
write_tmp (const char *name, const void *buf, size_t len, mode_t mode)
{
    char *path = xasprintf ("%s/%s", tmpdir, name);
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write_all (fd, buf, len) < 0 || fchmod (fd, mode) < 0) {
        perror (path);
        exit (2);
    }
    close (fd);
    return path;
}

/* capsa_conf_load on PATH; returns the error message (owned) or NULL. */
static char *
load_msg (struct capsa_conf *c, const char *path, bool strict)
{
    capsa_error_t err = NULL;
    char *msg = NULL;
    capsa_conf_init (c);
    if (capsa_conf_load (c, path, strict, &err) < 0) {
        msg = xstrdup (err && err->msg ? err->msg : "(no message)");
        capsa_error_free (&err);
    }
    return msg;
}

static char *
open_msg (const char *path, bool strict, int *fdout)
{
    capsa_error_t err = NULL;
    int fd = capsa_open_trusted_file (path, strict, &err);
    *fdout = fd;
    if (fd >= 0)
        return NULL;
    char *msg = xstrdup (err && err->msg ? err->msg : "(no message)");
    capsa_error_free (&err);
    return msg;
}

static void
test_files (void)
{
    struct capsa_conf c;
    bool root = geteuid () == 0;
    static const char good_text[] = "# test\nmount proc = no\nbind path = /opt\n";
    cleanup_free char *good = write_tmp ("capsa.conf", good_text, sizeof (good_text) - 1, 0644);

    /* A good file, in both modes (strict only holds when we are root: the
     * file is ours). */
    cleanup_free char *m1 = load_msg (&c, good, false);
    CHECK (m1 == NULL && !c.mount_proc && c.bind_paths.n == 1, "load: a good file (non-strict)");
    capsa_conf_free (&c);
    if (root) {
        cleanup_free char *m2 = load_msg (&c, good, true);
        CHECK (m2 == NULL && !c.mount_proc, "load: a good root-owned 0644 file (strict)");
        capsa_conf_free (&c);
    }

    /* The message names the file's base name and the line. */
    static const char bad_text[] = "\n# c\nmount dev = maybe\n";
    cleanup_free char *bad = write_tmp ("bad.conf", bad_text, sizeof (bad_text) - 1, 0644);
    cleanup_free char *m3 = load_msg (&c, bad, false);
    CHECK_STR (m3, "bad.conf:3: 'maybe' is not a valid value for 'mount dev' (allowed: yes, no, minimal)",
               "load: a bad value names the file's base name and the line");
    capsa_conf_free (&c);

    /* A symbolic link, even to a good file, in both modes. */
    cleanup_free char *link = xasprintf ("%s/link.conf", tmpdir);
    if (symlink (good, link) < 0) {
        perror (link);
        exit (2);
    }
    int fd;
    cleanup_free char *m4 = load_msg (&c, link, false);
    CHECK (contains (m4, "symbolic link"), "load: a symlink refused (non-strict), message says 'symbolic link'");
    capsa_conf_free (&c);
    cleanup_free char *m5 = open_msg (link, true, &fd);
    CHECK (fd < 0 && contains (m5, "symbolic link") && contains (m5, link),
           "open_trusted: a symlink refused (strict), message names the path");

    /* A directory. */
    cleanup_free char *dir = xasprintf ("%s/dir.conf", tmpdir);
    if (mkdir (dir, 0755) < 0) {
        perror (dir);
        exit (2);
    }
    cleanup_free char *m6 = load_msg (&c, dir, false);
    CHECK (contains (m6, "not a regular file"), "load: a directory refused (non-strict)");
    capsa_conf_free (&c);
    cleanup_free char *m7 = open_msg (dir, true, &fd);
    CHECK (fd < 0 && m7 != NULL, "open_trusted: a directory refused (strict)");

    /* A NUL byte. */
    static const char nul_text[] = "mount proc = no\n\0mount sys = no\n";
    cleanup_free char *nul = write_tmp ("nul.conf", nul_text, sizeof (nul_text) - 1, 0644);
    cleanup_free char *m8 = load_msg (&c, nul, false);
    CHECK (contains (m8, "NUL byte"), "load: a file with a NUL byte refused");
    capsa_conf_free (&c);

    /* Group- and other-writable files: refused in strict mode only. */
    cleanup_free char *gw = write_tmp ("gw.conf", good_text, sizeof (good_text) - 1, 0664);
    cleanup_free char *m9 = load_msg (&c, gw, true);
    CHECK (m9 != NULL, "load: a group-writable file refused in strict mode");
    if (root)
        CHECK (contains (m9, "writable by group or others"), "group-writable: the message says why");
    capsa_conf_free (&c);
    cleanup_free char *m10 = load_msg (&c, gw, false);
    CHECK (m10 == NULL && !c.mount_proc, "load: a group-writable file accepted in non-strict mode");
    capsa_conf_free (&c);

    cleanup_free char *ow = write_tmp ("ow.conf", good_text, sizeof (good_text) - 1, 0646);
    cleanup_free char *m11 = open_msg (ow, true, &fd);
    CHECK (fd < 0 && m11 != NULL, "open_trusted: an other-writable file refused in strict mode");
    cleanup_free char *m12 = open_msg (ow, false, &fd);
    CHECK (fd >= 0 && m12 == NULL, "open_trusted: an other-writable file accepted in non-strict mode");
    if (fd >= 0)
        close (fd);

    /* A missing file. */
    cleanup_free char *missing = xasprintf ("%s/missing.conf", tmpdir);
    cleanup_free char *m13 = open_msg (missing, false, &fd);
    CHECK (fd < 0 && contains (m13, "missing.conf"), "open_trusted: a missing file refused, message names it");

    /* The descriptor returned is close-on-exec and reads the file. */
    cleanup_free char *m14 = open_msg (good, false, &fd);
    if (fd >= 0) {
        char buf[8] = { 0 };
        CHECK (m14 == NULL && (fcntl (fd, F_GETFD) & FD_CLOEXEC) && read (fd, buf, 6) == 6
                   && memcmp (buf, "# test", 6) == 0,
               "open_trusted: returns a readable close-on-exec descriptor");
        close (fd);
    } else {
        CHECK (0, "open_trusted: returns a readable close-on-exec descriptor");
    }

    /* Not owned by root: only testable as root (chown to uid 1). */
    if (root) {
        cleanup_free char *u1 = write_tmp ("uid1.conf", good_text, sizeof (good_text) - 1, 0644);
        if (chown (u1, 1, 0) < 0) {
            perror (u1);
            exit (2);
        }
        cleanup_free char *m15 = load_msg (&c, u1, true);
        CHECK (contains (m15, "not owned by root"), "load: a file owned by uid 1 refused in strict mode");
        capsa_conf_free (&c);
        cleanup_free char *m16 = load_msg (&c, u1, false);
        CHECK (m16 == NULL, "load: a file owned by uid 1 accepted in non-strict mode");
        capsa_conf_free (&c);
    } else {
        printf ("ok %d - # SKIP ownership check needs root\n", ++tap_n);
    }
}

/* The directives of writable containers (issue 15). */
static void
test_writable_directives (void)
{
    struct capsa_conf c;
    capsa_conf_init (&c);
    CHECK (c.enable_overlay == OVERLAY_TRY, "defaults: enable overlay = try");
    CHECK (c.sessiondir_max_size == 64, "defaults: sessiondir max size = 64 (MiB)");
    CHECK (!c.setuid_mount_extfs, "defaults: allow setuid-mount extfs = no");
    CHECK (c.allow_container_extfs, "defaults: allow container extfs = yes");
    capsa_conf_free (&c);

    static const struct {
        const char *v;
        enum capsa_enable_overlay want;
    } ov[] = { { "yes", OVERLAY_YES }, { "no", OVERLAY_NO }, { "try", OVERLAY_TRY }, { "driver", OVERLAY_DRIVER } };
    for (size_t i = 0; i < ARRAY_SIZE (ov); i++) {
        cleanup_free char *text = xasprintf ("enable overlay = %s", ov[i].v);
        cleanup_free char *m = parse_msg (&c, text);
        cleanup_free char *name = xasprintf ("'%s'", text);
        CHECK (m == NULL && c.enable_overlay == ov[i].want, name);
        capsa_conf_free (&c);
    }
    {
        cleanup_free char *m = parse_msg (&c, "enable overlay = maybe");
        CHECK_STR (m, "capsa.conf:1: 'maybe' is not a valid value for 'enable overlay' (allowed: yes, no, try, driver)",
                   "'enable overlay = maybe' refused with the exact message");
        capsa_conf_free (&c);
    }
    static const struct {
        const char *v;
        long want;
    } sizes[] = { { "1", 1 }, { "64", 64 }, { "2048", 2048 }, { "1048576", 1048576 } };
    for (size_t i = 0; i < ARRAY_SIZE (sizes); i++) {
        cleanup_free char *text = xasprintf ("sessiondir max size = %s", sizes[i].v);
        cleanup_free char *m = parse_msg (&c, text);
        cleanup_free char *name = xasprintf ("'%s'", text);
        CHECK (m == NULL && c.sessiondir_max_size == sizes[i].want, name);
        capsa_conf_free (&c);
    }
    static const char *const bad_sizes[] = { "0", "-5", "64M", "1048577" };
    for (size_t i = 0; i < ARRAY_SIZE (bad_sizes); i++) {
        cleanup_free char *text = xasprintf ("sessiondir max size = %s", bad_sizes[i]);
        cleanup_free char *want = xasprintf ("capsa.conf:1: '%s' is not a valid value for 'sessiondir max size' "
                                             "(allowed: a size in MiB from 1 to 1048576)",
                                             bad_sizes[i]);
        cleanup_free char *m = parse_msg (&c, text);
        cleanup_free char *name = xasprintf ("'%s' refused with the exact message", text);
        CHECK_STR (m, want, name);
        capsa_conf_free (&c);
    }
    {
        /* No value keeps the default, as in Apptainer. */
        cleanup_free char *m = parse_msg (&c, "sessiondir max size = ");
        CHECK (m == NULL && c.sessiondir_max_size == 64, "'sessiondir max size = ' keeps the default (64)");
        capsa_conf_free (&c);
    }
    {
        cleanup_free char *m = parse_msg (&c, "allow setuid-mount extfs = yes\nallow container extfs = no");
        CHECK (m == NULL && c.setuid_mount_extfs && !c.allow_container_extfs,
               "'allow setuid-mount extfs = yes', 'allow container extfs = no'");
        capsa_conf_free (&c);
        cleanup_free char *m2 = parse_msg (&c, "allow setuid-mount extfs = iflimited");
        CHECK_STR (m2, "capsa.conf:1: 'iflimited' is not a valid value for 'allow setuid-mount extfs' (allowed: yes, no)",
                   "'allow setuid-mount extfs' is yes or no only");
        capsa_conf_free (&c);
    }
}

/* ---- Apptainer's directives (issue 14) ------------------------------------ */

static bool
warned (const struct capsa_conf *c, const char *needle)
{
    for (size_t i = 0; i < c->warnings.n; i++)
        if (strstr (c->warnings.v[i], needle) != NULL)
            return true;
    return false;
}

static void
test_apptainer_directives (void)
{
    struct capsa_conf c;
    capsa_conf_init (&c);
    CHECK (c.mount_devpts && !c.mount_hostfs && c.mount_slave && c.memory_fs == MEMFS_TMPFS,
           "defaults: mount devpts yes, mount hostfs no, mount slave yes, memory fs type tmpfs");
    CHECK_STR (capsa_conf_memfs (&c), "tmpfs", "memfs name: tmpfs");
    capsa_conf_free (&c);

    cleanup_free char *m1 = parse_msg (&c, "mount devpts = no\nmount hostfs = yes\nmount slave = no\n"
                                           "memory fs type = ramfs\n");
    CHECK (m1 == NULL && !c.mount_devpts && c.mount_hostfs && !c.mount_slave && c.memory_fs == MEMFS_RAMFS,
           "mount devpts, mount hostfs, mount slave, memory fs type parsed");
    CHECK_STR (capsa_conf_memfs (&c), "ramfs", "memfs name: ramfs");
    CHECK (c.warnings.n == 0, "implemented directives: no warning");
    capsa_conf_free (&c);
    cleanup_free char *m2 = parse_msg (&c, "memory fs type = zfs\n");
    CHECK_STR (m2, "capsa.conf:1: 'zfs' is not a valid value for 'memory fs type' (allowed: tmpfs, ramfs)",
               "memory fs type: bad value, exact message");
    capsa_conf_free (&c);

    /* Apptainer's defaults of directives capsa does not apply: silent. */
    static const char *const silent =
        "enable fusemount = yes\nenable underlay = yes\nalways use nv = no\nuse nvidia-container-cli = no\n"
        "always use rocm = no\nshared loop devices = no\nbinary path = $PATH:/usr/local/sbin:/usr/local/bin:"
        "/usr/sbin:/usr/bin:/sbin:/bin\nmksquashfs procs = 0\nimage driver = \ndownload concurrency = 3\n"
        "download part size = 5242880\ndownload buffer size = 32768\nsystemd cgroups = yes\n"
        "apptheus socket path = /run/apptheus/gateway.sock\napptheus communication socket path = /x\n"
        "allow monitoring = no\nsync writable extfs = no\nenable fusemount = no\nsystemd cgroups = no\n"
        "enable underlay = no\n";
    cleanup_free char *m3 = parse_msg (&c, silent);
    CHECK (m3 == NULL, "Apptainer's defaults of unapplied directives parse");
    CHECK (c.warnings.n == 0, "... without a warning");
    if (m3)
        printf ("# %s\n", m3);
    capsa_conf_free (&c);

    /* The GPU directives are applied (issue 18): parsed, no warning. */
    cleanup_free char *mg = parse_msg (&c, "always use nv = yes\nuse nvidia-container-cli = yes\nalways use rocm = yes\n");
    CHECK (mg == NULL && c.always_use_nv && c.use_nvidia_container_cli && c.always_use_rocm && c.warnings.n == 0,
           "always use nv, use nvidia-container-cli, always use rocm: applied, no warning");
    capsa_conf_free (&c);
    capsa_conf_init (&c);
    CHECK (!c.always_use_nv && !c.use_nvidia_container_cli && !c.always_use_rocm, "GPU directives default to no");
    capsa_conf_free (&c);

    /* Values that ask for what capsa does not do: accepted, one warning each. */
    static const struct {
        const char *line, *warning;
    } warn[] = {
        { "shared loop devices = yes", "'shared loop devices = yes'" },
        { "enable underlay = preferred", "'enable underlay = preferred'" },
        { "allow net users = alice, bob", "'allow net users = alice, bob' is accepted but not applied: capsa offers only" },
        { "allow net groups = g", "'allow net groups = g'" },
        { "allow net networks = bridge", "'allow net networks = bridge'" },
        { "allow netns paths = /var/run/netns/n", "'allow netns paths = /var/run/netns/n'" },
        { "cni configuration path = /etc/cni", "'cni configuration path = /etc/cni'" },
        { "cni plugin path = /opt/cni", "'cni plugin path = /opt/cni'" },
        { "binary path = /opt/bin", "'binary path = /opt/bin'" },
        { "suidbinary path = /opt/bin", "'suidbinary path = /opt/bin'" },
        { "mksquashfs procs = 4", "'mksquashfs procs = 4'" },
        { "mksquashfs mem = 1G", "'mksquashfs mem = 1G'" },
        { "image driver = squashfuse", "'image driver = squashfuse'" },
        { "download concurrency = 8", "'download concurrency = 8'" },
        { "download part size = 1", "'download part size = 1'" },
        { "download buffer size = 1", "'download buffer size = 1'" },
        { "allow monitoring = yes", "'allow monitoring = yes'" },
        { "sync writable extfs = yes", "'sync writable extfs = yes'" },
    };
    for (size_t i = 0; i < ARRAY_SIZE (warn); i++) {
        cleanup_free char *text = xasprintf ("%s\n", warn[i].line);
        cleanup_free char *m = parse_msg (&c, text);
        cleanup_free char *name = xasprintf ("'%s': accepted with a warning naming it", warn[i].line);
        CHECK (m == NULL && c.warnings.n == 1 && warned (&c, warn[i].warning), name);
        capsa_conf_free (&c);
    }

    /* Their values are checked as Apptainer checks them. */
    static const struct {
        const char *line, *msg;
    } bad[] = {
        { "always use nv = maybe", "capsa.conf:1: 'maybe' is not a valid value for 'always use nv' (allowed: yes, no)" },
        { "enable underlay = try", "'try' is not a valid value for 'enable underlay' (allowed: yes,no,preferred)" },
        { "download concurrency = -1", "(allowed: an unsigned integer)" },
        { "mksquashfs procs = four", "'four' is not a valid value for 'mksquashfs procs'" },
        { "systemd cgroups = 1", "'1' is not a valid value for 'systemd cgroups'" },
    };
    for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
        cleanup_free char *text = xasprintf ("%s\n", bad[i].line);
        cleanup_free char *m = parse_msg (&c, text);
        cleanup_free char *name = xasprintf ("'%s' refused", bad[i].line);
        CHECK (m != NULL && strstr (m, bad[i].msg) != NULL, name);
        if (m == NULL || strstr (m, bad[i].msg) == NULL)
            printf ("# got [%s]\n", m ? m : "(none)");
        capsa_conf_free (&c);
    }
    CHECK (!parses ("allow wormholes = yes\n"), "an unknown directive is still an error");
}

static void
cleanup_tmp (void)
{
    static const char *const names[] = { "capsa.conf", "bad.conf", "link.conf", "nul.conf", "gw.conf",
                                         "ow.conf",    "uid1.conf" };
    for (size_t i = 0; i < ARRAY_SIZE (names); i++) {
        cleanup_free char *p = xasprintf ("%s/%s", tmpdir, names[i]);
        unlink (p);
    }
    cleanup_free char *d = xasprintf ("%s/dir.conf", tmpdir);
    rmdir (d);
    rmdir (tmpdir);
}

/* ---- the image server ---------------------------------------------------- */

static void
test_image_server (void)
{
    struct capsa_conf c;
    char *m;

    capsa_conf_init (&c);
    CHECK (c.image_server && c.image_server_linger == 10 && c.image_server_cache == 256,
           "defaults: image server = capsa, linger 10 s, cache 256 MiB");
    capsa_conf_free (&c);
    m = parse_msg (&c, "image server = squashfuse_ll\nimage server linger = 0\nimage server cache = 0\n");
    CHECK (m == NULL && !c.image_server && c.image_server_linger == 0 && c.image_server_cache == 0,
           "image server = squashfuse_ll, linger 0, cache 0");
    free (m);
    capsa_conf_free (&c);
    m = parse_msg (&c, "image server = capsa\nimage server linger = 3600s\n");
    CHECK (m == NULL && c.image_server && c.image_server_linger == 3600, "image server linger = 3600s");
    free (m);
    capsa_conf_free (&c);
    m = parse_msg (&c, "image server linger = 10m\n");
    CHECK (contains (m, "capsa.conf:1") && contains (m, "seconds from 0 to 3600"), "image server linger = 10m refused, naming the values");
    free (m);
    capsa_conf_free (&c);
    CHECK (!parses ("image server linger = 3601\n") && !parses ("image server linger = -1\n")
               && !parses ("image server linger = s\n") && !parses ("image server = squashfuse\n")
               && !parses ("image server cache = 4097\n"),
           "image server: out-of-range and unknown values refused");
}

int
main (void)
{
    if (mkdtemp (tmpdir) == NULL) {
        perror ("mkdtemp");
        return 2;
    }
    test_defaults ();
    test_bool_directives ();
    test_enum_directives ();
    test_long_directive ();
    test_writable_directives ();
    test_bind_path ();
    test_errors ();
    test_whitespace ();
    test_files ();
    test_apptainer_directives ();
    test_image_server ();
    cleanup_tmp ();
    return tap_done ();
}
