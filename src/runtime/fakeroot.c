/* Fakeroot id ranges and maps: see fakeroot.h. */
#include "runtime/fakeroot.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/utils.h"
#include "runtime/container.h"

#ifndef CAPSA_NEWUIDMAP
#define CAPSA_NEWUIDMAP "/usr/bin/newuidmap"
#endif
#ifndef CAPSA_NEWGIDMAP
#define CAPSA_NEWGIDMAP "/usr/bin/newgidmap"
#endif

/* Apptainer's bounds for the ranges it allocates. */
#define SUBID_START_MIN 65536ULL
#define SUBID_START_MAX (4294967296ULL - 131072ULL)

/* One line of a subordinate-id file. */
struct subid_line {
    const char *text; /* start of the line in the file's text */
    size_t len;       /* without the newline */
    bool valid;       /* owner:start:count with numbers, count > 0 */
    bool disabled;    /* owner starts with '!' */
    bool mine;        /* the owner is the user (by name or uid) */
    uint32_t start, count;
};

static bool
parse_u32 (const char *s, size_t n, uint32_t *out)
{
    char buf[16];
    if (n == 0 || n >= sizeof (buf))
        return false;
    memcpy (buf, s, n);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (buf[i] < '0' || buf[i] > '9')
            return false;
    unsigned long long v = strtoull (buf, NULL, 10);
    if (v > UINT32_MAX)
        return false;
    *out = (uint32_t) v;
    return true;
}

/* A range's start or count as shadow reads it (getulong: strtoull with
 * base 0, so "0x10000" and "0200000" count, as newuidmap takes them),
 * within 32 bits: another user's range written in hex must still be seen
 * as taken. */
static bool
parse_range_u32 (const char *s, size_t n, uint32_t *out)
{
    char buf[32];
    if (n == 0 || n >= sizeof (buf))
        return false;
    memcpy (buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    unsigned long long v = strtoull (buf, &end, 0);
    if (*end != '\0' || errno == ERANGE || v > UINT32_MAX || buf[strspn (buf, " \t")] == '-')
        return false;
    *out = (uint32_t) v;
    return true;
}

static void
parse_line (const char *l, size_t len, const char *name, uid_t uid, struct subid_line *out)
{
    memset (out, 0, sizeof (*out));
    out->text = l;
    out->len = len;
    const char *c1 = memchr (l, ':', len);
    const char *c2 = c1 ? memchr (c1 + 1, ':', len - (size_t) (c1 + 1 - l)) : NULL;
    if (c1 == NULL || c2 == NULL || c1 == l)
        return;
    const char *end = l + len;
    const char *c3 = memchr (c2 + 1, ':', (size_t) (end - c2 - 1));
    if (c3 == NULL)
        c3 = end;
    const char *owner = l;
    size_t olen = (size_t) (c1 - l);
    if (owner[0] == '!') {
        out->disabled = true;
        owner++;
        olen--;
    }
    if (!parse_range_u32 (c1 + 1, (size_t) (c2 - c1 - 1), &out->start)
        || !parse_range_u32 (c2 + 1, (size_t) (c3 - c2 - 1), &out->count) || out->count == 0)
        return;
    out->valid = true;
    uint32_t num;
    if (olen > 0 && strlen (name) == olen && strncmp (owner, name, olen) == 0)
        out->mine = true;
    else if (parse_u32 (owner, olen, &num) && num == (uint32_t) uid)
        out->mine = true;
}

/* Every line of TEXT, parsed; *n lines. */
static struct subid_line *
parse_all (const char *text, const char *name, uid_t uid, size_t *n)
{
    struct subid_line *lines = NULL;
    size_t count = 0;
    for (const char *l = text; *l;) {
        const char *nl = strchr (l, '\n');
        size_t len = nl ? (size_t) (nl - l) : strlen (l);
        lines = xrealloc (lines, (count + 1) * sizeof (*lines));
        parse_line (l, len, name, uid, &lines[count++]);
        l += len + (nl ? 1 : 0);
    }
    *n = count;
    return lines;
}

/* The user's entry to use among LINES (enabled ones only unless
 * WITH_DISABLED): exactly 65536 ids, else the largest of more.  Returns
 * its index, -1 when there is none, -2 when all are too small. */
static long
choose (const struct subid_line *lines, size_t n, bool with_disabled)
{
    long best = -1;
    bool small = false;
    for (size_t i = 0; i < n; i++) {
        const struct subid_line *e = &lines[i];
        if (!e->valid || !e->mine || (e->disabled && !with_disabled))
            continue;
        if (e->count == CAPSA_SUBID_COUNT)
            return (long) i;
        if (e->count < CAPSA_SUBID_COUNT) {
            small = true;
            continue;
        }
        if (best < 0 || e->count > lines[best].count)
            best = (long) i;
    }
    return best >= 0 ? best : small ? -2 : -1;
}

int
capsa_subid_find (const char *text, const char *file, const char *name, uid_t uid, struct capsa_subid *out,
                  const char **why, capsa_error_t *err)
{
    size_t n;
    cleanup_free struct subid_line *lines = parse_all (text, name, uid, &n);
    long i = choose (lines, n, false);
    out->start = out->count = 0;
    if (i == -2)
        return capsa_error_make (err, 0, "the entries of %s in %s all have fewer than %u ids: fakeroot needs %u",
                                 name, file, CAPSA_SUBID_COUNT, CAPSA_SUBID_COUNT);
    if (i < 0) {
        *why = choose (lines, n, true) >= 0 ? "disabled by the administrator" : "no entry";
        return 0;
    }
    out->start = lines[i].start;
    out->count = lines[i].count;
    return 1;
}

int
capsa_subid_lookup (const char *path, const char *name, uid_t uid, struct capsa_subid *out, const char **why,
                    capsa_error_t *err)
{
    struct stat st;
    cleanup_free char *text = NULL;
    size_t len;
    out->start = out->count = 0;
    cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) {
            *why = "no such file";
            return 0;
        }
        return capsa_error_make (err, errno, "cannot read %s", path);
    }
    if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode))
        return capsa_error_make (err, 0, "%s is not a regular file", path);
    if (read_fd_all (fd, 4 << 20, &text, &len, err) < 0)
        return capsa_error_wrap (err, "%s", path);
    if (strlen (text) != len)
        return capsa_error_make (err, 0, "%s: contains a NUL byte", path);
    return capsa_subid_find (text, path, name, uid, out, why, err);
}

