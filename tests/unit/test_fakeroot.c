/* Unit tests for src/runtime/fakeroot.c (/etc/subuid and /etc/subgid:
 * which range a user gets, the maps written, capsa config fakeroot's
 * edits) and the ext3 check of src/runtime/overlay.c, judged against
 * images made by Debian's mkfs.ext3/mkfs.ext4 (e2fsprogs). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/utils.h"
#include "runtime/fakeroot.h"
#include "runtime/overlay.h"
#include "tap.h"

/* find: returns "START:COUNT", "none:WHY" or "error:MSG" (owned). */
static char *
find (const char *text, const char *name, uid_t uid)
{
    struct capsa_subid r;
    const char *why = NULL;
    capsa_error_t err = NULL;
    int n = capsa_subid_find (text, "/etc/subuid", name, uid, &r, &why, &err);
    char *out = n < 0 ? xasprintf ("error:%s", err->msg) : n == 0 ? xasprintf ("none:%s", why) : xasprintf ("%u:%u", r.start, r.count);
    capsa_error_free (&err);
    return out;
}

static void
test_find (void)
{
    const char *text = "alice:100000:65536\n"
                       "bob:165536:65536\n"
                       "1003:231072:65536\n"
                       "!dave:296608:65536\n"
                       "erin:362144:1000\n"
                       "frank:400000:1000\n"
                       "frank:500000:131072\n"
                       "frank:700000:200000\n"
                       "gina:800000:200000\n"
                       "gina:1000000:65536\n"
                       "garbage line\n"
                       "hank:x:65536\n"
                       "ivan:900000:0\n";
    struct {
        const char *name;
        uid_t uid;
        const char *want;
        const char *what;
    } cases[] = {
        { "alice", 1001, "100000:65536", "by name" },
        { "bob", 1002, "165536:65536", "second entry by name" },
        { "carol", 1003, "231072:65536", "by numeric uid" },
        { "dave", 1004, "none:disabled by the administrator", "'!' disables an entry" },
        { "zed", 1099, "none:no entry", "no entry" },
        { "erin", 1005, "error:the entries of erin in /etc/subuid all have fewer than 65536 ids: fakeroot needs 65536",
          "a range smaller than 65536 refused with the exact message" },
        { "frank", 1006, "700000:200000", "several larger ranges: the largest" },
        { "gina", 1007, "1000000:65536", "a range of exactly 65536 wins over a larger one" },
        { "hank", 1008, "none:no entry", "an entry with a bad number is ignored" },
        { "ivan", 1009, "none:no entry", "an entry of 0 ids is ignored" },
        { "alic", 1010, "none:no entry", "a prefix of a name does not match" },
    };
    for (size_t i = 0; i < ARRAY_SIZE (cases); i++) {
        cleanup_free char *got = find (text, cases[i].name, cases[i].uid);
        cleanup_free char *name = xasprintf ("find: %s (%s)", cases[i].what, got);
        CHECK_STR (got, cases[i].want, name);
    }
    cleanup_free char *nonl = find ("alice:100000:65536", "alice", 1);
    CHECK_STR (nonl, "100000:65536", "find: a last line without a newline");
    cleanup_free char *empty = find ("", "alice", 1);
    CHECK_STR (empty, "none:no entry", "find: an empty file");
}

static void
test_map_text (void)
{
    char buf[128];
    struct capsa_subid r = { 100000, 65536 }, none = { 0, 0 };
    CHECK_STR (capsa_fakeroot_map_text (1001, &r, buf, sizeof (buf)), "0 1001 1\n1 100000 65536\n",
               "map text: root is the caller, 1..65536 the range");
    CHECK_STR (capsa_fakeroot_map_text (1001, &none, buf, sizeof (buf)), "0 1001 1\n", "map text: the caller alone");
}

static char *
edit (const char *text, enum capsa_subid_op op, const char *name, uid_t uid, bool *changed)
{
    char *out = NULL;
    capsa_error_t err = NULL;
    if (capsa_subid_edit (text, "/etc/subuid", op, name, uid, &out, changed, &err) < 0) {
        out = xasprintf ("error:%s", err->msg);
        capsa_error_free (&err);
    }
    return out;
}

