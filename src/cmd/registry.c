/* capsa registry login|logout|list, and what every registry-facing command
 * shares: the --no-https / --authfile flags and their CAPSA_ variables,
 * progress bars and notices, and the oras:// resolution that exec, run,
 * shell and inspect call before they look at an image. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "lib/log.h"
#include "lib/utils.h"
#include "oci/oci.h"

static bool g_no_https;
static const char *g_authfile;
static const char *g_docker_user, *g_docker_pass;

void
capsa_cmd_set_authfile (const char *path)
{
    g_authfile = path;
}

void
capsa_cmd_set_docker_user (const char *user, const char *password)
{
    if (user)
        g_docker_user = user;
    if (password)
        g_docker_pass = password;
}

bool
capsa_cmd_registry_flag (int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (strcmp (a, "--no-https") == 0 || strcmp (a, "--nohttps") == 0) {
        g_no_https = true;
        return true;
    }
    if (strcmp (a, "--authfile") == 0) {
        if (*i + 1 >= argc)
            capsa_die ("--authfile needs a file name");
        g_authfile = argv[++*i];
        return true;
    }
    if (strncmp (a, "--authfile=", 11) == 0) {
        g_authfile = a + 11;
        return true;
    }
    return false;
}

/* ---- progress and notices ------------------------------------------------ */

static bool progress_shown;
static struct timespec progress_last;

static void
progress_clear (void)
{
    if (progress_shown) {
        fputs ("\r\033[K", stderr);
        fflush (stderr);
        progress_shown = false;
    }
}


static void
on_progress (const char *what, uint64_t done, uint64_t total, void *data)
{
    (void) data;
    if (!isatty (STDERR_FILENO) || capsa_log_get_level () < CAPSA_LOG_INFO)
        return;
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    bool last = total > 0 && done >= total;
    long ms = (now.tv_sec - progress_last.tv_sec) * 1000 + (now.tv_nsec - progress_last.tv_nsec) / 1000000;
    if (!last && progress_shown && ms < 200)
        return;
    progress_last = now;
    char d[32], t[32];
    format_size (done, d, sizeof (d));
    format_size (total, t, sizeof (t));
    if (total > 0)
        fprintf (stderr, "\r\033[K%.40s  %s / %s  %3d%%", what, d, t, (int) (done * 100 / total));
    else
        fprintf (stderr, "\r\033[K%.40s  %s", what, d);
    progress_shown = true;
    if (last) {
        fputc ('\n', stderr);
        progress_shown = false;
    }
    fflush (stderr);
}

static void
on_notice (enum capsa_oci_notice level, const char *msg, void *data)
{
    (void) data;
    progress_clear ();
    switch (level) {
    case CAPSA_OCI_INFO:
        infof ("%s", msg);
        break;
    case CAPSA_OCI_WARNING:
        warnf ("%s", msg);
        break;
    default:
        verbosef ("%s", msg);
        break;
    }
}

void
capsa_cmd_oci_opts (struct capsa_oci_opts *o)
{
    memset (o, 0, sizeof (*o));
    /* Flags win over variables; CAPSA_ over APPTAINER_ over SINGULARITY_
     * (src/cmd/envopt.c).  As in Apptainer, DOCKER_USERNAME and
     * DOCKER_PASSWORD count without a prefix too. */
    o->no_https = g_no_https || capsa_optenv_bool ("NO_HTTPS") == 1 || capsa_optenv_bool ("NOHTTPS") == 1;
    const char *af = capsa_optenv ("AUTH_FILE");
    if (af == NULL)
        af = capsa_optenv ("AUTHFILE");
    o->authfile = g_authfile ? g_authfile : af;
    const char *u = g_docker_user ? g_docker_user : capsa_optenv ("DOCKER_USERNAME");
    const char *p = g_docker_pass ? g_docker_pass : capsa_optenv ("DOCKER_PASSWORD");
    if (u == NULL)
        u = getenv ("DOCKER_USERNAME");
    if (p == NULL)
        p = getenv ("DOCKER_PASSWORD");
    if (u && *u && p && *p) {
        o->username = u;
        o->password = p;
    }
    const char *tmp = capsa_optenv ("TMPDIR");
    if (tmp != NULL)
        o->tmpdir = tmp;
    o->progress = on_progress;
    o->notice = on_notice;
}

void
capsa_cmd_progress_done (void)
{
    progress_clear ();
}

