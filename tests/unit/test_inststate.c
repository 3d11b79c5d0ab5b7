/* Unit tests for src/runtime/inststate.c: instance records (round trips,
 * escapes, every refusal) and the /proc parsers, judged against the
 * kernel's own answers (getppid, getuid, a child's /proc/PID/stat with a
 * hostile comm). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/utils.h"
#include "runtime/inststate.h"
#include "tap.h"

static const char good[] = "capsa-instance 1\n"
                           "name=web.1_x-y\n"
                           "uid=1001\n"
                           "user=alice\n"
                           "mode=setuid\n"
                           "boot=ef779b12-efee-4f49-b0ab-7eb2c9c9c607\n"
                           "pid=4242\n"
                           "start=920591\n"
                           "monitor=4241\n"
                           "monitor-start=920590\n"
                           "ns.mnt=4:4026532174\n"
                           "ns.pid=4:4026532175\n"
                           "ns.user=4:4026531837\n"
                           "image=/tmp/a b/img.sif\n"
                           "home=/home/alice\n"
                           "log-out=/home/alice/.capsa/instances/logs/h/alice/web.out\n"
                           "fakeroot=0\n"
                           "created=1796461565\n"
                           "end\n";

static int
parse (const char *text, struct capsa_inst_state *st)
{
    capsa_error_t err = NULL;
    size_t used = 0;
    int r = capsa_inst_state_parse (text, strlen (text), st, &used, &err);
    capsa_error_free (&err);
    return r;
}

/* GOOD with the line starting with KEY= replaced by LINE (NULL: removed). */
static char *
with_line (const char *key, const char *line)
{
    char *out = NULL;
    size_t len = 0;
    size_t klen = strlen (key);
    for (const char *l = good; *l;) {
        const char *nl = strchr (l, '\n');
        size_t n = (size_t) (nl - l + 1);
        if (strncmp (l, key, klen) == 0 && l[klen] == '=') {
            if (line) {
                str_append (&out, &len, line);
                str_append (&out, &len, "\n");
            }
        } else {
            char *piece = strndup (l, n);
            str_append (&out, &len, piece);
            free (piece);
        }
        l = nl + 1;
    }
    return out;
}

static void
test_good (void)
{
    struct capsa_inst_state st;
    CHECK (parse (good, &st) == 0, "a complete record parses");
    CHECK_STR (st.name, "web.1_x-y", "name");
    CHECK (st.uid == 1001 && st.mode == INST_MODE_SETUID, "uid and mode");
    CHECK (st.pid == 4242 && st.start == 920591 && st.monitor == 4241 && st.monitor_start == 920590,
           "pids and start times");
    CHECK (st.ns[INST_NS_MNT].dev == 4 && st.ns[INST_NS_MNT].ino == 4026532174ULL && st.ns[INST_NS_IPC].ino == 0,
           "namespace identities, absent ones 0");
    CHECK_STR (st.image, "/tmp/a b/img.sif", "image with a space");
    CHECK (st.log_err == NULL && st.cgroup == NULL && !st.has_state, "optional keys absent");
    char *text = capsa_inst_state_format (&st);
    CHECK (text && strcmp (text, good) == 0, "formatting gives the same text back");
    free (text);
    capsa_inst_state_free (&st);
}

static void
test_escapes (void)
{
    struct capsa_inst_state st = { 0 }, back;
    st.name = xstrdup ("n");
    st.user = xstrdup ("u");
    st.mode = INST_MODE_USERNS;
    memcpy (st.boot, "00000000-0000-0000-0000-000000000000", 37);
    st.pid = 2;
    st.monitor = 3;
    st.ns[INST_NS_MNT] = (struct capsa_inst_id) { 1, 2 };
    st.ns[INST_NS_PID] = (struct capsa_inst_id) { 1, 3 };
    st.image = xstrdup ("/x\nend\nname=evil\\t\t\x01\x7f\xc3\xa9=");
    st.home = xstrdup ("/h");
    st.has_state = true;
    st.running = true;
    char *text = capsa_inst_state_format (&st);
    CHECK (text && strstr (text, "\nend\nname=evil") == NULL, "a newline in a value cannot end the record");
    CHECK (parse (text, &back) == 0, "the escaped record parses");
    CHECK (back.image && strcmp (back.image, st.image) == 0, "the value comes back byte for byte");
    CHECK (back.has_state && back.running, "state=running");
    free (text);
    capsa_inst_state_free (&back);
    capsa_inst_state_free (&st);
}

