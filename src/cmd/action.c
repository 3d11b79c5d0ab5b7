/* exec, run, shell: the front end's part is small.  It turns CAPSA_*
 * variables into options (flags given on the command line come after them
 * and so win), and executes the starter, which parses and checks
 * everything again itself. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "config.h"
#include "lib/log.h"
#include "lib/utils.h"
#include "policy/seccomp_compile.h"
#include "crypt/crypt.h"
#include "sif/sif.h"
#include <sys/stat.h>

struct env_flag {
    const char *var;
    const char *flag;
    bool boolean;
};

static const struct env_flag env_flags[] = {
    { "CAPSA_BIND", "--bind", false },      { "CAPSA_BINDPATH", "--bind", false },
    { "CAPSA_HOME", "--home", false },      { "CAPSA_NO_HOME", "--no-home", true },
    { "CAPSA_PWD", "--pwd", false },        { "CAPSA_CONTAIN", "--contain", true },
    { "CAPSA_CONTAINALL", "--containall", true }, { "CAPSA_CLEANENV", "--cleanenv", true },
    { "CAPSA_ENV_FILE", "--env-file", false }, { "CAPSA_PID", "--pid", true },
    { "CAPSA_IPC", "--ipc", true },         { "CAPSA_UTS", "--uts", true },
    { "CAPSA_HOSTNAME", "--hostname", false }, { "CAPSA_NET", "--net", true },
    { "CAPSA_NETWORK", "--network", false }, { "CAPSA_USERNS", "--userns", true },
    { "CAPSA_SHELL", "--shell", false },
    { "CAPSA_ADD_CAPS", "--add-caps", false }, { "CAPSA_DROP_CAPS", "--drop-caps", false },
    { "CAPSA_KEEP_PRIVS", "--keep-privs", true }, { "CAPSA_NO_PRIVS", "--no-privs", true },
};

static bool
truthy (const char *v)
{
    return strcmp (v, "1") == 0 || strcasecmp (v, "true") == 0 || strcasecmp (v, "yes") == 0;
}

/* Options of the actions that take a separate value ("-B SRC"). */
static bool
takes_value (const char *a)
{
    static const char *const with_value[] = { "-B", "--bind", "-H", "--home", "--pwd", "--env", "--env-file",
                                              "--hostname", "--network", "-s", "--shell", "--add-caps",
                                              "--drop-caps", "--seccomp-fd" };
    if (strchr (a, '=') != NULL)
        return false;
    for (size_t i = 0; i < ARRAY_SIZE (with_value); i++)
        if (strcmp (a, with_value[i]) == 0)
            return true;
    return false;
}

/* --security seccomp:PATH becomes --seccomp-fd=N (a sealed memfd holding
 * the compiled filter, inherited by the starter); other --security values
 * pass through for the starter to check. */
static void
add_security (struct strv *args, const char *value)
{
    capsa_error_t err = NULL;
    if (strncmp (value, "seccomp:", 8) != 0) {
        strv_push_take (args, xasprintf ("--security=%s", value));
        return;
    }
    if (value[8] == '\0')
        capsa_die ("invalid --security '%s' (expected seccomp:PATH)", value);
    int fd = capsa_seccomp_compile_file (value + 8, &err);
    if (fd < 0)
        capsa_error_fatal (&err);
    if (fcntl (fd, F_SETFD, 0) < 0)
        capsa_die ("cannot pass the seccomp filter: %s", strerror (errno));
    strv_push_take (args, xasprintf ("--seccomp-fd=%d", fd));
}

/* Is IMAGE a SIF whose primary partition is encrypted (fs type 5, LUKS2,
 * or 6, gocryptfs)?  If so, *sif (open) and *part describe it; otherwise
 * nothing stays open. */
static bool
encrypted_sif (const char *image, struct sif_image **sif, const struct sif_descriptor **part)
{
    capsa_error_t err = NULL;
    struct sif_partition p;
    struct stat st;

    *sif = NULL;
    if (stat (image, &st) == 0 && S_ISREG (st.st_mode) && sif_open (image, false, sif, &err) == 0
        && sif_find_primary_partition (*sif, part, &err) == 0 && sif_get_partition (*part, &p, &err) == 0
        && (p.fstype == SIF_FS_ENCRYPTED_SQUASHFS || p.fstype == SIF_FS_GOCRYPTFS_SQUASHFS))
        return true;
    /* Not an encrypted SIF (or not a SIF): the starter says what is wrong
     * with it, if anything. */
    capsa_error_free (&err);
    if (*sif)
        sif_close (*sif);
    *sif = NULL;
    return false;
}

