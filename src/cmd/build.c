/* capsa build: SIF images (or sandbox directories) from directories, other
 * images and definition files.  The work is in src/imgbuild/ (build.h); this
 * file parses the command line and shows messages and progress. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "imgbuild/build.h"
#include "cmd/commands.h"
#include "config.h"
#include "crypt/crypt.h"
#include "lib/log.h"
#include "lib/utils.h"
#include "oci/oci.h"


static const char cb_usage[] = "usage: capsa build [--sandbox] [--force] [--fakeroot] [--notest] [--comp C]\n"
                                "                   [--encrypt] [--passphrase | --pem-path PUBLIC.pem] OUT SOURCE";

/* One progress line at the bottom of a terminal, redrawn in place. */
static bool cb_progress_shown;

static void
cb_progress_clear (void)
{
    if (cb_progress_shown) {
        fputs ("\r\033[K", stderr);
        fflush (stderr);
        cb_progress_shown = false;
    }
}

static void
cb_info (const char *msg, void *data)
{
    (void) data;
    cb_progress_clear ();
    infof ("%s", msg);
}

static void
cb_warn (const char *msg, void *data)
{
    (void) data;
    cb_progress_clear ();
    warnf ("%s", msg);
}

static void
cb_progress (const char *step, const char *line, void *data)
{
    struct winsize ws;
    int cols = 80;
    (void) data;

    if (line == NULL) {
        cb_progress_clear ();
        return;
    }
    if (ioctl (STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10)
        cols = ws.ws_col;
    /* "step: line", cut to the width, control characters dropped. */
    char buf[512];
    int n = snprintf (buf, sizeof (buf), "%s: ", step);
    for (const char *c = line; *c && n < (int) sizeof (buf) - 1 && n < cols - 1; c++)
        if ((unsigned char) *c >= 0x20 && *c != 0x7f)
            buf[n++] = *c;
    buf[n < (int) sizeof (buf) ? n : (int) sizeof (buf) - 1] = '\0';
    fprintf (stderr, "\r\033[K%s", buf);
    fflush (stderr);
    cb_progress_shown = true;
}


int
cmd_build (int argc, char **argv)
{
    static const struct option opts[] = {
        { "sandbox", no_argument, NULL, 's' },  { "force", no_argument, NULL, 'F' },
        { "fakeroot", no_argument, NULL, 'f' }, { "notest", no_argument, NULL, 'T' },
        { "comp", required_argument, NULL, 'c' }, { "code-version", no_argument, NULL, 'V' },
        { "encrypt", no_argument, NULL, 'e' },  { "passphrase", no_argument, NULL, 'p' },
        { "pem-path", required_argument, NULL, 'k' },
        { NULL, 0, NULL, 0 },
    };
    struct capsa_build_opts o = { .version = CAPSA_VERSION };
    struct capsa_keyspec key = { 0 };
    capsa_error_t err = NULL;
    bool interactive, encrypt = false, passphrase = false;
    const char *pem = NULL;
    int c;

    /* Flags from the environment (CAPSA_, APPTAINER_, SINGULARITY_: see
     * src/cmd/envopt.c), as for the actions; flags win. */
    o.fakeroot = capsa_optenv_bool ("FAKEROOT") == 1;
    o.force = capsa_optenv_bool ("FORCE") == 1;
    o.sandbox = capsa_optenv_bool ("SANDBOX") == 1;
    o.notest = capsa_optenv_bool ("NOTEST") == 1;
    o.comp = capsa_optenv ("COMP");
    o.debootstrap_cache = getenv ("CAPSA_DEBOOTSTRAP_CACHE");
    if (o.debootstrap_cache != NULL && o.debootstrap_cache[0] != '/')
        capsa_die ("CAPSA_DEBOOTSTRAP_CACHE must be an absolute path, not '%s'", o.debootstrap_cache);

    /* Registry options for docker:// sources (--no-https, --authfile),
     * anywhere on the line, as Apptainer takes them. */
    int kept = 1;
    for (int i = 1; i < argc; i++)
        if (!capsa_cmd_registry_flag (argc, argv, &i))
            argv[kept++] = argv[i];
    argc = kept;
    struct capsa_oci_opts oci;
    capsa_cmd_oci_opts (&oci);
    o.oci = &oci;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long (argc, argv, "+sFfTc:e", opts, NULL)) != -1) {
        switch (c) {
        case 's': o.sandbox = true; break;
        case 'F': o.force = true; break;
        case 'f': o.fakeroot = true; break;
        case 'T': o.notest = true; break;
        case 'c': o.comp = optarg; break;
        case 'e': encrypt = true; break;
        case 'p': passphrase = encrypt = true; break;
        case 'k': pem = optarg; encrypt = true; break;
        case 'V':
            printf ("%s\n", CAPSA_BUILD_CODE_VERSION);
            return 0;
        default:
            capsa_die ("build: unknown option '%s' (see 'capsa help build')", argv[optind - 1]);
        }
    }
    if (optind != argc - 2)
        capsa_die ("%s", cb_usage);
    o.out = argv[optind];
    o.source = argv[optind + 1];

    /* The key first, before anything long happens.  Whether used or not,
     * the key variables leave the environment (%setup inherits it). */
    if (encrypt) {
        if (o.sandbox)
            capsa_die ("a sandbox directory cannot be encrypted (build a SIF file)");
        if (capsa_keyspec_get (passphrase, pem, CAPSA_KEY_ENCRYPT, &key, &err) < 0)
            capsa_error_fatal (&err);
        if (key.kind == CAPSA_KEY_NONE)
            capsa_die ("no encryption key given: use --passphrase or --pem-path PUBLIC.pem (or "
                       "CAPSA_ENCRYPTION_PASSPHRASE, CAPSA_ENCRYPTION_PEM_PATH, CAPSA_ENCRYPTION_PEM_DATA)");
        if (key.kind == CAPSA_KEY_PEM) {
            struct capsa_rsa_key *rsa = NULL;
            if (capsa_rsa_key_load (key.data, key.len, false, key.source ? key.source : "the PEM key", &rsa, &err) < 0)
                capsa_error_fatal (&err);
            capsa_rsa_key_free (rsa);
        }
        o.key = &key;
        /* The encryption thread writes into a pipe: a broken pipe is an
         * error to report, not a signal to die of. */
        signal (SIGPIPE, SIG_IGN);
    } else {
        capsa_keyspec_scrub_environment ();
    }

    /* Progress only where someone watches, and not with -q. */
    interactive = isatty (STDERR_FILENO) && capsa_log_get_level () >= CAPSA_LOG_INFO;
    o.terminal = interactive;
    o.ui.info = cb_info;
    o.ui.warn = cb_warn;
    o.ui.progress = interactive ? cb_progress : NULL;

    int ret = capsa_build (&o, &err);
    capsa_keyspec_clear (&key);
    if (ret < 0) {
        cb_progress_clear ();
        capsa_error_fatal (&err);
    }
    return 0;
}
