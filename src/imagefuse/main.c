/* imagefuse: capsa's image server.  Serves the squashfs of an image (a bare
 * squashfs, a SIF's partition, or the plaintext of an encrypted SIF
 * partition, decrypted here) to the FUSE connections of containers.
 *
 *   imagefuse --image-fd N --offset OFF --size SIZE --fuse-fd F
 *             [--key-fd K] [--ready-fd R] [--rundir-fd D --name NAME]
 *             [--linger SECONDS] [--cache-mib MIB] [--debug]
 *
 * N: the image file; [OFF, OFF+SIZE) the squashfs, or with K the encrypted
 * partition (K: a pipe carrying the key record the front end made, read to
 * its end once: a secret record, with which the image is opened here, or a
 * data key record; src/crypt/crypt.h).  F: a /dev/fuse descriptor the container's
 * child has mounted, the first connection.  R gets one byte 'R' once F is
 * served (and the socket bound), followed by lines for the monitor to show
 * (runtime/imageserver.h), and is closed; on failure it gets 'F' and the
 * reason instead (without R: one FATAL line on stderr), and the server
 * exits 255.  With D
 * and NAME it listens on NAME in directory D for more connections of the
 * same image (src/runtime/imageserver.h: who may connect, with what) and
 * stays SECONDS (default 0) after the last one ended; otherwise it ends
 * with F's connection.  MIB: decompressed data kept (default 256).
 *
 * It runs as the user whose containers it serves and never with privilege
 * (it refuses to run setuid); it is not dumpable and makes no core file
 * (it may hold a key).  It exits 0 at the end, or on SIGTERM, SIGINT,
 * SIGHUP. */
#include "imagefuse/imagefuse.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypt/crypt.h"
#include "imagefuse/server.h"
#include "lib/error.h"
#include "lib/log.h"
#include "lib/utils.h"

struct plain {
    int fd;
    uint64_t off;
};

static int
plain_read (void *ctx, void *buf, size_t len, uint64_t off)
{
    const struct plain *p = ctx;
    return pread_all (p->fd, buf, len, (off_t) (p->off + off)) == (ssize_t) len ? 0 : -EIO;
}

static int
crypt_read (void *ctx, void *buf, size_t len, uint64_t off)
{
    capsa_error_t e = NULL;
    ssize_t n = capsa_crypt_read (ctx, buf, len, off, &e);
    if (n < 0) {
        capsa_error_free (&e);
        return -EIO;
    }
    return (size_t) n == len ? 0 : -EIO;
}

static int ready_fd = -1;

/* Before serving: the reason goes to whoever waits on --ready-fd (the
 * monitor, which decides what to tell the user), else to stderr. */
static noreturn void
startup_fatal (capsa_error_t *err)
{
    if (ready_fd >= 0) {
        cleanup_free char *msg = xasprintf ("F%s", *err && (*err)->msg ? (*err)->msg : "failed");
        (void) !write (ready_fd, msg, strlen (msg));
        _exit (CAPSA_EXIT_FATAL);
    }
    capsa_error_fatal (err);
}

static noreturn void
usage (void)
{
    capsa_die ("usage: imagefuse --image-fd N --offset OFF --size SIZE --fuse-fd F [--key-fd K] [--ready-fd R] "
               "[--rundir-fd D --name NAME] [--linger SECONDS] [--cache-mib MIB] [--debug]");
}

static uint64_t
parse_u64 (const char *opt, const char *s)
{
    char *end;
    errno = 0;
    if (s == NULL || *s < '0' || *s > '9')
        capsa_die ("%s needs a number", opt);
    unsigned long long v = strtoull (s, &end, 10);
    if (errno != 0 || *end != '\0' || v > INT64_MAX)
        capsa_die ("invalid value for %s: '%s'", opt, s);
    return v;
}

static int
parse_fd (const char *opt, const char *s)
{
    uint64_t v = parse_u64 (opt, s);
    if (v > INT32_MAX || fcntl ((int) v, F_GETFD) < 0)
        capsa_die ("%s %s is not an open file descriptor", opt, s);
    fcntl ((int) v, F_SETFD, FD_CLOEXEC);
    return (int) v;
}

/* The key record on FD, in locked memory; FD is closed. */
static uint8_t *
read_key (int fd, size_t *len)
{
    capsa_error_t err = NULL;
    uint8_t *key = capsa_secret_read_fd (fd, len, &err);
    if (key == NULL)
        capsa_die ("%s", err->msg);
    return key;
}