#ifdef CAPSA_LIGHT
/* The light front end has no cryptography.  A user's key is handed on
 * unopened, as a secret record (src/crypt/keyrecord.c, no OpenSSL): the
 * image server opens the image with it, once, or finds that it already did
 * (runtime/imageserver.h); a wrong key fails there, before the command
 * runs.  Root's runs (the kernel's squashfs over capsa-cryptfuse) go to the
 * full front end, which opens the image first. */
static void
prepare_key (const char *image, bool passphrase, const char *pem_path, struct strv *args)
{
    capsa_error_t err = NULL;
    struct sif_image *sif;
    const struct sif_descriptor *part;
    int pfd[2];

    if (getuid () == 0) {
        if (passphrase || pem_path != NULL || capsa_keyspec_in_environment () || encrypted_sif (image, &sif, &part))
            capsa_delegate_to_tools ();
        return;
    }
    if (!encrypted_sif (image, &sif, &part)) {
        if (passphrase || pem_path != NULL || capsa_keyspec_in_environment ())
            warnf ("%s is not encrypted; the key given is not used", image);
        capsa_keyspec_scrub_environment ();
        return;
    }
    struct capsa_keyspec key = { 0 };
    if (capsa_keyspec_get (passphrase, pem_path, CAPSA_KEY_DECRYPT, &key, &err) < 0)
        capsa_error_fatal (&err);
    if (pipe2 (pfd, O_CLOEXEC) < 0)
        capsa_die ("pipe: %s", strerror (errno));
    if (capsa_secret_record_write (sif, part, &key, pfd[1], &err) < 0)
        capsa_error_fatal (&err);
    capsa_keyspec_clear (&key);
    close (pfd[1]);
    sif_close (sif);
    if (fcntl (pfd[0], F_SETFD, 0) < 0)
        capsa_die ("cannot pass the key: %s", strerror (errno));
    strv_push_take (args, xasprintf ("--key-fd=%d", pfd[0]));
}
#else
/* An encrypted SIF: get the key (flags, terminal, standard input or
 * environment), open the image here, unprivileged, so that a wrong or
 * missing key fails before anything is mounted and the KDF runs once, and
 * hand the data key to the starter through a pipe (never an argument or a
 * variable) as a key record (format + key, src/crypt/image.c).  The
 * starter does not read it: it passes the descriptor to the user's
 * capsa-cryptfuse. */
static void
prepare_key (const char *image, bool passphrase, const char *pem_path, struct strv *args)
{
    capsa_error_t err = NULL;
    struct sif_image *sif;
    const struct sif_descriptor *part;

    if (!encrypted_sif (image, &sif, &part)) {
        if (passphrase || pem_path != NULL || capsa_keyspec_in_environment ())
            warnf ("%s is not encrypted; the key given is not used", image);
        capsa_keyspec_scrub_environment ();
        return;
    }
    struct capsa_keyspec key = { 0 };
    struct capsa_crypt_image *img = NULL;
    const struct capsa_kdf_cost *kdf;
    int pfd[2];
    if (capsa_keyspec_get (passphrase, pem_path, CAPSA_KEY_DECRYPT, &key, &err) < 0
        || capsa_sif_crypt_open (sif, part, &key, &img, &err) < 0)
        capsa_error_fatal (&err);
    capsa_keyspec_clear (&key);
    /* The KDF is the user's price for the key, not capsa's start-up: say
     * what it cost, apart. */
    if ((kdf = capsa_crypt_kdf_cost (img)) != NULL) {
        if (kdf->memory_kb > 0)
            verbosef ("%s image unlocked: key derivation %s, %" PRIu64 " MiB, %" PRIu32 " iterations, %" PRIu32
                      " lanes, took %.3f s", capsa_crypt_format_name (capsa_crypt_format (img)), kdf->type,
                      kdf->memory_kb / 1024, kdf->iterations, kdf->parallel, kdf->seconds);
        else
            verbosef ("%s image unlocked: key derivation %s, %" PRIu32 " iterations, took %.3f s",
                      capsa_crypt_format_name (capsa_crypt_format (img)), kdf->type, kdf->iterations, kdf->seconds);
    }
    if (capsa_crypt_legacy_numbering (img))
        warnf ("%s was encrypted by capsa 0.1.0, whose sector numbering the kernel's dm-crypt does not read "
               "(Apptainer and SingularityCE cannot open it); capsa still runs it. Encrypt the unencrypted image "
               "again with 'capsa encrypt' to share it", image);
    if (pipe2 (pfd, O_CLOEXEC) < 0)
        capsa_die ("pipe: %s", strerror (errno));
    if (capsa_crypt_write_record (img, pfd[1], &err) < 0)
        capsa_error_fatal (&err);
    capsa_crypt_close (img);
    close (pfd[1]);
    sif_close (sif);
    if (fcntl (pfd[0], F_SETFD, 0) < 0)
        capsa_die ("cannot pass the key: %s", strerror (errno));
    strv_push_take (args, xasprintf ("--key-fd=%d", pfd[0]));
}
#endif

