/* Where the user's key comes from: flags, the terminal, the environment.
 *
 * Secrets are copied into locked buffers at once, and the environment
 * variables that carried them are overwritten in place: the strings of
 * the initial environment are the ones /proc/PID/environ shows, so
 * unsetenv() alone would leave the passphrase readable there. */
#include "crypt/crypt_private.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "lib/utils.h"

#define PEM_MAX (1u << 20)

static const char *const prefixes[] = { "CAPSA_", "APPTAINER_", "SINGULARITY_" };
static const char *const suffixes[] = { "ENCRYPTION_PASSPHRASE", "ENCRYPTION_PEM_PATH", "ENCRYPTION_PEM_DATA" };

extern char **environ;

void
capsa_keyspec_scrub_environment (void)
{
    for (size_t i = 0; i < ARRAY_SIZE (prefixes); i++)
        for (size_t j = 0; j < ARRAY_SIZE (suffixes); j++) {
            char name[64];
            size_t nlen;

            snprintf (name, sizeof (name), "%s%s", prefixes[i], suffixes[j]);
            nlen = strlen (name);
            /* Wipe every occurrence in place (values and, for good measure,
             * the name), then drop the entries. */
            for (char **e = environ; e && *e; e++)
                if (strncmp (*e, name, nlen) == 0 && (*e)[nlen] == '=')
                    explicit_bzero (*e + nlen + 1, strlen (*e + nlen + 1));
            unsetenv (name);
        }
}

bool
capsa_keyspec_in_environment (void)
{
    for (size_t i = 0; i < ARRAY_SIZE (prefixes); i++)
        for (size_t j = 0; j < ARRAY_SIZE (suffixes); j++) {
            char name[64];
            snprintf (name, sizeof (name), "%s%s", prefixes[i], suffixes[j]);
            if (getenv (name) != NULL)
                return true;
        }
    return false;
}

/* The first of CAPSA_/APPTAINER_/SINGULARITY_ + suffix that is set (even
 * to ""), copied into a secure buffer; *name receives its name. */
static char *
env_secret (const char *suffix, size_t *len, const char **name)
{
    static _Thread_local char found[64];

    for (size_t i = 0; i < ARRAY_SIZE (prefixes); i++) {
        const char *v;
        char *copy;

        snprintf (found, sizeof (found), "%s%s", prefixes[i], suffix);
        v = getenv (found);
        if (v == NULL)
            continue;
        *len = strlen (v);
        copy = capsa_secure_alloc (*len + 1, NULL);
        memcpy (copy, v, *len);
        *name = found;
        return copy;
    }
    return NULL;
}

static int
read_pem_file (const char *path, struct capsa_keyspec *out, capsa_error_t *err)
{
    cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    char *buf;
    ssize_t n;

    if (fd < 0)
        return capsa_error_make (err, errno, "cannot open the PEM key file %s", path);
    if (fstat (fd, &st) < 0)
        return capsa_error_make (err, errno, "cannot read the PEM key file %s", path);
    if (!S_ISREG (st.st_mode))
        return capsa_error_code (err, EINVAL, "the PEM key file %s is not a regular file", path);
    if (st.st_size <= 0 || (uint64_t) st.st_size > PEM_MAX)
        return capsa_error_code (err, EINVAL, "the PEM key file %s is %s", path, st.st_size <= 0 ? "empty" : "too large");
    buf = capsa_secure_alloc ((size_t) st.st_size + 1, NULL);
    n = read_all (fd, buf, (size_t) st.st_size);
    if (n < 0) {
        capsa_secure_free (buf);
        return capsa_error_make (err, errno, "cannot read the PEM key file %s", path);
    }
    out->kind = CAPSA_KEY_PEM;
    out->data = buf;
    out->len = (size_t) n;
    return 0;
}

/* Set by a terminating signal that arrives while the terminal is silent:
 * the read is interrupted, the terminal restored, then the signal is
 * raised again with its former disposition. */
static volatile sig_atomic_t prompt_signal;

static void
on_prompt_signal (int sig)
{
    prompt_signal = sig;
}

static const int prompt_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