static void
test_refusals (void)
{
    struct {
        const char *key, *line, *what;
    } bad[] = {
        { "name", NULL, "name missing" },
        { "pid", NULL, "pid missing" },
        { "ns.mnt", NULL, "mount namespace missing" },
        { "name", "name=../x", "name with a slash" },
        { "name", "name=..", "name .." },
        { "name", "name=", "empty name" },
        { "pid", "pid=0", "pid 0 (a process group)" },
        { "pid", "pid=1", "pid 1 (init)" },
        { "pid", "pid=-5", "negative pid" },
        { "pid", "pid=042", "leading zero" },
        { "pid", "pid=+42", "plus sign" },
        { "pid", "pid= 42", "blank" },
        { "pid", "pid=4194305", "above the largest pid" },
        { "start", "start=18446744073709551616", "start time overflows 64 bits" },
        { "uid", "uid=4294967295", "uid -1" },
        { "boot", "boot=ef779b12efee4f49b0ab7eb2c9c9c607", "boot id without dashes" },
        { "boot", "boot=ef779b12-efee-4f49-b0ab-7eb2c9c9c60g", "boot id not hex" },
        { "home", "home=relative", "relative home" },
        { "mode", "mode=suid", "unknown mode" },
        { "ns.mnt", "ns.mnt=4", "namespace without inode" },
        { "ns.mnt", "ns.mnt=4:0", "namespace inode 0" },
        { "image", "image=/a\\qb", "unknown escape" },
        { "image", "image=/a\\x00b", "escaped NUL" },
        { "image", "image=/a\\x4", "short hex escape" },
        { "image", "image=/a\\", "trailing backslash" },
        { "image", "image=/a\tb", "raw tab" },
        { "image", "image=/a\rb", "raw carriage return" },
        { "fakeroot", "fakeroot=yes", "fakeroot not 0 or 1" },
        { "created", "created=-1", "negative time" },
        { "user", "user=a/b", "user with a slash" },
        { "fakeroot", "fakeroot=0\nstate=zombie", "unknown state" },
        { "fakeroot", "fakeroot=0\nunknown=1", "unknown key" },
        { "fakeroot", "fakeroot=0\npid=4242", "duplicate key" },
        { "fakeroot", "fakeroot=0\n=x", "empty key" },
        { "fakeroot", "fakeroot=0\nnoequals", "line without =" },
        /* root's `instance stats --user` opens the cgroup's files: no way out of it. */
        { "fakeroot", "fakeroot=0\ncgroup=/../../home/u/cg", "cgroup with '..'" },
        { "fakeroot", "fakeroot=0\ncgroup=/a/./b", "cgroup with '.'" },
        { "fakeroot", "fakeroot=0\ncgroup=/a//b", "cgroup with an empty component" },
        { "fakeroot", "fakeroot=0\ncgroup=/a/..", "cgroup ending in '..'" },
        { "fakeroot", "fakeroot=0\ncgroup=relative", "relative cgroup" },
    };
    for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
        struct capsa_inst_state st;
        char *text = with_line (bad[i].key, bad[i].line);
        char name[160];
        snprintf (name, sizeof (name), "refused: %s", bad[i].what);
        CHECK (parse (text, &st) < 0 && st.name == NULL, name);
        free (text);
    }
    struct capsa_inst_state st;
    char *cgtext = with_line ("fakeroot", "fakeroot=0\ncgroup=/user.slice/user-1000.slice/..x/a.b.scope");
    CHECK (parse (cgtext, &st) == 0 && st.cgroup && strcmp (st.cgroup, "/user.slice/user-1000.slice/..x/a.b.scope") == 0,
           "accepted: a cgroup with dots inside names");
    capsa_inst_state_free (&st);
    free (cgtext);
    CHECK (parse ("capsa-instance 2\nend\n", &st) < 0, "refused: another version");
    char *noend = xstrdup (good);
    noend[strlen (noend) - 4] = '\0';
    CHECK (parse (noend, &st) < 0, "refused: no end line");
    free (noend);
    char withnul[sizeof (good) + 8];
    memcpy (withnul, good, sizeof (good));
    withnul[30] = '\0';
    capsa_error_t err = NULL;
    CHECK (capsa_inst_state_parse (withnul, sizeof (good) - 1, &st, NULL, &err) < 0, "refused: a NUL byte in a line");
    capsa_error_free (&err);
    /* Longer than the limit. */
    char *big = NULL;
    size_t blen = 0;
    str_append (&big, &blen, "capsa-instance 1\nimage=/");
    for (int i = 0; i < CAPSA_INST_RECORD_MAX; i++)
        str_append (&big, &blen, "a");
    str_append (&big, &blen, "\nend\n");
    CHECK (parse (big, &st) < 0, "refused: a record over the size limit");
    free (big);
}

static void
test_stream (void)
{
    char *two = xasprintf ("%s%s", good, good);
    struct capsa_inst_state a, b;
    capsa_error_t err = NULL;
    size_t used = 0, used2 = 0;
    CHECK (capsa_inst_state_parse (two, strlen (two), &a, &used, &err) == 0 && used == strlen (good),
           "the first of two records, and how long it was");
    CHECK (capsa_inst_state_parse (two + used, strlen (two) - used, &b, &used2, &err) == 0 && used2 == strlen (good),
           "the second one");
    capsa_inst_state_free (&a);
    capsa_inst_state_free (&b);
    free (two);
}