const char *
capsa_fakeroot_map_text (unsigned long id, const struct capsa_subid *r, char *buf, size_t len)
{
    if (r->count > 0)
        snprintf (buf, len, "0 %lu 1\n1 %u %u\n", id, r->start, r->count);
    else
        snprintf (buf, len, "0 %lu 1\n", id);
    return buf;
}

/* Run HELPER PID 0 ID 1 1 START COUNT and wait; its message on failure. */
static int
run_map_helper (const char *helper, pid_t pid, unsigned long id, const struct capsa_subid *r, capsa_error_t *err)
{
    char spid[24], sid[24], sstart[24], scount[24];
    snprintf (spid, sizeof (spid), "%d", (int) pid);
    snprintf (sid, sizeof (sid), "%lu", id);
    snprintf (sstart, sizeof (sstart), "%u", r->start);
    snprintf (scount, sizeof (scount), "%u", r->count);
    char *const argv[] = { (char *) helper, spid, (char *) "0", sid, (char *) "1", (char *) "1", sstart, scount, NULL };
    char *const envp[] = { (char *) "PATH=/usr/sbin:/usr/bin:/sbin:/bin", (char *) "LC_ALL=C", NULL };
    int pfd[2];
    if (pipe2 (pfd, O_CLOEXEC) < 0)
        return capsa_error_make (err, errno, "pipe");
    pid_t h = fork ();
    if (h < 0) {
        int e = errno;
        close (pfd[0]);
        close (pfd[1]);
        return capsa_error_make (err, e, "fork");
    }
    if (h == 0) {
        int null = open ("/dev/null", O_RDWR | O_CLOEXEC);
        if (null < 0 || dup2 (null, STDIN_FILENO) < 0 || dup2 (pfd[1], STDOUT_FILENO) < 0
            || dup2 (pfd[1], STDERR_FILENO) < 0)
            _exit (127);
        signal (SIGPIPE, SIG_DFL);
        execve (helper, argv, envp);
        dprintf (STDERR_FILENO, "cannot run %s: %s (install Debian's uidmap package)", helper, strerror (errno));
        _exit (127);
    }
    close (pfd[1]);
    char msg[1024];
    size_t mlen = 0;
    ssize_t k;
    while ((k = read (pfd[0], msg + mlen, sizeof (msg) - 1 - mlen)) > 0 || (k < 0 && errno == EINTR))
        if (k > 0)
            mlen += (size_t) k;
    close (pfd[0]);
    msg[mlen] = '\0';
    while (mlen > 0 && (msg[mlen - 1] == '\n' || msg[mlen - 1] == ' '))
        msg[--mlen] = '\0';
    int status;
    while (waitpid (h, &status, 0) < 0)
        if (errno != EINTR)
            return capsa_error_make (err, errno, "waitpid");
    if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
        return 0;
    return capsa_error_make (err, 0, "%s failed%s%s", helper, mlen ? ": " : "", msg);
}

