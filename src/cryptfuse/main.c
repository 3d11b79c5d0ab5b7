/* capsa-cryptfuse: serve the decrypted squashfs of an encrypted image as a
 * read-only FUSE file system holding one regular file, `image`.
 *
 *   capsa-cryptfuse --image-fd N --offset OFF --size SIZE
 *                   (--key-fd K | --volume-key-fd K) [--ready-fd R]
 *                   [--allow-other] [--debug] MOUNTPOINT
 *
 * N is an open descriptor of the SIF file (or any file holding the
 * encrypted partition at [OFF, OFF+SIZE)): a LUKS2 container (fs type 5)
 * or a gocryptfs squashfs (fs type 6), told apart by its first bytes.  K
 * carries the key, read to end of file once and closed: with --key-fd the
 * passphrase, the RSA-unwrapped secret or gocryptfs password (one KDF run
 * here), with --volume-key-fd the key record the front end wrote after
 * opening the image itself (src/crypt: "CAPSAKEY", format, data key; no
 * KDF), or a bare LUKS2 volume key.  Secrets never come through arguments
 * or the environment.  With --ready-fd, "R" is written to
 * R once the key has opened the image and the file system is mounted, and
 * R is closed; on failure R is closed without a byte.  MOUNTPOINT is a
 * directory, or /dev/fd/M for a /dev/fuse descriptor already mounted by
 * the caller (as capsa's monitor does).
 *
 * It runs as the user who runs the container and never with privilege (it
 * refuses to run setuid).  It is not dumpable, makes no core files, keeps
 * the volume key in locked memory (the whole process when the memory-lock
 * limit allows), stays in the foreground, and exits 0 when the file system
 * is unmounted or on SIGTERM/SIGINT/SIGHUP.  Errors: one "FATAL:" line on
 * stderr and exit 255. */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypt/crypt.h"
#include "lib/error.h"
#include "lib/log.h"
#include "lib/utils.h"

#define ROOT_INO FUSE_ROOT_ID
#define IMAGE_INO 2
#define IMAGE_NAME "image"
/* The content never changes while mounted: let the kernel cache freely. */
#define ATTR_TIMEOUT 86400.0

static struct capsa_crypt_image *volume;
static uint64_t image_size;
static struct timespec mount_time;

static void
fill_attr (fuse_ino_t ino, struct stat *st)
{
    memset (st, 0, sizeof (*st));
    st->st_ino = ino;
    st->st_uid = getuid ();
    st->st_gid = getgid ();
    st->st_atim = st->st_mtim = st->st_ctim = mount_time;
    if (ino == ROOT_INO) {
        st->st_mode = S_IFDIR | 0555;
        st->st_nlink = 2;
    } else {
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
        st->st_size = (off_t) image_size;
        st->st_blksize = (blksize_t) capsa_crypt_block_size (volume);
        st->st_blocks = (blkcnt_t) ((image_size + 511) / 512);
    }
}

static void
op_lookup (fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fuse_entry_param e;

    if (parent != ROOT_INO || strcmp (name, IMAGE_NAME) != 0) {
        fuse_reply_err (req, ENOENT);
        return;
    }
    memset (&e, 0, sizeof (e));
    e.ino = IMAGE_INO;
    e.attr_timeout = e.entry_timeout = ATTR_TIMEOUT;
    fill_attr (IMAGE_INO, &e.attr);
    fuse_reply_entry (req, &e);
}

static void
op_getattr (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;

    (void) fi;
    if (ino != ROOT_INO && ino != IMAGE_INO) {
        fuse_reply_err (req, ENOENT);
        return;
    }
    fill_attr (ino, &st);
    fuse_reply_attr (req, &st, ATTR_TIMEOUT);
}

static void
op_opendir (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (ino != ROOT_INO)
        fuse_reply_err (req, ENOTDIR);
    else
        fuse_reply_open (req, fi);
}

static void
op_readdir (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    static const struct {
        const char *name;
        fuse_ino_t ino;
        mode_t mode;
    } entries[] = { { ".", ROOT_INO, S_IFDIR }, { "..", ROOT_INO, S_IFDIR }, { IMAGE_NAME, IMAGE_INO, S_IFREG } };
    char buf[512];
    size_t used = 0;

    (void) fi;
    if (ino != ROOT_INO) {
        fuse_reply_err (req, ENOTDIR);
        return;
    }
    for (size_t i = (size_t) (off < 0 ? 0 : off); i < ARRAY_SIZE (entries); i++) {
        struct stat st = { .st_ino = entries[i].ino, .st_mode = entries[i].mode };
        size_t n = fuse_add_direntry (req, buf + used, sizeof (buf) - used, entries[i].name, &st, (off_t) i + 1);
        if (used + n > size || n > sizeof (buf) - used)
            break;
        used += n;
    }
    fuse_reply_buf (req, buf, used);
}