char *
capsa_cmd_resolve_uri (const char *image, bool disable_cache, const char *tmpdir)
{
    if (strncmp (image, "docker://", 9) == 0 || capsa_net_is_uri (image)) {
        struct capsa_oci_opts o;
        capsa_error_t err = NULL;
        char *path = NULL;
        capsa_cmd_oci_opts (&o);
        if (tmpdir)
            o.tmpdir = tmpdir;
        if (disable_cache)
            verbosef ("--disable-cache: %s is kept in the cache all the same, for the container to run from", image);
        bool temporary = false;
        int r = strncmp (image, "docker://", 9) == 0 ? capsa_cmd_docker_cached (image, &o, &path, &err)
                                                      : capsa_cmd_net_cached (image, &o, &path, &temporary, &err);
        progress_clear ();
        if (r < 0)
            capsa_error_fatal (&err);
        if (temporary)
            warnf ("%s cannot be cached (no Last-Modified or ETag from the server): downloaded to %s", image, path);
        verbosef ("%s is %s", image, path);
        return path;
    }
    if (strncmp (image, "library://", 10) == 0 || strncmp (image, "shub://", 7) == 0
        || strncmp (image, "ipfs://", 7) == 0)
        capsa_die ("%.*s images are not supported (see docs/apptainer.md)", (int) strcspn (image, ":"), image);
    if (strncmp (image, "docker-daemon:", 14) == 0 || strncmp (image, "docker-archive:", 15) == 0
        || strncmp (image, "oci-archive:", 12) == 0 || strncmp (image, "oci:", 4) == 0)
        capsa_die ("%s: convert it first with 'capsa build IMAGE.sif %s'", image, image);
    return capsa_cmd_resolve_oras (image);
}

char *
capsa_cmd_resolve_oras (const char *image)
{
    struct capsa_oci_opts o;
    capsa_error_t err = NULL;
    char *path = NULL;
    if (!capsa_oras_is_uri (image))
        return NULL;
    capsa_cmd_oci_opts (&o);
    if (capsa_oras_cached (image, &o, &path, NULL, &err) < 0) {
        progress_clear ();
        capsa_error_fatal (&err);
    }
    progress_clear ();
    verbosef ("%s is %s", image, path);
    return path;
}

void
capsa_cmd_set_no_https (void)
{
    g_no_https = true;
}

/* ---- capsa registry ---------------------------------------------------------- */

/* "oras://host/..." or "docker://host" or "host" -> "host" */
static char *
host_of (const char *arg)
{
    const char *p = strstr (arg, "://");
    p = p ? p + 3 : arg;
    size_t n = strcspn (p, "/");
    if (n == 0)
        capsa_die ("registry: no host in '%s'", arg);
    char *h = xasprintf ("%.*s", (int) n, p);
    if (strcmp (h, "index.docker.io") == 0 || strcmp (h, "registry-1.docker.io") == 0) {
        free (h);
        h = xstrdup ("docker.io");
    }
    return h;
}

static char *
read_secret (const char *prompt, bool from_stdin)
{
    char *line = NULL;
    size_t cap = 0;
    struct termios old, quiet;
    bool tty = !from_stdin && isatty (STDIN_FILENO);
    if (!from_stdin && !tty)
        capsa_die ("registry login: no terminal to ask for the password on; use --password-stdin");
    if (tty) {
        fputs (prompt, stderr);
        fflush (stderr);
        if (tcgetattr (STDIN_FILENO, &old) == 0) {
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t) ECHO;
            tcsetattr (STDIN_FILENO, TCSAFLUSH, &quiet);
        }
    }
    ssize_t n = getline (&line, &cap, stdin);
    if (tty) {
        tcsetattr (STDIN_FILENO, TCSAFLUSH, &old);
        fputc ('\n', stderr);
    }
    if (n < 0) {
        free (line);
        capsa_die ("registry login: no password given");
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (n == 0) {
        free (line);
        capsa_die ("registry login: empty password");
    }
    return line;
}