int
capsa_fakeroot_write_maps (pid_t pid, uid_t uid, gid_t gid, const struct capsa_subid *u, const struct capsa_subid *g,
                           capsa_error_t *err)
{
    char path[64], text[128];
    /* Single ids first need setgroups denied (the kernel's rule for a map
     * written without CAP_SETGID); newgidmap decides it for a range. */
    if (g->count == 0) {
        snprintf (path, sizeof (path), "/proc/%d/setgroups", (int) pid);
        if (write_file (path, "deny", err) < 0)
            return -1;
    }
    if (u->count > 0) {
        if (run_map_helper (CAPSA_NEWUIDMAP, pid, uid, u, err) < 0)
            return capsa_error_wrap (err, "cannot map the subordinate uids of /etc/subuid");
    } else {
        snprintf (path, sizeof (path), "/proc/%d/uid_map", (int) pid);
        if (write_file (path, capsa_fakeroot_map_text (uid, u, text, sizeof (text)), err) < 0)
            return capsa_error_wrap (err, "cannot write the uid map");
    }
    if (g->count > 0) {
        if (run_map_helper (CAPSA_NEWGIDMAP, pid, gid, g, err) < 0)
            return capsa_error_wrap (err, "cannot map the subordinate gids of /etc/subgid");
    } else {
        snprintf (path, sizeof (path), "/proc/%d/gid_map", (int) pid);
        if (write_file (path, capsa_fakeroot_map_text (gid, g, text, sizeof (text)), err) < 0)
            return capsa_error_wrap (err, "cannot write the gid map");
    }
    return 0;
}

int
capsa_fakeroot_prepare (struct capsa_container *c, capsa_error_t *err)
{
    const char *why_u = NULL, *why_g = NULL;
    int u = capsa_subid_lookup (CAPSA_SUBUID_FILE, c->user.name, c->user.uid, &c->subuid, &why_u, err);
    if (u < 0)
        return capsa_error_wrap (err, "--fakeroot");
    int g = capsa_subid_lookup (CAPSA_SUBGID_FILE, c->user.name, c->user.uid, &c->subgid, &why_g, err);
    if (g < 0)
        return capsa_error_wrap (err, "--fakeroot");
    if (u == 0 || g == 0) {
        const char *file = u == 0 && g == 0 ? CAPSA_SUBUID_FILE " and " CAPSA_SUBGID_FILE
                           : u == 0         ? CAPSA_SUBUID_FILE
                                            : CAPSA_SUBGID_FILE;
        warnf ("--fakeroot: %s has no subordinate ids in %s (%s): only your own %s mapped, to root. Files cannot be "
               "given to other users or groups (chown fails), and package managers that switch to a system user "
               "(apt's _apt, dpkg's chown of package files) will fail. Ask the administrator for 'capsa config "
               "fakeroot --add %s'.",
               c->user.name, file, u == 0 ? why_u : why_g,
               u == 0 && g == 0 ? "uid and gid are" : u == 0 ? "uid is" : "gid is", c->user.name);
    } else {
        verbosef ("--fakeroot: root inside is uid %u; uids 1-%u are %u-%u, gids 1-%u are %u-%u", c->user.uid,
                  c->subuid.count, c->subuid.start, c->subuid.start + c->subuid.count - 1, c->subgid.count,
                  c->subgid.start, c->subgid.start + c->subgid.count - 1);
    }
    if (c->opts->home_dst == NULL)
        c->opts->home_dst = xstrdup ("/root");
    return 0;
}

