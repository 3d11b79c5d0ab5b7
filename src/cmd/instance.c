/* capsa instance start|run|stop|list|stats: the front end's part.
 *
 * start and run take the options of exec (src/cmd/action.c) and run the
 * starter with its output going to the instance's log files, which this
 * process makes, as the user: HOME/.capsa/instances/logs/HOST/USER/
 * NAME.{out,err} (Apptainer's are under ~/.apptainer/instances/logs/).
 * The starter returns once the instance is recorded; what it said goes
 * on to the terminal.  list, stop and stats ask the starter, which alone
 * reads root's records of setuid instances (src/runtime/instance.h):
 * `starter instance list|stop`, whose records (runtime/inststate.h) this
 * process formats.  Nothing here is privileged. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "config.h"
#include "lib/log.h"
#include "lib/utils.h"
#include "runtime/inststate.h"

static const char *
starter_path (void)
{
    const char *override = getenv ("CAPSA_STARTER");
    /* For development only: a starter outside the installation is never
     * setuid, so this cannot be used to gain anything. */
    if (override && *override && getuid () != 0)
        return override;
    return CAPSA_LIBEXECDIR "/starter";
}

static void
push_level (struct strv *args)
{
    switch (capsa_log_get_level ()) {
    case CAPSA_LOG_FATAL:
    case CAPSA_LOG_ERROR:
        strv_push (args, "-q");
        break;
    case CAPSA_LOG_VERBOSE:
        strv_push (args, "-v");
        break;
    case CAPSA_LOG_DEBUG:
        strv_push (args, "-d");
        break;
    default:
        break;
    }
}

/* Run the starter with ARGS; its standard output is returned in *OUT
 * (when OUT is not NULL), its messages go to our standard error.
 * Returns its exit status. */
static int
run_starter (struct strv *args, char **out)
{
    int pfd[2] = { -1, -1 };
    if (out && pipe2 (pfd, O_CLOEXEC) < 0)
        capsa_die ("pipe: %s", strerror (errno));
    fflush (NULL);
    pid_t pid = fork ();
    if (pid < 0)
        capsa_die ("fork: %s", strerror (errno));
    if (pid == 0) {
        if (out && dup2 (pfd[1], STDOUT_FILENO) < 0)
            _exit (CAPSA_EXIT_FATAL);
        execv (starter_path (), args->v);
        capsa_die ("cannot run the starter %s: %s", starter_path (), strerror (errno));
    }
    if (out) {
        close (pfd[1]);
        capsa_error_t err = NULL;
        if (read_fd_all (pfd[0], 64 << 20, out, NULL, &err) < 0)
            capsa_error_fatal (&err);
        close (pfd[0]);
    }
    int status;
    while (waitpid (pid, &status, 0) < 0)
        if (errno != EINTR)
            capsa_die ("waitpid: %s", strerror (errno));
    return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

/* The records the starter lists for PATTERN (USER: --user, root only). */
struct records {
    struct capsa_inst_state *v;
    size_t n;
};

static void
records_free (struct records *r)
{
    for (size_t i = 0; i < r->n; i++)
        capsa_inst_state_free (&r->v[i]);
    free (r->v);
    memset (r, 0, sizeof (*r));
}

static void
list_records (const char *user, const char *pattern, struct records *r)
{
    struct strv args = { 0 };
    cleanup_free char *out = NULL;
    strv_push (&args, "capsa-starter");
    push_level (&args);
    strv_push (&args, "instance");
    strv_push (&args, "list");
    if (user)
        strv_push_take (&args, xasprintf ("--user=%s", user));
    strv_push (&args, pattern);
    int status = run_starter (&args, &out);
    strv_free (&args);
    if (status != 0)
        exit (status);
    memset (r, 0, sizeof (*r));
    size_t len = strlen (out), pos = 0;
    while (pos < len) {
        capsa_error_t err = NULL;
        size_t used = 0;
        r->v = xrealloc (r->v, (r->n + 1) * sizeof (*r->v));
        if (capsa_inst_state_parse (out + pos, len - pos, &r->v[r->n], &used, &err) < 0)
            capsa_error_fatal (&err);
        r->n++;
        pos += used;
    }
    /* Those whose init has ended: said once, and the starter removed them. */
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (r->v[i].has_state && !r->v[i].running) {
            warnf ("instance %s is no longer running (its init, pid %d, has ended); its record was removed",
                   r->v[i].name, (int) r->v[i].pid);
            capsa_inst_state_free (&r->v[i]);
            continue;
        }
        r->v[k++] = r->v[i];
    }
    r->n = k;
}