static int
registry_login (int argc, char **argv)
{
    static const struct option opts[] = {
        { "username", required_argument, NULL, 'u' }, { "password", required_argument, NULL, 'p' },
        { "password-stdin", no_argument, NULL, 'S' }, { "authfile", required_argument, NULL, 'a' },
        { "no-https", no_argument, NULL, 'N' },       { "nohttps", no_argument, NULL, 'N' },
        { NULL, 0, NULL, 0 },
    };
    const char *user = NULL, *pass_arg = NULL;
    bool from_stdin = false;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long (argc, argv, "+u:p:", opts, NULL)) != -1) {
        switch (c) {
        case 'u': user = optarg; break;
        case 'p': pass_arg = optarg; break;
        case 'S': from_stdin = true; break;
        case 'a': g_authfile = optarg; break;
        case 'N': g_no_https = true; break;
        default: capsa_die ("registry login: unknown option '%s' (see 'capsa help registry')", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        capsa_die ("usage: capsa registry login [--username USER] [--password-stdin] [--no-https] HOST");
    /* Apptainer's APPTAINER_LOGIN_USERNAME / APPTAINER_LOGIN_PASSWORD. */
    if (user == NULL)
        user = capsa_optenv ("LOGIN_USERNAME");
    const char *pass_env = pass_arg == NULL && !from_stdin ? capsa_optenv ("LOGIN_PASSWORD") : NULL;
    cleanup_free char *host = host_of (argv[optind]);
    cleanup_free char *uline = NULL;
    if (user == NULL) {
        if (from_stdin || !isatty (STDIN_FILENO))
            capsa_die ("registry login: give --username with --password-stdin");
        size_t cap = 0;
        fputs ("Username: ", stderr);
        fflush (stderr);
        ssize_t n = getline (&uline, &cap, stdin);
        if (n <= 0)
            capsa_die ("registry login: no user name given");
        uline[strcspn (uline, "\r\n")] = '\0';
        user = uline;
    }
    if (*user == '\0' || strchr (user, ':'))
        capsa_die ("registry login: invalid user name");
    if (pass_arg)
        warnf ("a password on the command line is visible to other users of this machine; prefer --password-stdin");
    char *pass = pass_arg ? xstrdup (pass_arg) : pass_env ? xstrdup (pass_env) : read_secret ("Password: ", from_stdin);

    struct capsa_oci_opts o;
    capsa_error_t err = NULL;
    capsa_cmd_oci_opts (&o);
    if (capsa_registry_check_login (host, user, pass, &o, &err) < 0) {
        explicit_bzero (pass, strlen (pass));
        free (pass);
        capsa_error_wrap (&err, "login to %s failed", host);
        capsa_error_fatal (&err);
    }
    int r = capsa_creds_set (o.authfile, host, user, pass, &err);
    explicit_bzero (pass, strlen (pass));
    free (pass);
    if (r < 0)
        capsa_error_fatal (&err);
    cleanup_free char *def = o.authfile ? NULL : capsa_oci_default_authfile ();
    infof ("Credentials for %s (user %s) stored in %s", host, user, o.authfile ? o.authfile : def);
    return 0;
}

/* Options of the subcommands that take only --authfile FILE. */
static void
parse_authfile_only (int argc, char **argv, const char *what)
{
    static const struct option opts[] = {
        { "authfile", required_argument, NULL, 'a' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long (argc, argv, "+", opts, NULL)) != -1) {
        if (c == 'a')
            g_authfile = optarg;
        else
            capsa_die ("registry %s: unknown option '%s'", what, argv[optind - 1]);
    }
}

static int
registry_logout (int argc, char **argv)
{
    parse_authfile_only (argc, argv, "logout");
    if (optind != argc - 1)
        capsa_die ("usage: capsa registry logout [--authfile FILE] HOST");
    cleanup_free char *host = host_of (argv[optind]);
    capsa_error_t err = NULL;
    bool found = false;
    if (capsa_creds_remove (g_authfile, host, &found, &err) < 0)
        capsa_error_fatal (&err);
    if (!found)
        capsa_die ("no credentials for %s", host);
    infof ("Credentials for %s removed", host);
    return 0;
}

static int
registry_list (int argc, char **argv)
{
    parse_authfile_only (argc, argv, "list");
    struct strv hosts = { 0 };
    capsa_error_t err = NULL;
    if (capsa_creds_list (g_authfile, &hosts, &err) < 0)
        capsa_error_fatal (&err);
    printf ("%-40s %s\n", "HOST", "USER");
    for (size_t i = 0; i < hosts.n; i++) {
        char *tab = strchr (hosts.v[i], '\t');
        if (tab)
            *tab = '\0';
        printf ("%-40s %s\n", hosts.v[i], tab ? tab + 1 : "");
    }
    strv_free (&hosts);
    return 0;
}

int
cmd_registry (int argc, char **argv)
{
    if (argc < 2)
        capsa_die ("usage: capsa registry login|logout|list ... (see 'capsa help registry')");
    if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0) {
        capsa_print_help ("registry");
        return 0;
    }
    if (strcmp (argv[1], "login") == 0)
        return registry_login (argc - 1, argv + 1);
    if (strcmp (argv[1], "logout") == 0)
        return registry_logout (argc - 1, argv + 1);
    if (strcmp (argv[1], "list") == 0)
        return registry_list (argc - 1, argv + 1);
    capsa_die ("registry: unknown subcommand '%s' (login, logout, list)", argv[1]);
}