static void
op_open (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (ino == ROOT_INO) {
        fuse_reply_err (req, EISDIR);
        return;
    }
    if (ino != IMAGE_INO) {
        fuse_reply_err (req, ENOENT);
        return;
    }
    if ((fi->flags & O_ACCMODE) != O_RDONLY) {
        fuse_reply_err (req, EROFS);
        return;
    }
    fi->keep_cache = 1;
    fuse_reply_open (req, fi);
}

/* One buffer per FUSE worker thread, reused: reads come in pieces of up
 * to 128 KiB, too many for malloc's mmap threshold.  Freed (and wiped)
 * when the worker ends. */
struct read_buf {
    unsigned char *p;
    size_t cap;
};
static pthread_key_t read_buf_key;

static void
read_buf_free (void *p)
{
    struct read_buf *b = p;
    if (b == NULL)
        return;
    if (b->p)
        explicit_bzero (b->p, b->cap);
    free (b->p);
    free (b);
}

static void
op_read (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    struct read_buf *b = pthread_getspecific (read_buf_key);
    capsa_error_t err = NULL;
    ssize_t n;

    (void) fi;
    if (ino != IMAGE_INO) {
        fuse_reply_err (req, EISDIR);
        return;
    }
    if (off < 0) {
        fuse_reply_err (req, EINVAL);
        return;
    }
    if (b == NULL) {
        b = calloc (1, sizeof (*b));
        if (b == NULL || pthread_setspecific (read_buf_key, b) != 0) {
            free (b);
            fuse_reply_err (req, ENOMEM);
            return;
        }
    }
    if (size > b->cap) {
        unsigned char *nb = malloc (size);
        if (nb == NULL) {
            fuse_reply_err (req, ENOMEM);
            return;
        }
        if (b->p)
            explicit_bzero (b->p, b->cap);
        free (b->p);
        b->p = nb;
        b->cap = size;
    }
    n = capsa_crypt_read (volume, b->p, size, (uint64_t) off, &err);
    if (n < 0) {
        /* No secret is in the message. */
        errorf ("capsa-cryptfuse: %s", err->msg);
        capsa_error_free (&err);
        fuse_reply_err (req, EIO);
        return;
    }
    fuse_reply_buf (req, (const char *) b->p, (size_t) n);
    explicit_bzero (b->p, (size_t) n);
}

static const struct fuse_lowlevel_ops ops = {
    .lookup = op_lookup,
    .getattr = op_getattr,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .open = op_open,
    .read = op_read,
};

static noreturn void
usage (void)
{
    capsa_die ("usage: capsa-cryptfuse --image-fd N --offset OFF --size SIZE (--key-fd K | --volume-key-fd K) "
               "[--ready-fd R] [--allow-other] [--debug] MOUNTPOINT");
}

