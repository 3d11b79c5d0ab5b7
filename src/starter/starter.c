/* capsa's starter: the only program that may run with privilege.
 *
 * Installed setuid-root in PREFIX/libexec/capsa/starter; also used, without
 * the setuid bit or with it ignored, by root and for user-namespace runs.
 * It trusts nothing it is given: it cleans its environment before anything
 * else, reads capsa.conf itself from the compiled-in root-owned path, parses
 * the command line itself, and opens everything the user names with the
 * user's own identity (see runtime/privs.h for the order of privilege
 * changes).
 *
 * Usage (from the capsa front end):
 *   starter [-q|-v|-d] [--config=FILE] exec|run|shell [options] IMAGE [COMMAND...]
 *   starter [-q|-v|-d] [--config=FILE] start|run --instance=NAME [options] IMAGE [ARGS...]
 *   starter [-q|-v|-d] exec|run|shell [options] instance://NAME [COMMAND...]
 *   starter [-q|-v|-d] instance list|stop [--user=NAME] [--all] [--signal=N] [--timeout=S] [NAME]
 * (instances: runtime/instance.h)
 *
 * --config=FILE (capsa's -c/--config) replaces capsa.conf only where no
 * privilege is used with it: for root, and for a user in user-namespace
 * mode, after the starter has given up root for good.  A setuid run never
 * reads a configuration file the user chose.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "lib/log.h"
#include "lib/utils.h"
#include "runtime/conf.h"
#include "runtime/container.h"
#include "runtime/instance.h"
#include "runtime/privs.h"

extern char **environ;

/* Standard descriptors must exist (else a file we open could become
 * stdout), and nothing else may be inherited but the descriptors the
 * front end named with --seccomp-fd=N (compiled filters, checked later
 * like any other user input) and --key-fd=N (the volume key of an
 * encrypted image: never read here, only handed to the user's
 * capsa-cryptfuse).  Whether those are what they claim to be is checked
 * once the command line is parsed (check_passed_fds). */
static bool
kept (const int *list, int n, int fd)
{
    for (int i = 0; i < n; i++)
        if (list[i] == fd)
            return true;
    return false;
}

static int keep[16]; /* kept by sanitize_fds: any --key-fd=N/--seccomp-fd=N in argv */
static int nkeep;

static void
sanitize_fds (int argc, char **argv)
{
    struct stat st;
    for (int fd = 0; fd <= 2; fd++) {
        if (fstat (fd, &st) < 0 && errno == EBADF) {
            int n = open ("/dev/null", O_RDWR);
            if (n != fd)
                _exit (CAPSA_EXIT_FATAL);
        }
    }
    for (int i = 1; i < argc && nkeep < (int) ARRAY_SIZE (keep); i++) {
        long fd;
        if (strncmp (argv[i], "--seccomp-fd=", 13) == 0 && parse_long (argv[i] + 13, 3, 1 << 20, &fd) == 0)
            keep[nkeep++] = (int) fd;
        else if (strncmp (argv[i], "--key-fd=", 9) == 0 && parse_long (argv[i] + 9, 3, 1 << 20, &fd) == 0)
            keep[nkeep++] = (int) fd;
    }
    /* Every open descriptor from 3 up, from /proc/self/fd (close_range
     * may be missing, and RLIMIT_NOFILE may be huge). */
    int dir = open ("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        _exit (CAPSA_EXIT_FATAL);
    DIR *d = fdopendir (dir);
    if (d == NULL)
        _exit (CAPSA_EXIT_FATAL);
    struct strv fds = { 0 };
    for (struct dirent *e = readdir (d); e; e = readdir (d))
        if (e->d_name[0] != '.')
            strv_push (&fds, e->d_name);
    closedir (d);
    for (size_t i = 0; i < fds.n; i++) {
        long fd;
        if (parse_long (fds.v[i], 3, INT32_MAX, &fd) < 0 || fd == dir)
            continue;
        if (kept (keep, nkeep, (int) fd))
            fcntl ((int) fd, F_SETFD, FD_CLOEXEC);
        else
            close ((int) fd);
    }
    strv_free (&fds);
}

/* --key-fd must be an open pipe, --seccomp-fd an open sealed memfd: any
 * other descriptor number (a closed one, which the starter's own files
 * would reuse, or a file of the user's) is refused before anything is
 * done with it. */
static void
check_passed_fds (const struct capsa_opts *o)
{
    struct stat st;
    /* A number that was kept but is not what the options say (written
     * after IMAGE, or as another option's value) is closed now. */
    for (int i = 0; i < nkeep; i++) {
        bool used = keep[i] == o->key_fd;
        for (size_t k = 0; k < o->nseccomp_fds; k++)
            used |= keep[i] == o->seccomp_fds[k];
        if (!used)
            close (keep[i]);
    }
    if (o->key_fd >= 0) {
        if (fstat (o->key_fd, &st) < 0)
            capsa_die ("--key-fd=%d: not an open descriptor", o->key_fd);
        if (!S_ISFIFO (st.st_mode))
            capsa_die ("--key-fd=%d: not a pipe", o->key_fd);
    }
    for (size_t i = 0; i < o->nseccomp_fds; i++) {
        int fd = o->seccomp_fds[i];
        const int need = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
        if (fstat (fd, &st) < 0)
            capsa_die ("--seccomp-fd=%d: not an open descriptor", fd);
        int seals = fcntl (fd, F_GET_SEALS);
        if (!S_ISREG (st.st_mode) || seals < 0 || (seals & need) != need)
            capsa_die ("--seccomp-fd=%d: not a sealed memfd", fd);
        if (fd == o->key_fd)
            capsa_die ("--seccomp-fd=%d is also --key-fd", fd);
    }
}

/* Keep the caller's environment only as data for the command inside; the
 * starter itself runs with an empty, fixed one. */
static void
sanitize_environment (struct strv *saved)
{
    for (char **e = environ; e && *e; e++)
        strv_push (saved, *e);
    clearenv ();
    setenv ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 1);
}