static void
test_edit (void)
{
    bool ch;
    const char *text = "# a comment\nalice:100000:65536\nbob:165536:65536\n";

    cleanup_free char *a = edit (text, SUBID_ADD, "carol", 1003, &ch);
    CHECK_STR (a, "# a comment\nalice:100000:65536\nbob:165536:65536\n1003:4294836224:65536\n",
               "add: the highest free range below 2^32 - 131072, as UID:START:65536");
    CHECK (ch, "add: changed");
    cleanup_free char *a2 = edit (a, SUBID_ADD, "dave", 1004, &ch);
    CHECK (a2 != NULL && strstr (a2, "\n1004:4294770688:65536\n") != NULL, "add: the next user gets the range below");
    cleanup_free char *a3 = edit (text, SUBID_ADD, "alice", 1001, &ch);
    CHECK (a3 != NULL && strcmp (a3, text) == 0 && !ch, "add: a user with an entry: nothing changes");
    cleanup_free char *a4 = edit ("x:4294836224:65536", SUBID_ADD, "carol", 1003, &ch);
    CHECK_STR (a4, "x:4294836224:65536\n1003:4294770688:65536\n",
               "add: an occupied range is skipped; a missing last newline is added");
    cleanup_free char *a5 = edit ("x:4294800000:100000\n", SUBID_ADD, "carol", 1003, &ch);
    CHECK_STR (a5, "x:4294800000:100000\n1003:4294705152:65536\n", "add: ranges that only overlap are skipped too");
    cleanup_free char *a6 = edit ("", SUBID_ADD, "carol", 1003, &ch);
    CHECK_STR (a6, "1003:4294836224:65536\n", "add: to an empty file");
    cleanup_free char *a7 = edit ("x:65536:4294836224\n", SUBID_ADD, "carol", 1003, &ch);
    CHECK_STR (a7, "error:no free range of 65536 ids left in /etc/subuid", "add: no free range: exact message");

    cleanup_free char *d = edit (text, SUBID_DISABLE, "alice", 1001, &ch);
    CHECK_STR (d, "# a comment\n!alice:100000:65536\nbob:165536:65536\n", "disable: '!' in front of the entry");
    CHECK (ch, "disable: changed");
    cleanup_free char *d2 = edit (d, SUBID_DISABLE, "alice", 1001, &ch);
    CHECK (d2 != NULL && strcmp (d2, d) == 0 && !ch, "disable twice: nothing more changes");
    cleanup_free char *e = edit (d, SUBID_ENABLE, "alice", 1001, &ch);
    CHECK_STR (e, text, "enable: the '!' goes, the file is as before");
    cleanup_free char *e2 = edit (text, SUBID_ENABLE, "alice", 1001, &ch);
    CHECK (e2 != NULL && strcmp (e2, text) == 0 && !ch, "enable an enabled entry: nothing changes");
    cleanup_free char *r = edit (text, SUBID_REMOVE, "bob", 1002, &ch);
    CHECK_STR (r, "# a comment\nalice:100000:65536\n", "remove: the entry's line goes, the rest stays");
    cleanup_free char *r2 = edit (d, SUBID_REMOVE, "alice", 1001, &ch);
    CHECK_STR (r2, "# a comment\nbob:165536:65536\n", "remove: a disabled entry too");
    cleanup_free char *r3 = edit (text, SUBID_REMOVE, "zed", 1099, &ch);
    CHECK_STR (r3, "error:no mapping entry for zed in /etc/subuid", "remove without an entry: exact message");
    cleanup_free char *r4 = edit (text, SUBID_DISABLE, "zed", 1099, &ch);
    CHECK_STR (r4, "error:no mapping entry for zed in /etc/subuid", "disable without an entry: exact message");
    cleanup_free char *r5 = edit ("1001:100000:65536", SUBID_REMOVE, "alice", 1001, &ch);
    CHECK_STR (r5, "", "remove: an entry by uid, the only line");

    /* Every entry of the user, by name and by uid (shadow uses any). */
    const char *two = "alice:100000:65536\n1001:4294836224:65536\nbob:165536:65536\n";
    cleanup_free char *d3 = edit (two, SUBID_DISABLE, "alice", 1001, &ch);
    CHECK_STR (d3, "!alice:100000:65536\n!1001:4294836224:65536\nbob:165536:65536\n",
               "disable: every entry of the user, by name and by uid");
    cleanup_free char *r6 = edit (two, SUBID_REMOVE, "alice", 1001, &ch);
    CHECK_STR (r6, "bob:165536:65536\n", "remove: every entry of the user");
    /* Numbers as shadow reads them (base 0): a range in hex is taken. */
    cleanup_free char *a8 = edit ("bob:0xfffe0000:65536\n", SUBID_ADD, "carol", 1003, &ch);
    CHECK_STR (a8, "bob:0xfffe0000:65536\n1003:4294770688:65536\n",
               "add: another user's range written in hex (0xfffe0000) is not handed out again");
    cleanup_free char *a9 = edit ("bob:037777400000:65536\n", SUBID_ADD, "carol", 1003, &ch);
    CHECK_STR (a9, "bob:037777400000:65536\n1003:4294770688:65536\n", "add: ... nor one in octal");
}