static uint64_t
parse_u64 (const char *opt, const char *s)
{
    char *end;
    unsigned long long v;

    errno = 0;
    if (s == NULL || *s < '0' || *s > '9')
        capsa_die ("%s needs a number", opt);
    v = strtoull (s, &end, 10);
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

/* Everything in memory stays there (no swap: OpenSSL's key schedules and
 * the decrypted buffers live on the heap) when the limit allows it without
 * risking later allocations: as root or with no limit.  MCL_ONFAULT locks
 * pages as they are used instead of populating every mapping (thread
 * stacks, malloc arenas) at once.  Otherwise only the key buffers are
 * locked (capsa_secure_alloc). */
static void
lock_memory (void)
{
    struct rlimit rl;

    if (getrlimit (RLIMIT_MEMLOCK, &rl) == 0 && (rl.rlim_cur == RLIM_INFINITY || geteuid () == 0)) {
        if (mlockall (MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0)
            debugf ("capsa-cryptfuse: all memory locked");
    }
}

int
main (int argc, char **argv)
{
    int image_fd = -1, key_fd = -1, ready_fd = -1;
    bool have_off = false, have_size = false, volume_key = false, allow_other = false, debug = false;
    uint64_t off = 0, size = 0;
    const char *mountpoint = NULL;
    struct rlimit no_core = { 0, 0 };
    capsa_error_t err = NULL;
    uint8_t *key;
    size_t key_len = 0;
    int ret;

    /* Before anything secret is in memory. */
    prctl (PR_SET_DUMPABLE, 0);
    setrlimit (RLIMIT_CORE, &no_core);
    if (getuid () != geteuid () || getgid () != getegid ())
        capsa_die ("capsa-cryptfuse must not run setuid or setgid");

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp (a, "--image-fd") == 0)
            image_fd = parse_fd (a, v), i++;
        else if (strcmp (a, "--offset") == 0)
            off = parse_u64 (a, v), have_off = true, i++;
        else if (strcmp (a, "--size") == 0)
            size = parse_u64 (a, v), have_size = true, i++;
        else if (strcmp (a, "--key-fd") == 0 || strcmp (a, "--volume-key-fd") == 0) {
            if (key_fd >= 0)
                capsa_die ("--key-fd and --volume-key-fd given more than once");
            volume_key = strcmp (a, "--volume-key-fd") == 0;
            key_fd = parse_fd (a, v), i++;
        } else if (strcmp (a, "--ready-fd") == 0)
            ready_fd = parse_fd (a, v), i++;
        else if (strcmp (a, "--allow-other") == 0)
            allow_other = true;
        else if (strcmp (a, "--debug") == 0)
            debug = true;
        else if (strcmp (a, "--help") == 0 || strcmp (a, "-h") == 0)
            usage ();
        else if (a[0] == '-' && a[1] != '\0')
            capsa_die ("unknown option '%s'", a);
        else if (mountpoint == NULL)
            mountpoint = a;
        else
            usage ();
    }
    if (image_fd < 0 || key_fd < 0 || !have_off || !have_size || mountpoint == NULL)
        usage ();
    if (debug)
        capsa_log_set_level (CAPSA_LOG_DEBUG);
    /* Descriptors are the interface: none of them leaks into fusermount3. */
    fcntl (image_fd, F_SETFD, FD_CLOEXEC);
    if (ready_fd >= 0)
        fcntl (ready_fd, F_SETFD, FD_CLOEXEC);

    if (pthread_key_create (&read_buf_key, read_buf_free) != 0)
        capsa_die ("pthread_key_create failed");
    key = read_key (key_fd, &key_len);
    bool secret_record = volume_key && capsa_is_secret_record (key, key_len);
    if (volume_key)
        ret = capsa_crypt_open_record (image_fd, off, size, key, key_len, &volume, &err);
    else
        ret = capsa_crypt_open (image_fd, off, size, CAPSA_CRYPT_AUTO, key, key_len, 0, &volume, &err);
    capsa_secure_free (key);
    if (ret < 0)
        capsa_error_fatal (&err);
    image_size = capsa_crypt_size (volume);
    /* (When the front end handed the key on unopened, it did not see this.) */
    if (secret_record && capsa_crypt_legacy_numbering (volume))
        warnf ("the image was encrypted by capsa 0.1.0, whose sector numbering the kernel's dm-crypt does not read "
               "(Apptainer and SingularityCE cannot open it); capsa still runs it. Encrypt the unencrypted image "
               "again with 'capsa encrypt' to share it");
    {
        const struct capsa_kdf_cost *k = capsa_crypt_kdf_cost (volume);
        debugf ("capsa-cryptfuse: %s image, %" PRIu64 " bytes of plaintext",
                capsa_crypt_format_name (capsa_crypt_format (volume)), image_size);
        if (k)
            debugf ("capsa-cryptfuse: key derivation %s, %" PRIu64 " KiB, %" PRIu32 " iterations, %" PRIu32
                    " lanes: %.3f s", k->type, k->memory_kb, k->iterations, k->parallel, k->seconds);
    }
    clock_gettime (CLOCK_REALTIME, &mount_time);
    lock_memory ();

    {
        char opts[128];
        char *fargv[5];
        int fargc = 0;
        struct fuse_args args;
        struct fuse_session *se;
        struct fuse_loop_config *cfg;

        snprintf (opts, sizeof (opts), "ro,default_permissions,fsname=capsa-cryptfuse,subtype=capsa-cryptfuse%s",
                  allow_other ? ",allow_other" : "");
        fargv[fargc++] = argv[0];
        fargv[fargc++] = (char *) "-o";
        fargv[fargc++] = opts;
        if (debug)
            fargv[fargc++] = (char *) "-d";
        fargv[fargc] = NULL;
        args = (struct fuse_args) FUSE_ARGS_INIT (fargc, fargv);
        se = fuse_session_new (&args, &ops, sizeof (ops), NULL);
        if (se == NULL)
            capsa_die ("cannot create the FUSE session");
        if (fuse_set_signal_handlers (se) != 0)
            capsa_die ("cannot install signal handlers");
        if (fuse_session_mount (se, mountpoint) != 0)
            capsa_die ("cannot mount the decrypted image on %s", mountpoint);
        if (ready_fd >= 0) {
            (void) !write (ready_fd, "R", 1);
            close (ready_fd);
            /* Serving from now on: libfuse's report of the connection's end
             * when the container's namespace goes away is noise for the
             * user of the container (kept with --debug). */
            int devnull = open ("/dev/null", O_WRONLY | O_CLOEXEC);
            if (!debug && devnull >= 0)
                dup2 (devnull, STDERR_FILENO);
            if (devnull >= 0)
                close (devnull);
        }
        cfg = fuse_loop_cfg_create ();
        fuse_loop_cfg_set_max_threads (cfg, 8);
        ret = fuse_session_loop_mt (se, cfg);
        fuse_loop_cfg_destroy (cfg);
        fuse_session_unmount (se);
        fuse_remove_signal_handlers (se);
        fuse_session_destroy (se);
        fuse_opt_free_args (&args);
    }
    capsa_crypt_close (volume);
    return ret < 0 ? CAPSA_EXIT_FATAL : 0;
}