static void
test_names (void)
{
    CHECK (capsa_inst_name_valid ("a") && capsa_inst_name_valid ("web-1.x_Y") && capsa_inst_name_valid (".hidden"),
           "names: letters, digits, . _ -");
    CHECK (!capsa_inst_name_valid ("") && !capsa_inst_name_valid (".") && !capsa_inst_name_valid (".."), "names: not empty, . or ..");
    CHECK (!capsa_inst_name_valid ("a/b") && !capsa_inst_name_valid ("a b") && !capsa_inst_name_valid ("a\nb")
               && !capsa_inst_name_valid ("\xc3\xa9") && !capsa_inst_name_valid ("a*"),
           "names: no slash, blank, newline, non-ASCII or pattern");
    char longname[CAPSA_INST_NAME_MAX + 2];
    memset (longname, 'a', sizeof (longname));
    longname[CAPSA_INST_NAME_MAX] = '\0';
    CHECK (capsa_inst_name_valid (longname), "names: 128 bytes");
    longname[CAPSA_INST_NAME_MAX] = 'a';
    longname[CAPSA_INST_NAME_MAX + 1] = '\0';
    CHECK (!capsa_inst_name_valid (longname), "names: not 129");
}

static char *
slurp (const char *path)
{
    FILE *f = fopen (path, "r");
    if (f == NULL)
        return NULL;
    char *buf = xmalloc (65536);
    size_t n = fread (buf, 1, 65535, f);
    buf[n] = '\0';
    fclose (f);
    return buf;
}

static void
test_proc (void)
{
    char state;
    pid_t ppid;
    uint64_t start, child_start;
    char *text = slurp ("/proc/self/stat");
    CHECK (text && capsa_inst_parse_stat (text, &state, &ppid, &start) == 0 && ppid == getppid () && state == 'R',
           "/proc/self/stat: the parent the kernel reports, running");
    free (text);

    /* A child whose name holds ") " and digits: the last ')' ends it. */
    int ready[2];
    if (pipe (ready) < 0)
        abort ();
    pid_t pid = fork ();
    if (pid == 0) {
        prctl (PR_SET_NAME, "x) S 1 1 2 3 (", 0, 0, 0);
        if (write (ready[1], "r", 1) != 1)
            _exit (1);
        pause ();
        _exit (0);
    }
    char byte;
    if (read (ready[0], &byte, 1) != 1)
        abort ();
    char path[64];
    snprintf (path, sizeof (path), "/proc/%d/stat", (int) pid);
    /* (Until it sleeps in pause(): the state letter must be read too.) */
    for (int i = 0; i < 200; i++) {
        text = slurp (path);
        if (text == NULL || capsa_inst_parse_stat (text, &state, &ppid, &child_start) < 0 || state == 'S')
            break;
        free (text);
        text = NULL;
        usleep (10000);
    }
    CHECK (text && capsa_inst_parse_stat (text, &state, &ppid, &child_start) == 0 && ppid == getpid ()
               && child_start >= start && state == 'S',
           "a child named 'x) S 1 1 2 3 (': its real parent and a later start time");
    free (text);
    kill (pid, SIGKILL);
    waitpid (pid, NULL, 0);
    CHECK (capsa_inst_parse_stat ("1 (a) S", &state, &ppid, &start) < 0, "a truncated stat line is refused");
    CHECK (capsa_inst_parse_stat ("no parenthesis", &state, &ppid, &start) < 0, "a line without comm is refused");

    uid_t r, e;
    text = slurp ("/proc/self/status");
    CHECK (text && capsa_inst_parse_status_uid (text, &r, &e) == 0 && r == getuid () && e == geteuid (),
           "/proc/self/status: the uids the kernel reports");
    free (text);
    CHECK (capsa_inst_parse_status_uid ("Name:\tx\nGid:\t1\t1\n", &r, &e) < 0, "status without Uid: refused");

    char *cg = capsa_inst_parse_cgroup2 ("12:memory:/a\n0::/user.slice/x.scope\n");
    CHECK (cg && strcmp (cg, "/user.slice/x.scope") == 0, "cgroup v2 line among v1 lines");
    free (cg);
    CHECK (capsa_inst_parse_cgroup2 ("4:memory:/a\n") == NULL, "no cgroup v2 line: none");

    const char *mi = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
                     "30 22 0:26 /user.slice /mnt/cg rw - cgroup2 cgroup2 rw\n"
                     "31 22 0:26 / /mnt/a\\040b rw - cgroup2 cgroup2 rw\n"
                     "32 22 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
    char *point = capsa_cgroup2_point (mi);
    CHECK (point && strcmp (point, "/sys/fs/cgroup") == 0,
           "cgroup2 mount point: the hierarchy's root, not a subtree, not an escaped path");
    free (point);
    CHECK (capsa_cgroup2_point ("22 1 0:21 / /proc rw - proc proc rw\n31 1 0:26 / /x rw - cgroup cgroup rw\n") == NULL,
           "no cgroup2 mount: none (cgroup v1 is not it)");
    CHECK (capsa_cgroup2_point ("") == NULL, "empty mountinfo: none");
}

int
main (void)
{
    test_good ();
    test_escapes ();
    test_refusals ();
    test_stream ();
    test_names ();
    test_proc ();
    return tap_done ();
}
