/* capsa encrypt [--passphrase | --pem-path PUBLIC.pem] [--force] IN.sif OUT.sif
 *
 * Encrypt the root file system of an existing SIF image without
 * rebuilding it: OUT gets every object of IN, in the same order and groups,
 * except that the primary squashfs partition becomes an encrypted one
 * (fs type 5, LUKS2, src/crypt) and, for an RSA key, a cryptographic
 * message linked to it holds the wrapped secret.  Signatures are dropped:
 * they sign the plaintext partition, which no longer exists.
 *
 * OUT is written to a hidden temporary file beside it and renamed into
 * place only when complete; on any error or on SIGINT/SIGTERM/SIGHUP the
 * temporary file is removed.  The plaintext goes from IN through a pipe
 * into the encryptor and only ciphertext reaches OUT. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "crypt/crypt.h"
#include "lib/error.h"
#include "lib/log.h"
#include "lib/utils.h"
#include "sif/sif.h"

/* The temporary output, removed by the signal handler. */
static char tmp_path[4096];
static volatile sig_atomic_t tmp_live;

static void
on_signal (int sig)
{
    if (tmp_live)
        unlink (tmp_path);
    signal (sig, SIG_DFL);
    raise (sig);
}

static const int cleanup_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

static void
block_signals (bool block)
{
    sigset_t s;
    sigemptyset (&s);
    for (size_t i = 0; i < ARRAY_SIZE (cleanup_signals); i++)
        sigaddset (&s, cleanup_signals[i]);
    sigprocmask (block ? SIG_BLOCK : SIG_UNBLOCK, &s, NULL);
}

struct copier {
    const struct sif_image *img;
    const struct sif_descriptor *d;
    int fd;
    int ret;
    capsa_error_t err;
};

static void *
copier_main (void *p)
{
    struct copier *c = p;
    sigset_t s;

    sigemptyset (&s);
    sigaddset (&s, SIGPIPE);
    pthread_sigmask (SIG_BLOCK, &s, NULL);
    c->ret = sif_copy_object (c->img, c->d, c->fd, &c->err);
    close (c->fd);
    return NULL;
}

/* Copy object d of in to out with the same metadata (link remapped). */
static int
copy_object (const struct sif_image *in, const struct sif_descriptor *d, struct sif_image *out, uint32_t link,
             uint32_t *new_id, capsa_error_t *err)
{
    struct sif_add_opts o = { 0 };
    struct copier c = { .img = in, .d = d };
    char digest[SIF_EXTRA_LEN + 1];
    pthread_t t;
    int p[2], r;

    o.datatype = d->datatype;
    o.group = d->group;
    o.link = link;
    o.link_is_group = d->link_is_group;
    o.alignment = -1;
    o.name = d->name;
    o.time = d->created != 0 ? d->created : SIF_TIME_UNSET;
    switch (d->datatype) {
    case SIF_DATA_PARTITION: {
        struct sif_partition pi;
        if (sif_get_partition (d, &pi, err) < 0)
            return -1;
        o.fstype = pi.fstype;
        o.parttype = pi.parttype;
        o.arch = sif_arch_name (pi.arch);
        break;
    }
    case SIF_DATA_CRYPTO_MESSAGE: {
        struct sif_crypto_message cm;
        if (sif_get_crypto_message (d, &cm, err) < 0)
            return -1;
        o.format = cm.format;
        o.message = cm.message;
        break;
    }
    case SIF_DATA_SBOM:
        if (sif_get_sbom_format (d, &o.sbom_format, err) < 0)
            return -1;
        break;
    case SIF_DATA_OCI_BLOB:
    case SIF_DATA_OCI_ROOT_INDEX:
        if (sif_get_oci_digest (d, digest, sizeof (digest), err) < 0)
            return -1;
        o.digest = digest;
        break;
    default:
        break;
    }
    if (pipe2 (p, O_CLOEXEC) < 0)
        return capsa_error_make (err, errno, "pipe");
    c.fd = p[1];
    if ((r = pthread_create (&t, NULL, copier_main, &c)) != 0) {
        close (p[0]);
        close (p[1]);
        return capsa_error_make (err, r, "cannot start a copy thread");
    }
    r = sif_add_object (out, &o, p[0], new_id, err);
    close (p[0]);
    pthread_join (t, NULL);
    if (r < 0) {
        capsa_error_free (&c.err);
        return -1;
    }
    if (c.ret < 0) {
        (void) sif_delete_object (out, *new_id, true, true, NULL);
        *err = steal_ptr (&c.err);
        return -1;
    }
    return 0;
}