static int
lookup_user (struct capsa_user *u, uid_t uid, gid_t gid, capsa_error_t *err)
{
    struct passwd *pw = getpwuid (uid);
    int n;

    u->uid = uid;
    u->gid = gid;
    if (pw == NULL)
        return capsa_error_make (err, 0, "user %u is not in the password database", uid);
    u->name = xstrdup (pw->pw_name);
    u->gecos = xstrdup (pw->pw_gecos ? pw->pw_gecos : "");
    u->home = xstrdup (pw->pw_dir && pw->pw_dir[0] == '/' ? pw->pw_dir : "/");
    u->shell = xstrdup (pw->pw_shell && pw->pw_shell[0] ? pw->pw_shell : "/bin/sh");
    n = getgroups (0, NULL);
    if (n < 0)
        return capsa_error_make (err, errno, "getgroups");
    u->groups = xcalloc ((size_t) n + 1, sizeof (gid_t));
    n = getgroups (n, u->groups);
    if (n < 0)
        return capsa_error_make (err, errno, "getgroups");
    u->ngroups = n;
    return 0;
}

int
main (int argc, char **argv)
{
    struct capsa_conf conf;
    struct capsa_opts opts;
    struct capsa_container c;
    capsa_error_t err = NULL;
    uid_t uid = getuid ();
    gid_t gid = getgid ();
    bool setuid_install = geteuid () == 0 && uid != 0;
    int i = 1, rc;
    const char *config = NULL;

    sanitize_fds (argc, argv);
    memset (&c, 0, sizeof (c));
    sanitize_environment (&c.host_env);
    /* The caller's umask is the command's (unless --no-umask); capsa's own
     * files are made with 022. */
    c.umask = umask (022);
    /* Not dumpable while privileged: no core files, no ptrace by the user. */
    prctl (PR_SET_DUMPABLE, 0, 0, 0, 0);

    /* Right away, run as the user (root only in the saved set-user-ID). */
    if (setuid_install && capsa_privs_init (MODE_SETUID, uid, gid, &err) < 0)
        capsa_error_fatal (&err);

    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp (argv[i], "-q") == 0)
            capsa_log_set_level (CAPSA_LOG_ERROR);
        else if (strcmp (argv[i], "-v") == 0)
            capsa_log_set_level (CAPSA_LOG_VERBOSE);
        else if (strcmp (argv[i], "-d") == 0)
            capsa_log_set_level (CAPSA_LOG_DEBUG);
        else if (strncmp (argv[i], "--config=", 9) == 0 && argv[i][9] != '\0')
            config = argv[i] + 9;
        else
            capsa_die ("unknown global option '%s'", argv[i]);
    }
    if (i >= argc)
        capsa_die ("usage: starter [-q|-v|-d] [--config=FILE] exec|run|shell|start [options] IMAGE [COMMAND...]\n"
                   "       starter [-q|-v|-d] instance list|stop [options] [NAME]");

    /* Configuration from the compiled-in path only.  In a setuid install it
     * must be root's and not writable by anyone else. */
    capsa_conf_init (&conf);
    if (capsa_conf_load (&conf, CAPSA_SYSCONFDIR "/capsa.conf", setuid_install, &err) < 0)
        capsa_error_fatal (&err);

    /* Listing and stopping instances (runtime/instance.h). */
    if (strcmp (argv[i], "instance") == 0) {
        if (config != NULL)
            capsa_die ("--config is not used by 'instance'");
        return capsa_instance_command (argc - i, argv + i, &conf, setuid_install, uid, gid);
    }

    if (capsa_opts_parse (&opts, argc - i, argv + i, &err) < 0)
        capsa_error_fatal (&err);
    check_passed_fds (&opts);
    /* Joining an instance (instance://NAME): where its record is decides
     * the mode. */
    const bool join = capsa_instance_is_uri (opts.image);
    if (join && capsa_instance_join_options (&opts, setuid_install, uid, conf.allow_setuid, &err) < 0)
        capsa_error_fatal (&err);
    if (config != NULL && setuid_install && uid != 0 && !opts.userns)
        capsa_die ("--config %s: a configuration file of your choice is used only by root and in user-namespace "
                   "mode (add --userns); the setuid starter reads only %s/capsa.conf",
                   config, CAPSA_SYSCONFDIR);

    /* --fakeroot is a user namespace of the caller's own (fakeroot.h):
     * the setuid starter gives root up at once, as with --userns. */
    if (opts.fakeroot && uid == 0) {
        verbosef ("--fakeroot: already root, nothing to map");
        opts.fakeroot = false;
    }
    c.fakeroot = opts.fakeroot;
    if (uid == 0)
        c.mode = MODE_ROOT;
    else if (setuid_install && conf.allow_setuid && !opts.userns && !opts.fakeroot)
        c.mode = MODE_SETUID;
    else
        c.mode = MODE_USERNS;
    if (c.mode == MODE_USERNS) {
        if (!conf.allow_user_ns)
            capsa_die ("%suser namespaces are disabled by the administrator ('allow user ns = no')%s",
                       opts.fakeroot ? "--fakeroot runs in a user namespace, and " : "",
                       setuid_install && !conf.allow_setuid ? " and so is setuid ('allow setuid = no')" : "");
        if (capsa_privs_init (MODE_USERNS, uid, gid, &err) < 0)
            capsa_error_fatal (&err);
        if (opts.userns)
            verbosef ("running in a user namespace as requested (--userns)");
    }
    if (config != NULL) {
        /* Root's choice, or a user's with nothing privileged left (the
         * mode above gave root up for good). */
        if (c.mode == MODE_SETUID)
            capsa_die ("--config is not accepted in setuid mode");
        capsa_conf_free (&conf);
        capsa_conf_init (&conf);
        if (capsa_conf_load (&conf, config, false, &err) < 0)
            capsa_error_fatal (&err);
        verbosef ("configuration from %s (--config)", config);
    }
    for (size_t k = 0; k < conf.warnings.n; k++)
        warnf ("%s", conf.warnings.v[k]);
    for (size_t k = 0; k < opts.warnings.n; k++)
        warnf ("%s", opts.warnings.v[k]);

    if (lookup_user (&c.user, uid, gid, &err) < 0)
        capsa_error_fatal (&err);
    c.conf = &conf;
    c.opts = &opts;
    c.stage_dir = xstrdup (CAPSA_LIBEXECDIR "/mnt");
    c.grants_path = CAPSA_SYSCONFDIR "/capability.json";
    if (c.fakeroot && capsa_fakeroot_prepare (&c, &err) < 0)
        capsa_error_fatal (&err);
    if (capsa_caps_select (&c, &err) < 0 || capsa_security_prepare (&c, &err) < 0)
        capsa_error_fatal (&err);
    c.host_cwd = getcwd (NULL, 0);
    if (c.host_cwd == NULL)
        warnf ("cannot determine the current directory: %s", strerror (errno));

    if (join)
        rc = capsa_instance_join (&c, &err);
    else if (opts.instance != NULL)
        rc = capsa_instance_start (&c, &err);
    else
        rc = capsa_container_run (&c, &err);
    if (rc < 0)
        capsa_error_fatal (&err);
    return rc;
}