int
cmd_action (int argc, char **argv)
{
    bool passphrase = false;
    const char *pem_path = NULL;
    struct strv args = { 0 };
    const char *starter = CAPSA_LIBEXECDIR "/starter";
    const char *override = getenv ("CAPSA_STARTER");

    /* For development only: a starter outside the installation is never
     * setuid, so this cannot be used to gain anything. */
    if (override && *override && getuid () != 0)
        starter = override;

    strv_push (&args, "capsa-starter");
    switch (capsa_log_get_level ()) {
    case CAPSA_LOG_FATAL:
    case CAPSA_LOG_ERROR:
    case CAPSA_LOG_WARNING:
        strv_push (&args, "-q");
        break;
    case CAPSA_LOG_VERBOSE:
        strv_push (&args, "-v");
        break;
    case CAPSA_LOG_DEBUG:
        strv_push (&args, "-d");
        break;
    default:
        break;
    }
    strv_push (&args, argv[0]);
    for (size_t i = 0; i < ARRAY_SIZE (env_flags); i++) {
        const char *v = getenv (env_flags[i].var);
        if (v == NULL || *v == '\0')
            continue;
        if (env_flags[i].boolean) {
            if (truthy (v))
                strv_push (&args, env_flags[i].flag);
        } else {
            strv_push_take (&args, xasprintf ("%s=%s", env_flags[i].flag, v));
        }
    }
    const char *sec = getenv ("CAPSA_SECURITY");
    if (sec && *sec)
        add_security (&args, sec);
    /* The action's own options (up to IMAGE): seccomp profiles are
     * compiled here, unprivileged, and handed over as descriptors. */
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp (a, "--") == 0)
            break;
        if (capsa_cmd_registry_flag (argc, argv, &i)) /* oras:// images: the front end's own */
            continue;
        /* Keys for encrypted images: the front end's own, never passed on. */
        if (strcmp (a, "--passphrase") == 0) {
            passphrase = true;
            continue;
        }
        if (strcmp (a, "--pem-path") == 0 && i + 1 < argc) {
            pem_path = argv[++i];
            continue;
        }
        if (strncmp (a, "--pem-path=", 11) == 0) {
            pem_path = a + 11;
            continue;
        }
        if (strcmp (a, "--security") == 0 && i + 1 < argc) {
            add_security (&args, argv[++i]);
            continue;
        }
        if (strncmp (a, "--security=", 11) == 0) {
            add_security (&args, a + 11);
            continue;
        }
        strv_push (&args, a);
        if (takes_value (a) && i + 1 < argc)
            strv_push (&args, argv[++i]);
    }
    int img = i < argc && strcmp (argv[i], "--") == 0 ? i + 1 : i;
    char *oras_sif = img < argc ? capsa_cmd_resolve_oras (argv[img]) : NULL;
    if (oras_sif != NULL)
        argv[img] = oras_sif; /* the cached SIF, pulled when needed */
    if (img < argc)
        prepare_key (argv[img], passphrase, pem_path, &args);
    for (; i < argc; i++)
        strv_push (&args, argv[i]);
    execv (starter, args.v);
    capsa_die ("cannot run the starter %s: %s", starter, strerror (errno));
}