/* One line from the terminal with echo off, into a secure buffer. */
static int
prompt_line (int tty, const char *prompt, char **out, size_t *outlen, capsa_error_t *err)
{
    struct termios old, quiet;
    struct sigaction sa = { .sa_handler = on_prompt_signal }, saved_sa[ARRAY_SIZE (prompt_signals)];
    char *buf = capsa_secure_alloc (CAPSA_SECRET_MAX + 1, NULL);
    size_t len = 0;
    bool restore = false;
    sigset_t block, saved;
    int ret = -1, sig;

    if (write_all (tty, prompt, strlen (prompt)) < 0) {
        capsa_error_make (err, errno, "cannot write to the terminal");
        goto out;
    }
    /* ^Z would stop us with the terminal silent: hold job-control stops
     * until it is restored.  ^C and friends interrupt the read (no
     * SA_RESTART) and are re-raised once the terminal echoes again. */
    sigemptyset (&block);
    sigaddset (&block, SIGTSTP);
    sigaddset (&block, SIGTTOU);
    sigaddset (&block, SIGTTIN);
    sigprocmask (SIG_BLOCK, &block, &saved);
    prompt_signal = 0;
    sigemptyset (&sa.sa_mask);
    for (size_t i = 0; i < ARRAY_SIZE (prompt_signals); i++)
        sigaction (prompt_signals[i], &sa, &saved_sa[i]);
    if (tcgetattr (tty, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= (tcflag_t) ~ (ECHO | ECHOE | ECHOK | ECHONL);
        quiet.c_lflag |= ICANON;
        restore = tcsetattr (tty, TCSANOW, &quiet) == 0;
    }
    for (;;) {
        char c;
        ssize_t r = prompt_signal ? -1 : read (tty, &c, 1);
        if (prompt_signal) {
            capsa_error_code (err, EINTR, "interrupted");
            goto restore;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || c == '\n' || c == '\r')
            break;
        if (len == CAPSA_SECRET_MAX) {
            capsa_error_code (err, EINVAL, "the passphrase is longer than %u bytes", CAPSA_SECRET_MAX);
            goto restore;
        }
        buf[len++] = c;
    }
    *out = steal_ptr (&buf);
    *outlen = len;
    ret = 0;
restore:
    if (restore)
        (void) tcsetattr (tty, TCSANOW, &old);
    (void) !write (tty, "\n", 1);
    sig = prompt_signal;
    for (size_t i = 0; i < ARRAY_SIZE (prompt_signals); i++)
        sigaction (prompt_signals[i], &saved_sa[i], NULL);
    sigprocmask (SIG_SETMASK, &saved, NULL);
    if (sig)
        raise (sig); /* ignored signals stay ignored: then the error above is returned */
out:
    capsa_secure_free (buf);
    return ret;
}

/* One line of standard input (not a terminal: a pipe or a file of a batch
 * job), read a byte at a time so that nothing after it is consumed: the
 * rest of standard input belongs to the container. */
static int
stdin_line (char **out, size_t *outlen, capsa_error_t *err)
{
    char *buf = capsa_secure_alloc (CAPSA_SECRET_MAX + 1, NULL);
    size_t len = 0;
    bool any = false;

    for (;;) {
        char c;
        ssize_t r = read (STDIN_FILENO, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            capsa_secure_free (buf);
            return capsa_error_make (err, errno, "--passphrase: cannot read standard input");
        }
        if (r == 0)
            break;
        any = true;
        if (c == '\n')
            break;
        if (len == CAPSA_SECRET_MAX) {
            capsa_secure_free (buf);
            return capsa_error_code (err, EINVAL, "the passphrase is longer than %u bytes", CAPSA_SECRET_MAX);
        }
        buf[len++] = c;
    }
    if (!any) {
        capsa_secure_free (buf);
        return capsa_error_code (err, ENOKEY, "--passphrase: standard input is not a terminal and holds no "
                                 "passphrase (end of file); give it on one line, or set CAPSA_ENCRYPTION_PASSPHRASE");
    }
    if (len > 0 && buf[len - 1] == '\r')
        buf[--len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

static int
prompt_passphrase (enum capsa_key_use use, struct capsa_keyspec *out, capsa_error_t *err)
{
    cleanup_close int tty = -1;
    char *first = NULL, *again = NULL;
    size_t flen = 0, alen = 0;

    /* As Apptainer: a terminal on standard input is asked (without echo),
     * anything else is read, one line, without a prompt. */
    if (!isatty (STDIN_FILENO)) {
        if (stdin_line (&first, &flen, err) < 0)
            return -1;
        if (flen == 0) {
            capsa_secure_free (first);
            return capsa_error_code (err, EINVAL, "empty passphrase");
        }
        out->kind = CAPSA_KEY_PASSPHRASE;
        out->data = first;
        out->len = flen;
        out->source = xstrdup ("--passphrase");
        return 0;
    }
    tty = open ("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (tty < 0)
        tty = fcntl (STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
    if (tty < 0)
        return capsa_error_make (err, errno, "--passphrase: cannot use the terminal");
    if (prompt_line (tty, "Enter passphrase: ", &first, &flen, err) < 0)
        return -1;
    if (flen == 0) {
        capsa_secure_free (first);
        return capsa_error_code (err, EINVAL, "empty passphrase");
    }
    if (use == CAPSA_KEY_ENCRYPT) {
        if (prompt_line (tty, "Retype passphrase: ", &again, &alen, err) < 0) {
            capsa_secure_free (first);
            return -1;
        }
        if (alen != flen || memcmp (first, again, flen) != 0) {
            capsa_secure_free (first);
            capsa_secure_free (again);
            return capsa_error_code (err, EINVAL, "the passphrases do not match");
        }
        capsa_secure_free (again);
    }
    out->kind = CAPSA_KEY_PASSPHRASE;
    out->data = first;
    out->len = flen;
    out->source = xstrdup ("--passphrase");
    return 0;
}

int
capsa_keyspec_get (bool passphrase_flag, const char *pem_path_flag, enum capsa_key_use use,
                   struct capsa_keyspec *out, capsa_error_t *err)
{
    const char *name = NULL;
    char *v = NULL;
    size_t len = 0;
    int ret = 0;

    memset (out, 0, sizeof (*out));
    if (passphrase_flag && pem_path_flag) {
        ret = capsa_error_code (err, EINVAL, "--passphrase and --pem-path cannot be used together");
        goto done;
    }
    if (pem_path_flag) {
        if (*pem_path_flag == '\0')
            ret = capsa_error_code (err, EINVAL, "--pem-path needs a file name");
        else if ((ret = read_pem_file (pem_path_flag, out, err)) == 0)
            out->source = xstrdup (pem_path_flag);
        goto done;
    }
    if (passphrase_flag) {
        ret = prompt_passphrase (use, out, err);
        goto done;
    }
    if ((v = env_secret ("ENCRYPTION_PEM_PATH", &len, &name)) != NULL) {
        char *n = xstrdup (name);
        if (len == 0)
            ret = capsa_error_code (err, EINVAL, "%s is set but empty", n);
        else if ((ret = read_pem_file (v, out, err)) == 0)
            out->source = xstrdup (v);
        free (n);
        goto done;
    }
    if ((v = env_secret ("ENCRYPTION_PEM_DATA", &len, &name)) != NULL) {
        if (len == 0)
            ret = capsa_error_code (err, EINVAL, "%s is set but empty", name);
        else {
            out->kind = CAPSA_KEY_PEM;
            out->data = steal_ptr (&v);
            out->len = len;
            out->source = xstrdup (name);
        }
        goto done;
    }
    if ((v = env_secret ("ENCRYPTION_PASSPHRASE", &len, &name)) != NULL) {
        if (len == 0)
            ret = capsa_error_code (err, EINVAL, "%s is set but empty", name);
        else if (len > CAPSA_SECRET_MAX)
            ret = capsa_error_code (err, EINVAL, "%s is longer than %u bytes", name, CAPSA_SECRET_MAX);
        else {
            out->kind = CAPSA_KEY_PASSPHRASE;
            out->data = steal_ptr (&v);
            out->len = len;
            out->source = xstrdup (name);
        }
        goto done;
    }
done:
    capsa_secure_free (v);
    capsa_keyspec_scrub_environment ();
    if (ret < 0)
        capsa_keyspec_clear (out);
    return ret;
}

void
capsa_keyspec_clear (struct capsa_keyspec *k)
{
    capsa_secure_free (k->data);
    free (k->source);
    memset (k, 0, sizeof (*k));
}