static int
encrypt_image (const char *in_path, const char *out_path, const struct capsa_keyspec *key, int *dropped,
               capsa_error_t *err)
{
    struct sif_image *in = NULL, *out = NULL;
    const struct sif_descriptor *prim;
    const struct sif_header *h;
    struct sif_partition pi;
    struct sif_create_opts co = { 0 };
    uint32_t *map = NULL;
    size_t n;
    int ret = -1;

    if (sif_open (in_path, false, &in, err) < 0)
        return -1;
    if (sif_find_primary_partition (in, &prim, err) < 0) {
        capsa_error_wrap (err, "%s", in_path);
        goto out;
    }
    if (sif_get_partition (prim, &pi, err) < 0)
        goto out;
    if (pi.fstype == SIF_FS_ENCRYPTED_SQUASHFS || pi.fstype == SIF_FS_GOCRYPTFS_SQUASHFS) {
        capsa_error_make (err, 0, "%s is already encrypted", in_path);
        goto out;
    }
    if (pi.fstype != SIF_FS_SQUASHFS) {
        capsa_error_make (err, 0, "the root file system of %s is %s; only squashfs can be encrypted", in_path,
                          sif_fstype_name (pi.fstype));
        goto out;
    }
    if (key->kind == CAPSA_KEY_PEM) {
        /* Check the key before anything is written. */
        struct capsa_rsa_key *k = NULL;
        if (capsa_rsa_key_load (key->data, key->len, false, key->source, &k, err) < 0)
            goto out;
        capsa_rsa_key_free (k);
    }

    h = sif_get_header (in);
    n = sif_descriptor_count (in);
    co.launch = h->launch;
    co.descriptors = h->descr_total > (int64_t) n + 1 ? h->descr_total : (int64_t) n + 1;
    co.arch = strcmp (sif_arch_name (h->arch), "unknown") != 0 ? sif_arch_name (h->arch) : NULL;
    block_signals (true); /* sif_create's own temporary file lives only inside this call */
    if (sif_create (tmp_path, &co, err) < 0) {
        block_signals (false);
        goto out;
    }
    block_signals (false);
    if (sif_open (tmp_path, true, &out, err) < 0)
        goto out;

    /* Object IDs are slot numbers: they change when signatures are
     * dropped, so links to objects are remapped (links to groups stay). */
    map = xcalloc (SIF_MAX_DESCRIPTORS + 2, sizeof (*map));
    {
        /* New IDs are slot numbers in the new image, given in order: the
         * encrypted partition is followed by its key message (RSA). */
        uint32_t next = 1;
        for (size_t i = 0; i < n; i++) {
            const struct sif_descriptor *d = sif_descriptor_at (in, i);
            if (d->datatype == SIF_DATA_SIGNATURE)
                continue;
            if (d->id <= SIF_MAX_DESCRIPTORS)
                map[d->id] = next;
            next += d == prim && key->kind == CAPSA_KEY_PEM ? 2 : 1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct sif_descriptor *d = sif_descriptor_at (in, i);
        uint32_t link = d->link, id = 0;

        if (d->datatype == SIF_DATA_SIGNATURE) {
            (*dropped)++;
            continue;
        }
        if (link != 0 && !d->link_is_group) {
            link = link <= SIF_MAX_DESCRIPTORS ? map[link] : 0;
            if (link == 0)
                warnf ("object %" PRIu32 " of %s was linked to object %" PRIu32 ", which is not copied; the link is dropped",
                       d->id, in_path, d->link);
        }
        if (d == prim) {
            struct capsa_encrypt_opts eo = { 0 };
            cleanup_close int fd = open (in_path, O_RDONLY | O_CLOEXEC);

            if (fd < 0 || lseek (fd, (off_t) d->offset, SEEK_SET) < 0) {
                capsa_error_make (err, errno, "cannot read %s", in_path);
                goto out;
            }
            eo.arch = sif_arch_name (pi.arch);
            eo.group = d->group;
            eo.length = (uint64_t) d->size;
            verbosef ("encrypting partition %" PRIu32 " (%" PRId64 " bytes)", d->id, d->size);
            if (capsa_encrypt_write_partition (out, fd, key, &eo, &id, err) < 0)
                goto out;
        } else if (copy_object (in, d, out, link, &id, err) < 0) {
            capsa_error_wrap (err, "cannot copy object %" PRIu32 " of %s", d->id, in_path);
            goto out;
        }
        if (d->id <= SIF_MAX_DESCRIPTORS && map[d->id] != id) {
            capsa_error_make (err, 0, "internal error: object %" PRIu32 " became %" PRIu32 ", expected %" PRIu32,
                              d->id, id, map[d->id]);
            goto out;
        }
    }
    sif_close (steal_ptr (&out));
    {
        /* Everything on disk before the name appears. */
        cleanup_close int fd = open (tmp_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync (fd) < 0) {
            capsa_error_make (err, errno, "cannot sync %s", tmp_path);
            goto out;
        }
    }
    if (rename (tmp_path, out_path) < 0) {
        capsa_error_make (err, errno, "cannot rename %s to %s", tmp_path, out_path);
        goto out;
    }
    tmp_live = 0;
    ret = 0;
out:
    free (map);
    if (out)
        sif_close (out);
    sif_close (in);
    return ret;
}

int
cmd_encrypt (int argc, char **argv)
{
    static const struct option opts[] = {
        { "passphrase", no_argument, NULL, 'p' },
        { "pem-path", required_argument, NULL, 'k' },
        { "force", no_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 },
    };
    bool passphrase = false, force = false;
    const char *pem = NULL, *in_path, *out_path;
    struct capsa_keyspec key;
    capsa_error_t err = NULL;
    struct stat st;
    int c, dropped = 0, fd;

    optind = 0;
    while ((c = getopt_long (argc, argv, "+F", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            passphrase = true;
            break;
        case 'k':
            pem = optarg;
            break;
        case 'F':
            force = true;
            break;
        default:
            capsa_die ("encrypt: unknown option '%s' (see 'capsa help encrypt')", argv[optind - 1]);
        }
    }
    if (optind != argc - 2)
        capsa_die ("usage: capsa encrypt [--passphrase | --pem-path PUBLIC.pem] [--force] IN.sif OUT.sif");
    in_path = argv[optind];
    out_path = argv[optind + 1];
    if (!force && lstat (out_path, &st) == 0)
        capsa_die ("%s already exists (use --force to replace it)", out_path);

    /* The key first: nothing is written before the user has answered. */
    if (capsa_keyspec_get (passphrase, pem, CAPSA_KEY_ENCRYPT, &key, &err) < 0)
        capsa_error_fatal (&err);
    if (key.kind == CAPSA_KEY_NONE)
        capsa_die ("no encryption key given: use --passphrase or --pem-path PUBLIC.pem (or "
                   "CAPSA_ENCRYPTION_PASSPHRASE, CAPSA_ENCRYPTION_PEM_PATH, CAPSA_ENCRYPTION_PEM_DATA)");

    {
        cleanup_free char *dcopy = xstrdup (out_path), *bcopy = xstrdup (out_path);
        int len = snprintf (tmp_path, sizeof (tmp_path), "%s/.%s.capsa-encrypt.XXXXXX", dirname (dcopy),
                            basename (bcopy));
        if (len < 0 || (size_t) len >= sizeof (tmp_path))
            capsa_die ("output path too long: %s", out_path);
    }
    for (size_t i = 0; i < ARRAY_SIZE (cleanup_signals); i++) {
        struct sigaction sa = { .sa_handler = on_signal };
        sigemptyset (&sa.sa_mask);
        sigaction (cleanup_signals[i], &sa, NULL);
    }
    block_signals (true);
    fd = mkostemp (tmp_path, O_CLOEXEC);
    if (fd >= 0)
        tmp_live = 1;
    block_signals (false);
    if (fd < 0)
        capsa_die ("cannot create a temporary file beside %s: %s", out_path, strerror (errno));
    close (fd);

    if (encrypt_image (in_path, out_path, &key, &dropped, &err) < 0) {
        block_signals (true);
        if (tmp_live)
            unlink (tmp_path);
        tmp_live = 0;
        capsa_keyspec_clear (&key);
        capsa_error_fatal (&err);
    }
    if (dropped)
        warnf ("%d signature%s of %s not copied: %s no longer match%s the encrypted image (sign %s again)", dropped,
               dropped == 1 ? "" : "s", in_path, dropped == 1 ? "it" : "they", dropped == 1 ? "es" : "", out_path);
    infof ("%s encrypted with %s into %s", in_path,
           key.kind == CAPSA_KEY_PEM ? "an RSA key" : "a passphrase", out_path);
    capsa_keyspec_clear (&key);
    return 0;
}