/* mkfs.ext3/ext2/ext4 (e2fsprogs) make the images the probe judges. */
static int
mkfs (const char *prog, const char *path, const char *extra)
{
    cleanup_free char *cmd = xasprintf ("%s -q -F %s %s 8M >/dev/null 2>&1", prog, extra, path);
    unlink (path);
    return system (cmd);
}

static void
test_ext3 (void)
{
    char dir[] = "/tmp/capsa-test-ext3.XXXXXX";
    if (mkdtemp (dir) == NULL || access ("/usr/sbin/mkfs.ext3", X_OK) != 0) {
        printf ("ok %d - # SKIP mkfs.ext3 missing\n", ++tap_n);
        return;
    }
    cleanup_free char *img = xasprintf ("%s/img", dir);
    struct {
        const char *prog, *extra;
        bool ok;
        const char *what;
    } cases[] = {
        { "/usr/sbin/mkfs.ext3", "", true, "mkfs.ext3 image accepted" },
        { "/usr/sbin/mkfs.ext2", "", false, "mkfs.ext2 image (no journal) refused" },
        { "/usr/sbin/mkfs.ext4", "", false, "mkfs.ext4 image (extents...) refused" },
    };
    for (size_t i = 0; i < ARRAY_SIZE (cases); i++) {
        if (mkfs (cases[i].prog, img, cases[i].extra) != 0) {
            CHECK (0, cases[i].what);
            continue;
        }
        int fd = open (img, O_RDONLY | O_CLOEXEC);
        CHECK ((capsa_ext3_probe (fd, 0, NULL) == 0) == cases[i].ok, cases[i].what);
        close (fd);
    }
    /* At an offset (a SIF partition): 4096 bytes of something first. */
    cleanup_free char *cmd = xasprintf ("/usr/sbin/mkfs.ext3 -q -F -E offset=4096 %s 8M >/dev/null 2>&1", img);
    unlink (img);
    int fd = system (cmd) == 0 ? open (img, O_RDONLY | O_CLOEXEC) : -1;
    CHECK (fd >= 0 && capsa_ext3_probe (fd, 4096, NULL) == 0 && capsa_ext3_probe (fd, 0, NULL) < 0,
           "an ext3 file system at offset 4096 is found there, not at 0");
    if (fd >= 0)
        close (fd);
    int z = open (img, O_WRONLY | O_TRUNC | O_CLOEXEC);
    capsa_error_t err = NULL;
    CHECK (z >= 0 && write (z, "short", 5) == 5, "a short file written");
    if (z >= 0)
        close (z);
    fd = open (img, O_RDONLY | O_CLOEXEC);
    CHECK (capsa_ext3_probe (fd, 0, &err) < 0 && err && strcmp (err->msg, "too short for an ext3 file system") == 0,
           "a short file refused with the exact message");
    capsa_error_free (&err);
    close (fd);
    unlink (img);
    rmdir (dir);
}

int
main (void)
{
    test_find ();
    test_map_text ();
    test_edit ();
    test_ext3 ();
    return tap_done ();
}