/* ---- editing ---------------------------------------------------------------- */

static bool
overlaps (const struct subid_line *lines, size_t n, unsigned long long start, unsigned long long count)
{
    for (size_t i = 0; i < n; i++) {
        if (!lines[i].valid)
            continue;
        unsigned long long s = lines[i].start, e = s + lines[i].count;
        if (start < e && s < start + count)
            return true;
    }
    return false;
}

int
capsa_subid_edit (const char *text, const char *file, enum capsa_subid_op op, const char *name, uid_t uid, char **out,
                  bool *changed, capsa_error_t *err)
{
    size_t n;
    cleanup_free struct subid_line *lines = parse_all (text, name, uid, &n);
    long mine = choose (lines, n, true);
    cleanup_free char *res = NULL;
    size_t rlen = 0;
    char buf[96];

    *out = NULL;
    *changed = false;
    if (op == SUBID_ADD) {
        bool any = false;
        for (size_t i = 0; i < n; i++)
            any |= lines[i].valid && lines[i].mine;
        if (any) {
            *out = xstrdup (text);
            return 0;
        }
        unsigned long long start = SUBID_START_MAX;
        while (start >= SUBID_START_MIN && overlaps (lines, n, start, CAPSA_SUBID_COUNT))
            start -= CAPSA_SUBID_COUNT;
        if (start < SUBID_START_MIN)
            return capsa_error_make (err, 0, "no free range of %u ids left in %s", CAPSA_SUBID_COUNT, file);
        res = xstrdup (text);
        rlen = strlen (res);
        if (rlen > 0 && res[rlen - 1] != '\n')
            str_append (&res, &rlen, "\n");
        snprintf (buf, sizeof (buf), "%u:%llu:%u\n", (unsigned) uid, start, CAPSA_SUBID_COUNT);
        str_append (&res, &rlen, buf);
        *out = steal_ptr (&res);
        *changed = true;
        return 0;
    }
    if (mine == -1)
        return capsa_error_make (err, 0, "no mapping entry for %s in %s", name, file);
    if (mine == -2)
        return capsa_error_make (err, 0, "the entries of %s in %s all have fewer than %u ids", name, file,
                                 CAPSA_SUBID_COUNT);
    const struct subid_line *e = &lines[mine];
    res = xstrdup ("");
    for (size_t i = 0; i < n; i++) {
        const struct subid_line *l = &lines[i];
        bool last_line = l->text + l->len == text + strlen (text);
        cleanup_free char *copy = xmalloc (l->len + 1);
        memcpy (copy, l->text, l->len);
        copy[l->len] = '\0';
        /* Removing or disabling applies to every entry shadow would give
         * the user (by name or uid), not only the one chosen for use. */
        bool every = l->valid && l->mine;
        if (every && op == SUBID_REMOVE) {
            *changed = true;
            continue;
        }
        if (every && op == SUBID_DISABLE && !l->disabled) {
            str_append (&res, &rlen, "!");
            *changed = true;
        }
        const char *shown = copy;
        if (l == e && op == SUBID_ENABLE && l->disabled) {
            shown = copy + 1;
            *changed = true;
        }
        str_append (&res, &rlen, shown);
        if (!last_line)
            str_append (&res, &rlen, "\n");
    }
    if (text[0] && text[strlen (text) - 1] == '\n' && (rlen == 0 || res[rlen - 1] != '\n') && rlen > 0)
        str_append (&res, &rlen, "\n");
    *out = steal_ptr (&res);
    return 0;
}
