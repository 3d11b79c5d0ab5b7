/* Images by URL (http:// and https://), as Apptainer's "net" transport:
 * a HEAD first; the cache key is the sha256 of the URL and the answer's
 * Last-Modified (else its ETag); without either the image is downloaded
 * every time and not kept.  The file must start like an image capsa runs
 * (a SIF header, or a squashfs superblock), else nothing is kept.
 * https:// URLs never follow a redirect to http://. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "oci/oci_private.h"

#define NET_HEADER_MAX 8192

bool
capsa_net_is_uri (const char *s)
{
    return s != NULL && (strncmp (s, "http://", 7) == 0 || strncmp (s, "https://", 8) == 0);
}

struct net_xfer {
    const char *url;
    const struct capsa_oci_opts *o;
    int fd;
    int write_errno;
    char *last_modified, *etag;
    uint64_t received;
};

static size_t
on_header (char *buf, size_t size, size_t n, void *data)
{
    struct net_xfer *x = data;
    size_t len = size * n;
    char line[NET_HEADER_MAX];
    if (len >= sizeof (line))
        return len;
    memcpy (line, buf, len);
    line[len] = '\0';
    line[strcspn (line, "\r\n")] = '\0';
    /* A new response (after a redirect) starts again. */
    if (strncmp (line, "HTTP/", 5) == 0) {
        free (x->last_modified);
        free (x->etag);
        x->last_modified = x->etag = NULL;
        return len;
    }
    char *colon = strchr (line, ':');
    if (colon == NULL)
        return len;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (strcasecmp (line, "Last-Modified") == 0 && *v) {
        free (x->last_modified);
        x->last_modified = xstrdup (v);
    } else if (strcasecmp (line, "ETag") == 0 && *v) {
        free (x->etag);
        x->etag = xstrdup (v);
    }
    return len;
}

static size_t
on_body (char *buf, size_t size, size_t n, void *data)
{
    struct net_xfer *x = data;
    size_t len = size * n;
    if (x->fd < 0)
        return len;
    if (write_all (x->fd, buf, len) < 0) {
        x->write_errno = errno;
        return 0;
    }
    x->received += len;
    return len;
}

static int
on_progress (void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    struct net_xfer *x = data;
    (void) ultotal;
    (void) ulnow;
    if (x->fd >= 0 && x->o && x->o->progress && dlnow > 0)
        x->o->progress (x->url, (uint64_t) dlnow, (uint64_t) dltotal, x->o->data);
    return 0;
}

/* HEAD (fd < 0) or GET into fd. */
static int
request (struct net_xfer *x, capsa_error_t *err)
{
    CURL *h = curl_easy_init ();
    char errbuf[CURL_ERROR_SIZE] = "";
    long status = 0;
    if (h == NULL)
        return capsa_error_make (err, ENOMEM, "curl_easy_init");
    /* https:// stays https://; an http:// URL may be redirected to either. */
    const char *protos = strncmp (x->url, "https://", 8) == 0 ? "https" : "http,https";
    oci_curl_common (h, x->url, protos, errbuf);
    curl_easy_setopt (h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt (h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt (h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt (h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt (h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt (h, CURLOPT_XFERINFODATA, x);
    if (x->fd < 0)
        curl_easy_setopt (h, CURLOPT_NOBODY, 1L);
    CURLcode rc = curl_easy_perform (h);
    curl_easy_getinfo (h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup (h);
    if (rc != CURLE_OK) {
        if (x->write_errno)
            return capsa_error_make (err, x->write_errno, "%s: writing the download", x->url);
        return capsa_error_make (err, 0, "cannot download %s: %s", x->url, *errbuf ? errbuf : curl_easy_strerror (rc));
    }
    if (status == 404)
        return capsa_error_make (err, 0, "%s: not found (HTTP 404)", x->url);
    if (status != 200)
        return capsa_error_make (err, 0, "%s: HTTP %ld", x->url, status);
    return 0;
}

/* The download in FD must be an image: a SIF or a bare squashfs. */
static int
check_image (int fd, const char *url, capsa_error_t *err)
{
    char head[48];
    ssize_t n = pread (fd, head, sizeof (head), 0);
    if (n >= 42 && memcmp (head + 32, "SIF_MAGIC\0", 10) == 0)
        return 0;
    if (n >= 4 && memcmp (head, "hsqs", 4) == 0)
        return 0;
    return capsa_error_make (err, 0, "%s is not a SIF or squashfs image (%lld bytes downloaded)", url,
                             (long long) lseek (fd, 0, SEEK_END));
}

struct net_fill {
    const char *url;
    const struct capsa_oci_opts *o;
};

static int
fill_net (int fd, void *data, capsa_error_t *err)
{
    struct net_fill *f = data;
    struct net_xfer x = { .url = f->url, .o = f->o, .fd = fd };
    oci_notify (f->o, CAPSA_OCI_INFO, "Downloading network image %s", f->url);
    int r = request (&x, err);
    free (x.last_modified);
    free (x.etag);
    if (r < 0)
        return -1;
    return check_image (fd, f->url, err);
}

int
capsa_net_fetch (const char *url, const struct capsa_oci_opts *o, char **path_out, int *fd_out, capsa_error_t *err)
{
    struct net_xfer head = { .url = url, .o = o, .fd = -1 };
    struct oci_cache *cache = NULL;
    cleanup_free char *cachedir = NULL, *keytext = NULL;
    int ret = -1;

    *path_out = NULL;
    *fd_out = -1;
    if (!capsa_net_is_uri (url))
        return capsa_error_make (err, 0, "'%s' is not an http:// or https:// URL", url);
    if (request (&head, err) < 0)
        goto out;
    const char *version = head.last_modified ? head.last_modified : head.etag;
    if (version == NULL || (o && o->no_cache)) {
        /* Nothing tells one version from the next: no cache entry. */
        oci_notify (o, CAPSA_OCI_VERBOSE, "%s: %s, not cached", url,
                    version ? "cache disabled" : "no Last-Modified or ETag");
        int fd = oci_tmpfile (o, err);
        if (fd < 0)
            goto out;
        struct net_fill f = { url, o };
        if (fill_net (fd, &f, err) < 0) {
            close (fd);
            goto out;
        }
        *fd_out = fd;
        ret = 0;
        goto out;
    }
    char key[OCI_DIGEST_LEN + 1];
    keytext = xasprintf ("%s\n%s", url, version);
    oci_digest_buf (keytext, strlen (keytext), key);
    cachedir = o && o->cachedir ? xstrdup (o->cachedir) : capsa_oci_default_cachedir ();
    if (oci_cache_open (cachedir, &cache, err) < 0)
        goto out;
    struct net_fill f = { url, o };
    bool filled = false;
    if (oci_cache_ensure (cache, "net", key, fill_net, &f, path_out, &filled, err) < 0)
        goto out;
    if (!filled)
        oci_notify (o, CAPSA_OCI_VERBOSE, "using the cached image of %s", url);
    capsa_error_t ignore = NULL;
    oci_cache_set_ref (cache, "net", url, key, &ignore);
    capsa_error_free (&ignore);
    ret = 0;
out:
    free (head.last_modified);
    free (head.etag);
    oci_cache_close (cache);
    return ret;
}