/* ---- start, run ------------------------------------------------------------ */

/* DIR/NAME as a directory of ours (0700 when made), never through a
 * symbolic link. */
static int
own_dir (int dirfd, const char *name, const char *shown)
{
    int fd = openat (dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (mkdirat (dirfd, name, 0700) < 0 && errno != EEXIST)
            capsa_die ("cannot create %s: %s", shown, strerror (errno));
        fd = openat (dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0)
        capsa_die ("%s: %s", shown, strerror (errno));
    return fd;
}

/* Copy what the log ERRFD got after OFFSET to our standard error: all of
 * it (ALL), or only capsa's own messages. */
static void
show_log (int errfd, off_t offset, bool all)
{
    cleanup_free char *text = NULL;
    off_t end = lseek (errfd, 0, SEEK_END);
    if (end <= offset || end - offset > (16 << 20))
        return;
    text = xmalloc ((size_t) (end - offset) + 1);
    if (pread_all (errfd, text, (size_t) (end - offset), offset) < 0)
        return;
    text[end - offset] = '\0';
    static const char *const prefixes[] = { "FATAL:", "ERROR:", "WARNING:", "INFO:", "VERBOSE:", "DEBUG:" };
    for (char *l = text; *l;) {
        char *nl = strchr (l, '\n');
        size_t n = nl ? (size_t) (nl - l + 1) : strlen (l);
        bool ours = false;
        for (size_t i = 0; i < ARRAY_SIZE (prefixes); i++)
            ours |= strncmp (l, prefixes[i], strlen (prefixes[i])) == 0;
        if (all || ours)
            fwrite (l, 1, n, stderr);
        l += n;
    }
}

int
capsa_cmd_instance_launch (const char *starter, struct strv *args, const char *name)
{
    struct passwd *pw = getpwuid (getuid ());
    if (pw == NULL || pw->pw_dir == NULL || pw->pw_dir[0] != '/')
        capsa_die ("you are not in the password database (or have no home directory)");

    /* One name, whatever the mode: refused while an instance has it. */
    struct records r;
    list_records (NULL, name, &r);
    bool taken = false;
    for (size_t i = 0; i < r.n; i++)
        taken |= strcmp (r.v[i].name, name) == 0;
    records_free (&r);
    if (taken)
        capsa_die ("instance %s already exists", name);

    /* The logs, as ours. */
    char host[256] = { 0 };
    if (gethostname (host, sizeof (host) - 1) < 0 || host[0] == '\0' || strchr (host, '/') || strcmp (host, ".") == 0
        || strcmp (host, "..") == 0)
        snprintf (host, sizeof (host), "localhost");
    const char *comps[] = { ".capsa", "instances", "logs", host, pw->pw_name };
    cleanup_free char *shown = xstrdup (pw->pw_dir);
    size_t slen = strlen (shown);
    int dir = open (pw->pw_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        capsa_die ("home directory %s: %s", pw->pw_dir, strerror (errno));
    for (size_t i = 0; i < ARRAY_SIZE (comps); i++) {
        str_append (&shown, &slen, "/");
        str_append (&shown, &slen, comps[i]);
        int next = own_dir (dir, comps[i], shown);
        close (dir);
        dir = next;
    }
    cleanup_free char *outname = xasprintf ("%s.out", name), *errname = xasprintf ("%s.err", name);
    cleanup_close int outfd = openat (dir, outname, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);
    cleanup_close int errfd = openat (dir, errname, O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);
    close (dir);
    if (outfd < 0 || errfd < 0)
        capsa_die ("cannot open the logs of instance %s in %s: %s", name, shown, strerror (errno));
    struct stat so, se;
    if (fstat (outfd, &so) < 0 || fstat (errfd, &se) < 0 || !S_ISREG (so.st_mode) || !S_ISREG (se.st_mode))
        capsa_die ("the logs of instance %s in %s are not regular files", name, shown);
    off_t offset = lseek (errfd, 0, SEEK_END);

    fflush (NULL);
    pid_t pid = fork ();
    if (pid < 0)
        capsa_die ("fork: %s", strerror (errno));
    if (pid == 0) {
        int null = open ("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null < 0 || dup2 (null, STDIN_FILENO) < 0 || dup2 (outfd, STDOUT_FILENO) < 0
            || dup2 (errfd, STDERR_FILENO) < 0)
            _exit (CAPSA_EXIT_FATAL);
        execv (starter, args->v);
        capsa_die ("cannot run the starter %s: %s", starter, strerror (errno));
    }
    int status;
    while (waitpid (pid, &status, 0) < 0)
        if (errno != EINTR)
            capsa_die ("waitpid: %s", strerror (errno));
    int rc = WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
    show_log (errfd, offset, rc != 0);
    if (rc != 0) {
        verbosef ("instance %s: its log is %s/%s", name, shown, errname);
        return rc;
    }
    verbosef ("instance %s: output in %s/%s, errors in %s/%s", name, shown, outname, shown, errname);
    infof ("instance %s started", name);
    return 0;
}

/* ---- list ----------------------------------------------------------------- */

/* Apptainer's table: columns as wide as their widest cell plus 4. */
static void
print_table (const char *const *head, size_t ncol, char ***rows, size_t nrows)
{
    size_t w[8] = { 0 };
    for (size_t c = 0; c < ncol; c++) {
        w[c] = strlen (head[c]);
        for (size_t r = 0; r < nrows; r++)
            if (strlen (rows[r][c]) > w[c])
                w[c] = strlen (rows[r][c]);
    }
    for (size_t c = 0; c < ncol; c++)
        printf ("%-*s", c + 1 < ncol ? (int) (w[c] + 4) : 0, head[c]);
    printf ("\n");
    for (size_t r = 0; r < nrows; r++) {
        for (size_t c = 0; c < ncol; c++)
            printf ("%-*s", c + 1 < ncol ? (int) (w[c] + 4) : 0, rows[r][c]);
        printf ("\n");
    }
}

/* S for a terminal: control bytes (a record's image path is the user's
 * choice, and root lists other users' records) shown as '?'. */
static char *
shown (const char *s)
{
    char *out = xstrdup (s ? s : "");
    for (unsigned char *p = (unsigned char *) out; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
    return out;
}

static int
cmd_list (int argc, char **argv)
{
    static const struct option longopts[] = {
        { "json", no_argument, NULL, 'j' },
        { "logs", no_argument, NULL, 'l' },
        { "user", required_argument, NULL, 'u' },
        { "all", no_argument, NULL, 'a' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool json = capsa_optenv_bool ("JSON") == 1, logs = capsa_optenv_bool ("LOGS") == 1;
    const char *user = NULL;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long (argc, argv, "+jlu:ah", longopts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = true;
            break;
        case 'l':
            logs = true;
            break;
        case 'u':
            user = optarg;
            break;
        case 'a':
            break; /* Apptainer's --sharens instances: capsa has none */
        case 'h':
            capsa_print_help ("instance");
            return 0;
        default:
            capsa_die ("instance list: unknown option '%s' (see 'capsa help instance')", argv[optind - 1]);
        }
    }
    if (optind + 1 < argc)
        capsa_die ("instance list: at most one NAME (a pattern) is taken");
    const char *pattern = optind < argc ? argv[optind] : "*";
    if (json && logs)
        capsa_die ("instance list: --json and --logs do not go together");
    if (user && getuid () != 0)
        capsa_die ("only root may list another user's instances (--user)");

    struct records r;
    list_records (user, pattern, &r);
    if (json) {
        json_object *arr = json_object_new_array ();
        for (size_t i = 0; i < r.n; i++) {
            json_object *o = json_object_new_object ();
            json_object_object_add (o, "instance", json_object_new_string (r.v[i].name));
            json_object_object_add (o, "pid", json_object_new_int (r.v[i].pid));
            json_object_object_add (o, "img", json_object_new_string (r.v[i].image));
            json_object_object_add (o, "ip", json_object_new_string (""));
            json_object_object_add (o, "logErrPath", json_object_new_string (r.v[i].log_err ? r.v[i].log_err : ""));
            json_object_object_add (o, "logOutPath", json_object_new_string (r.v[i].log_out ? r.v[i].log_out : ""));
            json_object_array_add (arr, o);
        }
        json_object *top = json_object_new_object ();
        json_object_object_add (top, "instances", arr);
        printf ("%s\n", json_object_to_json_string_ext (top, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_PRETTY_TAB | JSON_C_TO_STRING_SPACED
                                                                 | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put (top);
        records_free (&r);
        return 0;
    }
    char ***rows = xcalloc (r.n + 1, sizeof (char **));
    for (size_t i = 0; i < r.n; i++) {
        rows[i] = xcalloc (4, sizeof (char *));
        rows[i][0] = xstrdup (r.v[i].name);
        rows[i][1] = xasprintf ("%d", (int) r.v[i].pid);
        if (logs) {
            cleanup_free char *err_path = shown (r.v[i].log_err), *out_path = shown (r.v[i].log_out);
            rows[i][2] = xasprintf ("%s\n\t\t%s", err_path, out_path);
        } else {
            rows[i][2] = xstrdup ("");
            rows[i][3] = shown (r.v[i].image);
        }
    }
    if (logs) {
        static const char *const head[] = { "INSTANCE NAME", "PID", "LOGS" };
        print_table (head, 3, rows, r.n);
    } else {
        static const char *const head[] = { "INSTANCE NAME", "PID", "IP", "IMAGE" };
        print_table (head, 4, rows, r.n);
    }
    for (size_t i = 0; i < r.n; i++) {
        for (int k = 0; k < 4; k++)
            free (rows[i][k]);
        free (rows[i]);
    }
    free (rows);
    records_free (&r);
    return 0;
}

/* ---- stop ----------------------------------------------------------------- */

static const struct {
    const char *name;
    int sig;
} signals[] = {
    { "HUP", SIGHUP },   { "INT", SIGINT },     { "QUIT", SIGQUIT },   { "ILL", SIGILL },   { "TRAP", SIGTRAP },
    { "ABRT", SIGABRT }, { "BUS", SIGBUS },     { "FPE", SIGFPE },     { "KILL", SIGKILL }, { "USR1", SIGUSR1 },
    { "SEGV", SIGSEGV }, { "USR2", SIGUSR2 },   { "PIPE", SIGPIPE },   { "ALRM", SIGALRM }, { "TERM", SIGTERM },
    { "STKFLT", SIGSTKFLT }, { "CHLD", SIGCHLD }, { "CONT", SIGCONT }, { "STOP", SIGSTOP }, { "TSTP", SIGTSTP },
    { "TTIN", SIGTTIN }, { "TTOU", SIGTTOU },   { "URG", SIGURG },     { "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ },
    { "VTALRM", SIGVTALRM }, { "PROF", SIGPROF }, { "WINCH", SIGWINCH }, { "IO", SIGIO }, { "PWR", SIGPWR },
    { "SYS", SIGSYS },
};

/* A signal by number, or by name with or without SIG (any case). */
static int
signal_number (const char *s)
{
    long n;
    if (parse_long (s, 1, 64, &n) == 0)
        return (int) n;
    const char *p = strncasecmp (s, "SIG", 3) == 0 ? s + 3 : s;
    for (size_t i = 0; i < ARRAY_SIZE (signals); i++)
        if (strcasecmp (p, signals[i].name) == 0)
            return signals[i].sig;
    return -1;
}

static int
cmd_stop (int argc, char **argv)
{
    static const struct option longopts[] = {
        { "all", no_argument, NULL, 'a' },        { "force", no_argument, NULL, 'F' },
        { "signal", required_argument, NULL, 's' }, { "timeout", required_argument, NULL, 't' },
        { "user", required_argument, NULL, 'u' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool all = capsa_optenv_bool ("ALL") == 1, force = capsa_optenv_bool ("FORCE") == 1;
    const char *sigspec = capsa_optenv ("SIGNAL"), *user = NULL;
    long timeout = 10;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long (argc, argv, "+aFs:t:u:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'a':
            all = true;
            break;
        case 'F':
            force = true;
            break;
        case 's':
            sigspec = optarg;
            break;
        case 't':
            if (parse_long (optarg, 0, 86400, &timeout) < 0)
                capsa_die ("instance stop: invalid --timeout '%s' (seconds, 0 to 86400)", optarg);
            break;
        case 'u':
            user = optarg;
            break;
        case 'h':
            capsa_print_help ("instance");
            return 0;
        case ':':
            capsa_die ("instance stop: option '%s' needs a value", argv[optind - 1]);
        default:
            capsa_die ("instance stop: unknown option '%s' (see 'capsa help instance')", argv[optind - 1]);
        }
    }
    if (optind + 1 < argc)
        capsa_die ("instance stop: at most one NAME (a pattern) is taken");
    if (optind >= argc && !all)
        capsa_die ("instance stop: name an instance, or give --all");
    if (user && getuid () != 0)
        capsa_die ("only root may stop another user's instances (--user)");
    int sig = SIGINT;
    if (sigspec && *sigspec && (sig = signal_number (sigspec)) < 0)
        capsa_die ("instance stop: unknown signal '%s'", sigspec);
    if (force)
        sig = SIGKILL;

    struct strv args = { 0 };
    strv_push (&args, "capsa-starter");
    push_level (&args);
    strv_push (&args, "instance");
    strv_push (&args, "stop");
    strv_push_take (&args, xasprintf ("--signal=%d", sig));
    strv_push_take (&args, xasprintf ("--timeout=%ld", timeout));
    if (all)
        strv_push (&args, "--all");
    if (user)
        strv_push_take (&args, xasprintf ("--user=%s", user));
    if (optind < argc)
        strv_push (&args, argv[optind]);
    fflush (NULL);
    execv (starter_path (), args.v);
    capsa_die ("cannot run the starter %s: %s", starter_path (), strerror (errno));
}

/* ---- stats ----------------------------------------------------------------- */

/* The mount point of the cgroup v2 hierarchy (owned), or NULL. */
static char *
cgroup2_mount (void)
{
    cleanup_close int fd = open ("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    cleanup_free char *mi = NULL;
    if (fd < 0 || read_fd_all (fd, 16 << 20, &mi, NULL, NULL) < 0)
        return NULL;
    return capsa_cgroup2_point (mi);
}

/* The regular file NAME of the cgroup directory DIRFD, opened without
 * following a symlink or blocking (a cgroup's files are never FIFOs or
 * devices: what is is not read). */
static int
open_stat_file (int dirfd, const char *name)
{
    int fd = openat (dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode))) {
        close (fd);
        return -1;
    }
    return fd;
}

/* A number from the file NAME in DIRFD ("max" is UINT64_MAX); -1 if absent. */
static int
read_num (int dirfd, const char *name, uint64_t *v)
{
    cleanup_close int fd = open_stat_file (dirfd, name);
    char buf[64] = { 0 };
    if (fd < 0 || read (fd, buf, sizeof (buf) - 1) <= 0)
        return -1;
    if (strncmp (buf, "max", 3) == 0) {
        *v = UINT64_MAX;
        return 0;
    }
    char *end;
    errno = 0;
    *v = strtoull (buf, &end, 10);
    return end == buf || errno ? -1 : 0;
}

/* KEY's value in the "key value" lines of NAME in DIRFD (summed over the
 * lines of io.stat for rbytes=/wbytes=). */
static int
read_keyed (int dirfd, const char *name, const char *key, uint64_t *v)
{
    cleanup_free char *text = NULL;
    cleanup_close int fd = open_stat_file (dirfd, name);
    if (fd < 0 || read_fd_all (fd, 1 << 20, &text, NULL, NULL) < 0)
        return -1;
    bool found = false;
    *v = 0;
    size_t klen = strlen (key);
    for (char *p = text; (p = strstr (p, key)) != NULL; p += klen) {
        if (p != text && p[-1] != '\n' && p[-1] != ' ')
            continue;
        char *end;
        uint64_t x = strtoull (p + klen, &end, 10);
        if (end != p + klen) {
            *v += x;
            found = true;
        }
    }
    return found ? 0 : -1;
}

/* The cgroup directory CGROUP (a record's: absolute, no '.' or '..'
 * components) under the cgroup2 mount MNT, walked one component at a
 * time without following symlinks or leaving the cgroup file system: a
 * record a user wrote cannot make root open anything else. */
static int
open_cgroup_dir (const char *mnt, const char *cgroup)
{
    int cur = open (mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat top, st;
    if (cur < 0 || fstat (cur, &top) < 0) {
        if (cur >= 0)
            close (cur);
        return -1;
    }
    cleanup_free char *copy = xstrdup (cgroup);
    char *save = NULL;
    for (char *comp = strtok_r (copy, "/", &save); comp; comp = strtok_r (NULL, "/", &save)) {
        int next = -1;
        if (strcmp (comp, ".") != 0 && strcmp (comp, "..") != 0)
            next = openat (cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close (cur);
        if (next < 0 || fstat (next, &st) < 0 || st.st_dev != top.st_dev) {
            if (next >= 0)
                close (next);
            return -1;
        }
        cur = next;
    }
    return cur;
}

struct sample {
    bool cpu, mem, memmax, pids, io;
    uint64_t cpu_usec, mem_cur, mem_max, pids_cur, io_r, io_w;
    double when;
};

static void
take_sample (int dir, struct sample *s)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    s->when = (double) now.tv_sec + (double) now.tv_nsec / 1e9;
    s->cpu = read_keyed (dir, "cpu.stat", "usage_usec ", &s->cpu_usec) == 0;
    s->mem = read_num (dir, "memory.current", &s->mem_cur) == 0;
    s->memmax = read_num (dir, "memory.max", &s->mem_max) == 0;
    s->pids = read_num (dir, "pids.current", &s->pids_cur) == 0;
    s->io = read_keyed (dir, "io.stat", "rbytes=", &s->io_r) == 0 && read_keyed (dir, "io.stat", "wbytes=", &s->io_w) == 0;
}

static int
cmd_stats (int argc, char **argv)
{
    static const struct option longopts[] = {
        { "json", no_argument, NULL, 'j' },
        { "no-stream", no_argument, NULL, 'n' },
        { "user", required_argument, NULL, 'u' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool json = false, nostream = false;
    const char *user = NULL;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long (argc, argv, "+ju:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = true;
            break;
        case 'n':
            nostream = true;
            break;
        case 'u':
            user = optarg;
            break;
        case 'h':
            capsa_print_help ("instance");
            return 0;
        default:
            capsa_die ("instance stats: unknown option '%s' (see 'capsa help instance')", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc)
        capsa_die ("usage: capsa instance stats [--json] [--no-stream] [--user USER] NAME");
    const char *name = argv[optind];
    if (!capsa_inst_name_valid (name))
        capsa_die ("'%s' is not a valid instance name", name);
    if (user && getuid () != 0)
        capsa_die ("only root may look at another user's instances (--user)");
    struct records r;
    list_records (user, name, &r);
    if (r.n == 0)
        capsa_die ("no running instance named %s", name);
    struct capsa_inst_state *st = &r.v[0];
    if (st->cgroup == NULL)
        capsa_die ("instance %s has no cgroup of its own, so there are no statistics to show: capsa creates no "
                   "cgroups; start the instance in one of its own (for example 'systemd-run --user --scope capsa "
                   "instance start ...', or a batch job's)",
                   name);
    cleanup_free char *mnt = cgroup2_mount ();
    if (mnt == NULL)
        capsa_die ("instance %s: the cgroup v2 hierarchy is not mounted here", name);
    int dir = open_cgroup_dir (mnt, st->cgroup);
    if (dir < 0)
        capsa_die ("instance %s: cannot open its cgroup", name);
    if (json)
        nostream = true;
    struct sample prev, cur;
    take_sample (dir, &prev);
    if (!prev.cpu && !prev.mem && !prev.pids)
        capsa_die ("instance %s: cannot read the statistics of its cgroup", name);
    if (!json) {
        cleanup_free char *img = shown (st->image), *cg = shown (st->cgroup);
        infof ("instance %s (image %s, init pid %d), cgroup %s", name, img, (int) st->pid, cg);
    }
    for (;;) {
        sleep (1);
        take_sample (dir, &cur);
        double pct = cur.cpu && prev.cpu && cur.when > prev.when
                         ? (double) (cur.cpu_usec - prev.cpu_usec) / ((cur.when - prev.when) * 1e6) * 100.0
                         : 0;
        if (json) {
            json_object *o = json_object_new_object ();
            json_object_object_add (o, "instance", json_object_new_string (name));
            json_object_object_add (o, "pid", json_object_new_int (st->pid));
            json_object_object_add (o, "cgroup", json_object_new_string (st->cgroup));
            json_object *cpu = NULL, *mem = NULL, *pids = NULL, *io = NULL;
            if (cur.cpu) {
                cpu = json_object_new_object ();
                json_object_object_add (cpu, "usage_usec", json_object_new_uint64 (cur.cpu_usec));
                json_object_object_add (cpu, "percent", json_object_new_double (pct));
            }
            if (cur.mem) {
                mem = json_object_new_object ();
                json_object_object_add (mem, "current", json_object_new_uint64 (cur.mem_cur));
                if (cur.memmax && cur.mem_max != UINT64_MAX)
                    json_object_object_add (mem, "max", json_object_new_uint64 (cur.mem_max));
            }
            if (cur.pids) {
                pids = json_object_new_object ();
                json_object_object_add (pids, "current", json_object_new_uint64 (cur.pids_cur));
            }
            if (cur.io) {
                io = json_object_new_object ();
                json_object_object_add (io, "read_bytes", json_object_new_uint64 (cur.io_r));
                json_object_object_add (io, "write_bytes", json_object_new_uint64 (cur.io_w));
            }
            json_object_object_add (o, "cpu", cpu);
            json_object_object_add (o, "memory", mem);
            json_object_object_add (o, "pids", pids);
            json_object_object_add (o, "io", io);
            printf ("%s\n", json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_PRETTY_TAB | JSON_C_TO_STRING_SPACED
                                                                   | JSON_C_TO_STRING_NOSLASHESCAPE));
            json_object_put (o);
            break;
        }
        char cpu[32] = "n/a", mem[64] = "n/a", mempct[32] = "n/a", io[64] = "n/a", pids[32] = "n/a";
        if (cur.cpu)
            snprintf (cpu, sizeof (cpu), "%.2f%%", pct);
        if (cur.mem) {
            char a[24], b[24] = "no limit";
            format_size (cur.mem_cur, a, sizeof (a));
            if (cur.memmax && cur.mem_max != UINT64_MAX) {
                format_size (cur.mem_max, b, sizeof (b));
                snprintf (mempct, sizeof (mempct), "%.2f%%", (double) cur.mem_cur / (double) cur.mem_max * 100.0);
            }
            snprintf (mem, sizeof (mem), "%s / %s", a, b);
        }
        if (cur.io) {
            char a[24], b[24];
            format_size (cur.io_r, a, sizeof (a));
            format_size (cur.io_w, b, sizeof (b));
            snprintf (io, sizeof (io), "%s / %s", a, b);
        }
        if (cur.pids)
            snprintf (pids, sizeof (pids), "%" PRIu64, cur.pids_cur);
        if (!nostream && isatty (STDOUT_FILENO))
            printf ("\033[H\033[2J");
        static const char *const head[] = { "INSTANCE NAME", "CPU USAGE", "MEM USAGE / LIMIT", "MEM %", "BLOCK I/O",
                                            "PIDS" };
        char *cells[] = { (char *) name, cpu, mem, mempct, io, pids };
        char **rows[] = { cells };
        print_table (head, 6, rows, 1);
        fflush (stdout);
        if (nostream)
            break;
        prev = cur;
    }
    if (!json && !(cur.mem && cur.pids))
        verbosef ("n/a: the controller (memory, pids, io) is not enabled for this cgroup");
    records_free (&r);
    return 0;
}

int
cmd_instance (int argc, char **argv)
{
    if (argc < 2 || strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0
        || strcmp (argv[1], "help") == 0) {
        capsa_print_help ("instance");
        return argc < 2 ? CAPSA_EXIT_FATAL : 0;
    }
    const char *sub = argv[1];
    if (argc > 2 && (strcmp (argv[2], "--help") == 0 || strcmp (argv[2], "-h") == 0)) {
        capsa_print_help ("instance");
        return 0;
    }
    if (strcmp (sub, "start") == 0 || strcmp (sub, "run") == 0)
        return capsa_cmd_action_main (argc - 1, argv + 1, true);
    if (strcmp (sub, "list") == 0)
        return cmd_list (argc - 1, argv + 1);
    if (strcmp (sub, "stop") == 0)
        return cmd_stop (argc - 1, argv + 1);
    if (strcmp (sub, "stats") == 0)
        return cmd_stats (argc - 1, argv + 1);
    capsa_die ("unknown instance command '%s' (start, run, stop, list, stats; see 'capsa help instance')", sub);
}
