/* capsa config fakeroot --add|--remove|--enable|--disable USER: give a
 * user (or take away) the subordinate ids of /etc/subuid and /etc/subgid
 * that --fakeroot maps (src/runtime/fakeroot.h).  Root only.
 *
 * The files belong to shadow's tools (useradd, usermod, newuidmap), so the
 * update takes their locks: lckpwdf() (/etc/.pwd.lock) and the per-file
 * lock FILE.lock (a link to a file holding our pid, as shadow's commonio
 * makes it; a lock whose process is gone is stale and removed).  Both
 * files are edited in memory first (an error changes nothing), then each
 * is written to a temporary file beside it with the old owner and mode,
 * synced and renamed over it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <shadow.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "lib/log.h"
#include "lib/utils.h"
#include "runtime/fakeroot.h"

static const char usage[] = "usage: capsa config fakeroot --add|--remove|--enable|--disable USER";

/* shadow's per-file lock: FILE.lock, made by linking a file that holds our
 * pid, so that it appears whole or not at all. */
static int
file_lock (const char *file, capsa_error_t *err)
{
    cleanup_free char *lock = xasprintf ("%s.lock", file);
    cleanup_free char *mine = xasprintf ("%s.capsa.%d", file, (int) getpid ());
    char pid[32];
    int n = snprintf (pid, sizeof (pid), "%d", (int) getpid ());
    cleanup_close int fd = open (mine, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || write_all (fd, pid, (size_t) n) < 0) {
        int e = errno;
        unlink (mine);
        return capsa_error_make (err, e, "cannot create %s", mine);
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (link (mine, lock) == 0) {
            unlink (mine);
            return 0;
        }
        if (errno != EEXIST)
            break;
        /* Held: by a live process, or stale. */
        char buf[32] = { 0 };
        cleanup_close int lfd = open (lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        long holder = 0;
        if (lfd >= 0 && read (lfd, buf, sizeof (buf) - 1) > 0)
            parse_long (trim (buf), 1, INT32_MAX, &holder);
        if (holder > 0 && (kill ((pid_t) holder, 0) == 0 || errno != ESRCH)) {
            unlink (mine);
            return capsa_error_make (err, 0, "%s is locked by process %ld (useradd, usermod or another capsa config?)",
                                     file, holder);
        }
        unlink (lock);
    }
    int e = errno;
    unlink (mine);
    return capsa_error_make (err, e, "cannot lock %s", file);
}

static void
file_unlock (const char *file)
{
    cleanup_free char *lock = xasprintf ("%s.lock", file);
    unlink (lock);
}

/* The file's text ("" when it does not exist) and its owner and mode. */
static int
read_subid_file (const char *path, char **text, struct stat *st, capsa_error_t *err)
{
    size_t len;
    cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT) {
        *text = xstrdup ("");
        memset (st, 0, sizeof (*st));
        st->st_mode = S_IFREG | 0644;
        return 0;
    }
    if (fd < 0)
        return capsa_error_make (err, errno, "cannot open %s", path);
    if (fstat (fd, st) < 0 || !S_ISREG (st->st_mode))
        return capsa_error_make (err, 0, "%s is not a regular file", path);
    if (read_fd_all (fd, 64 << 20, text, &len, err) < 0)
        return capsa_error_wrap (err, "%s", path);
    if (strlen (*text) != len)
        return capsa_error_make (err, 0, "%s: contains a NUL byte", path);
    return 0;
}

/* Replace PATH by TEXT: temporary file beside it, same owner and mode,
 * synced, renamed over it, directory synced. */

static int
config_fakeroot (enum capsa_subid_op op, const char *user, capsa_error_t *err)
{
    static const char *const files[2] = { CAPSA_SUBUID_FILE, CAPSA_SUBGID_FILE };
    struct passwd *pw = getpwnam (user);
    char *texts[2] = { NULL, NULL }, *out[2] = { NULL, NULL };
    bool changed[2] = { false, false };
    struct stat st[2];
    int locked = 0, ret = -1;

    if (pw == NULL)
        return capsa_error_make (err, 0, "user '%s' does not exist", user);
    if (lckpwdf () < 0)
        return capsa_error_make (err, errno, "cannot lock the password files (/etc/.pwd.lock)");
    for (; locked < 2; locked++)
        if (file_lock (files[locked], err) < 0)
            goto out;
    for (int i = 0; i < 2; i++) {
        if (read_subid_file (files[i], &texts[i], &st[i], err) < 0
            || capsa_subid_edit (texts[i], files[i], op, pw->pw_name, pw->pw_uid, &out[i], &changed[i], err) < 0)
            goto out;
    }
    for (int i = 0; i < 2; i++) {
        if (!changed[i]) {
            verbosef ("%s: nothing to change for %s", files[i], pw->pw_name);
            continue;
        }
        if (write_file_atomic (files[i], out[i], st[i].st_uid, st[i].st_gid, st[i].st_mode, err) < 0)
            goto out;
        verbosef ("%s updated for %s", files[i], pw->pw_name);
    }
    ret = 0;
out:
    while (locked-- > 0)
        file_unlock (files[locked]);
    ulckpwdf ();
    for (int i = 0; i < 2; i++) {
        free (texts[i]);
        free (out[i]);
    }
    return ret;
}

int
cmd_config (int argc, char **argv)
{
    static const struct option opts[] = {
        { "add", no_argument, NULL, 'a' },     { "remove", no_argument, NULL, 'r' },
        { "enable", no_argument, NULL, 'e' },  { "disable", no_argument, NULL, 'd' },
        { NULL, 0, NULL, 0 },
    };
    capsa_error_t err = NULL;
    int c, nops = 0;
    enum capsa_subid_op op = SUBID_ADD;

    if (argc < 2 || strcmp (argv[1], "fakeroot") != 0)
        capsa_die ("%s", argc < 2 ? usage : "config: unknown subcommand (only 'fakeroot')");
    argc--;
    argv++;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long (argc, argv, "+ared", opts, NULL)) != -1) {
        switch (c) {
        case 'a': op = SUBID_ADD; nops++; break;
        case 'r': op = SUBID_REMOVE; nops++; break;
        case 'e': op = SUBID_ENABLE; nops++; break;
        case 'd': op = SUBID_DISABLE; nops++; break;
        default:
            capsa_die ("config fakeroot: unknown option '%s' (%s)", argv[optind - 1], usage);
        }
    }
    if (nops != 1)
        capsa_die ("config fakeroot: give exactly one of --add, --remove, --enable, --disable (%s)", usage);
    if (optind != argc - 1)
        capsa_die ("%s", usage);
    if (geteuid () != 0)
        capsa_die ("config fakeroot: only root can change %s and %s", CAPSA_SUBUID_FILE, CAPSA_SUBGID_FILE);
    if (config_fakeroot (op, argv[optind], &err) < 0)
        capsa_error_fatal (&err);
    return 0;
}