int
main (int argc, char **argv)
{
    int image_fd = -1, key_fd = -1, fuse_fd = -1, dir_fd = -1;
    bool have_off = false, have_size = false, debug = false;
    uint64_t off = 0, size = 0, linger = 0, cache_mib = 256;
    const char *name = NULL;
    struct rlimit no_core = { 0, 0 };
    capsa_error_t err = NULL;

    /* Before anything secret is in memory. */
    prctl (PR_SET_DUMPABLE, 0);
    setrlimit (RLIMIT_CORE, &no_core);
    if (getuid () != geteuid () || getgid () != getegid ())
        capsa_die ("imagefuse must not run setuid or setgid");

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp (a, "--image-fd") == 0)
            image_fd = parse_fd (a, v), i++;
        else if (strcmp (a, "--offset") == 0)
            off = parse_u64 (a, v), have_off = true, i++;
        else if (strcmp (a, "--size") == 0)
            size = parse_u64 (a, v), have_size = true, i++;
        else if (strcmp (a, "--fuse-fd") == 0)
            fuse_fd = parse_fd (a, v), i++;
        else if (strcmp (a, "--key-fd") == 0)
            key_fd = parse_fd (a, v), i++;
        else if (strcmp (a, "--ready-fd") == 0)
            ready_fd = parse_fd (a, v), i++;
        else if (strcmp (a, "--rundir-fd") == 0)
            dir_fd = parse_fd (a, v), i++;
        else if (strcmp (a, "--name") == 0 && v)
            name = v, i++;
        else if (strcmp (a, "--linger") == 0)
            linger = parse_u64 (a, v), i++;
        else if (strcmp (a, "--cache-mib") == 0)
            cache_mib = parse_u64 (a, v), i++;
        else if (strcmp (a, "--debug") == 0)
            debug = true;
        else
            usage ();
    }
    if (image_fd < 0 || fuse_fd < 0 || !have_off || !have_size || (dir_fd >= 0) != (name != NULL)
        || (name && (strchr (name, '/') || strlen (name) > 64)) || linger > 86400 || cache_mib > (1u << 20))
        usage ();
    if (debug)
        capsa_log_set_level (CAPSA_LOG_DEBUG);
    /* A server may outlive the directory it was started from. */
    if (chdir ("/") < 0)
        capsa_die ("cannot change to /: %s", strerror (errno));

    struct server srv;
    struct stat st;
    if (fstat (image_fd, &st) < 0 || !S_ISREG (st.st_mode))
        capsa_die ("the image descriptor is not a regular file");
    if (off > (uint64_t) st.st_size || size > (uint64_t) st.st_size - off)
        capsa_die ("the image partition lies outside the file");

    sqi_read_fn read_fn = plain_read;
    void *ctx;
    uint64_t sq_size = size ? size : (uint64_t) st.st_size - off;
    struct plain plain = { .fd = image_fd, .off = off };
    struct capsa_crypt_image *volume = NULL;
    char info[512] = "";
    server_init (&srv, NULL);
    srv.id = st;
    srv.offset = off;
    srv.part_size = size;
    if (key_fd >= 0) {
        size_t key_len = 0;
        uint8_t *key = read_key (key_fd, &key_len);
        /* The key opens the image here, once (the KDF for a secret). */
        int r = keys_open (&srv, image_fd, off, sq_size, key, key_len, &volume, info, sizeof (info), &err);
        capsa_secure_free (key);
        if (r < 0)
            startup_fatal (&err);
        read_fn = crypt_read;
        ctx = volume;
        sq_size = capsa_crypt_size (volume);
        srv.encrypted = true;
        srv.volume = volume;
    } else {
        ctx = &plain;
    }

    struct sqi_limits limits = { .data_cache_bytes = (size_t) cache_mib << 20, .meta_cache_bytes = 64u << 20 };
    struct sqi_image *img;
    if (sqi_open (read_fn, ctx, sq_size, &limits, &img, &err) < 0)
        startup_fatal (&err);
    srv.img = img;
    srv.linger_ms = (unsigned) linger * 1000;

    /* Signals go to the main thread's signalfd: blocked here, before any
     * thread exists, so that every thread inherits the mask. */
    sigset_t mask;
    sigemptyset (&mask);
    sigaddset (&mask, SIGTERM);
    sigaddset (&mask, SIGINT);
    sigaddset (&mask, SIGHUP);
    pthread_sigmask (SIG_BLOCK, &mask, NULL);
    signal (SIGPIPE, SIG_IGN);

    if (name && server_listen (&srv, dir_fd, name, &err) < 0)
        startup_fatal (&err);
    if (server_add_session (&srv, fuse_fd) < 0) {
        capsa_error_make (&err, 0, "cannot serve the FUSE connection");
        startup_fatal (&err);
    }
    debugf ("imagefuse: serving (pid %d)%s", (int) getpid (), name ? ", shared" : "");
    if (ready_fd >= 0) {
        cleanup_free char *ready = xasprintf ("R%s", info);
        (void) !write (ready_fd, ready, strlen (ready));
        close (ready_fd);
    }
    /* Serving from now on: libfuse's report of a connection's end when a
     * container's namespace goes away is noise (kept with --debug). */
    int devnull = open ("/dev/null", O_WRONLY | O_CLOEXEC);
    if (!debug && devnull >= 0)
        dup2 (devnull, STDERR_FILENO);
    if (devnull >= 0)
        close (devnull);

    int r = server_run (&srv);
    if (debug) {
        struct sqi_stats s;
        sqi_get_stats (img, &s);
        debugf ("imagefuse: %u connections; %" PRIu64 " inodes and %" PRIu64 " directories decoded, %" PRIu64
                " blocks decompressed, %" PRIu64 " found in the cache",
                srv.total, s.inode_decodes, s.dir_decodes, s.block_decompressions, s.block_hits);
    }
    /* Connections still open (a signal) end with the process. */
    if (srv.nsessions == 0 && srv.clients == 0) {
        sqi_close (img);
        capsa_crypt_close (volume);
    }
    return r < 0 ? CAPSA_EXIT_FATAL : 0;
}
