/* A client of the OCI distribution API (one repository of one registry)
 * over libcurl.
 *
 * Transport: HTTPS with the system's CA store, unless the user asked for
 * --no-https; redirects are followed (blob downloads often go to object
 * storage) but never from HTTPS to HTTP, and libcurl does not send our
 * Authorization header to another host on a redirect.
 *
 * Authentication, as the distribution spec describes: a request is sent
 * as is; on 401 the WWW-Authenticate challenge decides.  "Basic": the
 * user's credentials are sent with every request from then on.  "Bearer":
 * a token is fetched from the challenge's realm (with service and scope,
 * and the user's credentials when there are any) and sent as
 * "Authorization: Bearer TOKEN".  Credentials come from the options or the
 * credentials file; they never appear in messages.
 *
 * Every byte a registry returns is untrusted: bodies are size-limited,
 * blobs are hashed while they stream and checked against their digest and
 * size, and manifests fetched by digest are checked against it. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <json-c/json.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "oci/oci_private.h"

void
oci_curl_common (void *curl, const char *url, const char *protos, char *errbuf)
{
    CURL *h = curl;
    curl_easy_setopt (h, CURLOPT_URL, url);
    curl_easy_setopt (h, CURLOPT_PROTOCOLS_STR, protos);
    curl_easy_setopt (h, CURLOPT_REDIR_PROTOCOLS_STR, protos);
    curl_easy_setopt (h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt (h, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt (h, CURLOPT_UNRESTRICTED_AUTH, 0L);
    curl_easy_setopt (h, CURLOPT_USERAGENT, "capsa/" CAPSA_VERSION);
    curl_easy_setopt (h, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt (h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt (h, CURLOPT_LOW_SPEED_TIME, 120L);
    curl_easy_setopt (h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (h, CURLOPT_ERRORBUFFER, errbuf);
}

int
oci_tmpfile (const struct capsa_oci_opts *o, capsa_error_t *err)
{
    const char *dir = o && o->tmpdir ? o->tmpdir : getenv ("TMPDIR");
    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
    int fd = open (dir, O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);
    if (fd < 0)
        return capsa_error_make (err, errno, "temporary file in %s", dir);
    return fd;
}

#define ERRBODY_MAX (64 << 10)

struct oci_client {
    CURL *curl;
    char *host;  /* as in the reference: for credentials and messages */
    char *base;  /* "https://HOST" (docker.io -> registry-1.docker.io) */
    char *repo;
    bool push;
    const struct capsa_oci_opts *o;
    char *user, *password;
    bool creds_looked_up;
    char *authz; /* the Authorization header value, or NULL */
    bool unreachable;
};

/* One request and its response. */
struct xfer {
    struct oci_client *c;
    /* request */
    const char *method; /* "GET", "HEAD", "PUT", "POST" */
    char *url;
    const char *accept;
    const char *content_type;
    const char *body; /* PUT body in memory ... */
    size_t bodylen;
    int in_fd;        /* ... or from this descriptor (from offset 0) */
    uint64_t in_size;
    uint64_t in_off;
    bool send_auth;   /* add our Authorization (false for foreign hosts) */
    /* response body: into memory (up to max) or, for 2xx, into out_fd */
    size_t max;
    int out_fd;
    int64_t expect_size; /* out_fd: -1 unknown */
    const char *what;    /* progress label, NULL: none */
    /* response */
    long status;
    char *buf;
    size_t len, cap;
    bool too_big;
    int write_errno;
    struct oci_hash *hash;
    uint64_t received;
    char *content_type_resp, *location, *www_auth;
};

static void
xfer_reset_response (struct xfer *x)
{
    x->status = 0;
    x->len = 0;
    x->too_big = false;
    free (x->content_type_resp);
    free (x->location);
    free (x->www_auth);
    x->content_type_resp = x->location = x->www_auth = NULL;
}

static void
xfer_free (struct xfer *x)
{
    xfer_reset_response (x);
    free (x->buf);
    free (x->url);
    oci_hash_free (x->hash);
    memset (x, 0, sizeof (*x));
}

static bool
ok_status (long s)
{
    return s >= 200 && s < 300;
}

static char *
header_value (const char *line, size_t n, const char *name)
{
    size_t k = strlen (name);
    if (n <= k || strncasecmp (line, name, k) != 0 || line[k] != ':')
        return NULL;
    const char *v = line + k + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    return xasprintf ("%.*s", (int) (end - v), v);
}

static size_t
on_header (char *data, size_t size, size_t nmemb, void *p)
{
    struct xfer *x = p;
    size_t n = size * nmemb;
    char *v;
    if (n >= 5 && strncmp (data, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or 100-continue): start over. */
        xfer_reset_response (x);
        const char *sp = memchr (data, ' ', n);
        if (sp != NULL)
            x->status = strtol (sp + 1, NULL, 10);
        return n;
    }
    if ((v = header_value (data, n, "content-type")) != NULL) {
        free (x->content_type_resp);
        x->content_type_resp = v;
    } else if ((v = header_value (data, n, "location")) != NULL) {
        free (x->location);
        x->location = v;
    } else if ((v = header_value (data, n, "www-authenticate")) != NULL) {
        if (x->www_auth == NULL)
            x->www_auth = v;
        else
            free (v);
    }
    return n;
}

static size_t
on_body (char *data, size_t size, size_t nmemb, void *p)
{
    struct xfer *x = p;
    size_t n = size * nmemb;
    if (x->out_fd >= 0 && ok_status (x->status)) {
        if (x->expect_size >= 0 && x->received + n > (uint64_t) x->expect_size) {
            x->too_big = true;
            return 0;
        }
        if (write_all (x->out_fd, data, n) < 0) {
            x->write_errno = errno;
            return 0;
        }
        oci_hash_update (x->hash, data, n);
        x->received += n;
        return n;
    }
    size_t max = x->out_fd >= 0 || !ok_status (x->status) ? ERRBODY_MAX : x->max;
    if (x->len + n > max) {
        if (ok_status (x->status)) {
            x->too_big = true;
            return 0;
        }
        n = max - x->len; /* an error page: keep its start */
        if (n == 0)
            return size * nmemb;
    }
    if (x->len + n + 1 > x->cap) {
        x->cap = (x->len + n + 1) * 2;
        if (x->cap > max + 1)
            x->cap = max + 1;
        x->buf = xrealloc (x->buf, x->cap);
    }
    memcpy (x->buf + x->len, data, n);
    x->len += n;
    x->buf[x->len] = '\0';
    if (ok_status (x->status))
        x->received += n;
    return size * nmemb;
}

static size_t
on_read (char *dest, size_t size, size_t nmemb, void *p)
{
    struct xfer *x = p;
    size_t want = size * nmemb;
    if (x->body != NULL) {
        size_t left = x->bodylen - (size_t) x->in_off;
        if (want > left)
            want = left;
        memcpy (dest, x->body + x->in_off, want);
        x->in_off += want;
        return want;
    }
    if (x->in_off >= x->in_size)
        return 0;
    if (want > x->in_size - x->in_off)
        want = (size_t) (x->in_size - x->in_off);
    ssize_t r;
    do
        r = pread (x->in_fd, dest, want, (off_t) x->in_off);
    while (r < 0 && errno == EINTR);
    if (r <= 0) {
        x->write_errno = r < 0 ? errno : EIO;
        return CURL_READFUNC_ABORT;
    }
    x->in_off += (uint64_t) r;
    return (size_t) r;
}

static int
on_progress (void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    struct xfer *x = p;
    const struct capsa_oci_opts *o = x->c->o;
    if (x->what == NULL || o == NULL || o->progress == NULL)
        return 0;
    if (x->in_fd >= 0)
        o->progress (x->what, (uint64_t) ulnow, (uint64_t) ultotal, o->data);
    else if (ok_status (x->status))
        o->progress (x->what, (uint64_t) dlnow,
                     x->expect_size >= 0 ? (uint64_t) x->expect_size : (uint64_t) (dltotal > 0 ? dltotal : 0), o->data);
    return 0;
}

/* The registry's own explanation from an error body
 * ({"errors":[{"code":"...","message":"..."}]}), printable; or NULL. */
static char *
registry_error (const struct xfer *x)
{
    if (x->buf == NULL || x->len == 0)
        return NULL;
    json_object *o = json_tokener_parse (x->buf), *errs, *e, *v;
    char *msg = NULL;
    if (o && json_object_object_get_ex (o, "errors", &errs) && json_object_is_type (errs, json_type_array)
        && json_object_array_length (errs) > 0 && (e = json_object_array_get_idx (errs, 0)) != NULL
        && json_object_is_type (e, json_type_object)) {
        const char *code = json_object_object_get_ex (e, "code", &v) && json_object_is_type (v, json_type_string)
                               ? json_object_get_string (v)
                               : "";
        const char *m = json_object_object_get_ex (e, "message", &v) && json_object_is_type (v, json_type_string)
                            ? json_object_get_string (v)
                            : "";
        msg = xasprintf ("%.64s%s%.200s", code, *code && *m ? ": " : "", m);
        for (char *p = msg; *p; p++)
            if ((unsigned char) *p < 0x20 || *p == 0x7f)
                *p = '?';
    }
    json_object_put (o);
    return msg;
}

static void
lookup_creds (struct oci_client *c)
{
    if (c->creds_looked_up)
        return;
    c->creds_looked_up = true;
    if (c->o && c->o->username && c->o->password) {
        c->user = xstrdup (c->o->username);
        c->password = xstrdup (c->o->password);
        return;
    }
    bool found = false;
    capsa_error_t ignore = NULL;
    /* A broken credentials file is reported when logging in; here it only
     * means "no credentials". */
    if (capsa_creds_get (c->o ? c->o->authfile : NULL, c->host, &c->user, &c->password, &found, &ignore) < 0
        || !found) {
        free (c->user);
        free (c->password);
        c->user = c->password = NULL;
    }
    capsa_error_free (&ignore);
}

static void
set_authz (struct oci_client *c, char *value)
{
    if (c->authz)
        explicit_bzero (c->authz, strlen (c->authz));
    free (c->authz);
    c->authz = value;
}

static int perform (struct xfer *x, bool allow_auth, capsa_error_t *err);

/* Get a bearer token from the challenge's realm. */
static int
fetch_token (struct oci_client *c, const struct oci_challenge *ch, capsa_error_t *err)
{
    const char *scheme_ok = c->o && c->o->no_https ? "http" : "https";
    if (ch->realm == NULL || *ch->realm == '\0')
        return capsa_error_make (err, 0, "%s: bearer challenge without a realm", c->host);
    if (strncasecmp (ch->realm, "https://", 8) != 0 && !(c->o && c->o->no_https && strncasecmp (ch->realm, "http://", 7) == 0))
        return capsa_error_make (err, 0, "%s: token realm '%.200s' is not an %s URL", c->host, ch->realm, scheme_ok);
    CURL *h = c->curl;
    cleanup_free char *scope = NULL;
    if (ch->scope && *ch->scope)
        scope = xstrdup (ch->scope);
    else
        scope = xasprintf ("repository:%s:%s", c->repo, c->push ? "pull,push" : "pull");
    char *esc_service = ch->service ? curl_easy_escape (h, ch->service, 0) : NULL;
    char *esc_scope = curl_easy_escape (h, scope, 0);
    struct xfer t = { .c = c, .method = "GET", .in_fd = -1, .out_fd = -1, .max = OCI_TOKEN_MAX, .expect_size = -1 };
    /* A login check (no repository) asks for no scope. */
    bool noscope = (ch->scope == NULL || *ch->scope == '\0') && *c->repo == '\0';
    t.url = xasprintf ("%s%sservice=%s%s%s", ch->realm, strchr (ch->realm, '?') ? "&" : "?",
                       esc_service ? esc_service : "", noscope ? "" : "&scope=", noscope || !esc_scope ? "" : esc_scope);
    curl_free (esc_service);
    curl_free (esc_scope);
    lookup_creds (c);
    if (c->user && c->password) {
        cleanup_free char *plain = xasprintf ("%s:%s", c->user, c->password);
        cleanup_free char *b64 = oci_base64_encode (plain, strlen (plain));
        set_authz (c, xasprintf ("Basic %s", b64));
        explicit_bzero (plain, strlen (plain));
        explicit_bzero (b64, strlen (b64));
        t.send_auth = true;
    }
    int r = perform (&t, false, err);
    set_authz (c, NULL);
    if (r < 0) {
        xfer_free (&t);
        return capsa_error_wrap (err, "%s: cannot get an access token", c->host);
    }
    if (t.status == 401 || t.status == 403) {
        xfer_free (&t);
        if (c->user)
            return capsa_error_make (err, EACCES, "%s: authentication failed for user '%s' (wrong credentials?)",
                                     c->host, c->user);
        return capsa_error_make (err, EACCES, "%s: access denied (run 'capsa registry login %s' first?)", c->host,
                                 c->host);
    }
    if (!ok_status (t.status)) {
        long st = t.status;
        xfer_free (&t);
        return capsa_error_make (err, 0, "%s: the token server answered HTTP %ld", c->host, st);
    }
    json_object *o = t.buf ? json_tokener_parse (t.buf) : NULL, *v;
    const char *tok = NULL;
    if (o && json_object_is_type (o, json_type_object)) {
        if (json_object_object_get_ex (o, "token", &v) && json_object_is_type (v, json_type_string))
            tok = json_object_get_string (v);
        else if (json_object_object_get_ex (o, "access_token", &v) && json_object_is_type (v, json_type_string))
            tok = json_object_get_string (v);
    }
    bool ok = tok && *tok && strlen (tok) < 16384 && strpbrk (tok, "\r\n") == NULL;
    if (ok)
        set_authz (c, xasprintf ("Bearer %s", tok));
    json_object_put (o);
    if (t.buf)
        explicit_bzero (t.buf, t.len);
    xfer_free (&t);
    if (!ok)
        return capsa_error_make (err, 0, "%s: the token server sent no usable token", c->host);
    return 0;
}

static int
authenticate (struct oci_client *c, const struct xfer *x, capsa_error_t *err)
{
    struct oci_challenge ch;
    if (oci_challenge_parse (x->www_auth, &ch, err) < 0)
        return capsa_error_wrap (err, "%s answered 401", c->host);
    int r;
    if (strcmp (ch.scheme, "basic") == 0) {
        lookup_creds (c);
        if (c->user == NULL || c->password == NULL) {
            r = capsa_error_make (err, EACCES, "%s requires authentication: run 'capsa registry login %s'", c->host,
                                  c->host);
        } else {
            cleanup_free char *plain = xasprintf ("%s:%s", c->user, c->password);
            cleanup_free char *b64 = oci_base64_encode (plain, strlen (plain));
            set_authz (c, xasprintf ("Basic %s", b64));
            explicit_bzero (plain, strlen (plain));
            explicit_bzero (b64, strlen (b64));
            r = 0;
        }
    } else if (strcmp (ch.scheme, "bearer") == 0) {
        r = fetch_token (c, &ch, err);
    } else {
        r = capsa_error_make (err, 0, "%s asks for unsupported authentication '%.40s'", c->host, ch.scheme);
    }
    oci_challenge_free (&ch);
    return r;
}

/* Whether URL is on our registry (so our Authorization may go there). */
static bool
same_origin (const struct oci_client *c, const char *url)
{
    size_t n = strlen (c->base);
    return strncmp (url, c->base, n) == 0 && (url[n] == '/' || url[n] == '\0' || url[n] == '?');
}

/* Run one request; with allow_auth, answer a 401 once by authenticating
 * and retrying.  Returns 0 whenever an HTTP answer came (x->status says
 * which); -1 on transport errors. */
static int
perform (struct xfer *x, bool allow_auth, capsa_error_t *err)
{
    struct oci_client *c = x->c;
    CURL *h = c->curl;
    for (int attempt = 0;; attempt++) {
        struct curl_slist *hdrs = NULL;
        char errbuf[CURL_ERROR_SIZE] = "";
        cleanup_free char *accept = NULL, *ctype = NULL, *authz = NULL;

        curl_easy_reset (h);
        xfer_reset_response (x);
        x->received = 0;
        x->in_off = 0;
        x->write_errno = 0;
        if (x->out_fd >= 0) {
            oci_hash_free (x->hash);
            x->hash = oci_hash_new ();
            if (ftruncate (x->out_fd, 0) < 0 || lseek (x->out_fd, 0, SEEK_SET) < 0)
                return capsa_error_make (err, errno, "truncate download file");
        }
        const char *protos = c->o && c->o->no_https ? "http,https" : "https";
        oci_curl_common (h, x->url, protos, errbuf);
        curl_easy_setopt (h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt (h, CURLOPT_HEADERDATA, x);
        curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt (h, CURLOPT_WRITEDATA, x);
        curl_easy_setopt (h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt (h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt (h, CURLOPT_XFERINFODATA, x);
        if (strcmp (x->method, "HEAD") == 0) {
            curl_easy_setopt (h, CURLOPT_NOBODY, 1L);
        } else if (strcmp (x->method, "POST") == 0) {
            curl_easy_setopt (h, CURLOPT_POST, 1L);
            curl_easy_setopt (h, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt (h, CURLOPT_POSTFIELDSIZE, 0L);
        } else if (strcmp (x->method, "PUT") == 0) {
            curl_easy_setopt (h, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt (h, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt (h, CURLOPT_READDATA, x);
            curl_easy_setopt (h, CURLOPT_INFILESIZE_LARGE,
                              (curl_off_t) (x->body ? (uint64_t) x->bodylen : x->in_size));
        }
        hdrs = curl_slist_append (hdrs, "Expect:");
        if (x->accept) {
            accept = xasprintf ("Accept: %s", x->accept);
            hdrs = curl_slist_append (hdrs, accept);
        }
        if (x->content_type) {
            ctype = xasprintf ("Content-Type: %s", x->content_type);
            hdrs = curl_slist_append (hdrs, ctype);
        }
        if (c->authz && x->send_auth) {
            authz = xasprintf ("Authorization: %s", c->authz);
            hdrs = curl_slist_append (hdrs, authz);
        }
        curl_easy_setopt (h, CURLOPT_HTTPHEADER, hdrs);
        CURLcode rc = curl_easy_perform (h);
        curl_slist_free_all (hdrs);
        if (authz)
            explicit_bzero (authz, strlen (authz));
        curl_easy_getinfo (h, CURLINFO_RESPONSE_CODE, &x->status);
        if (rc != CURLE_OK) {
            if (x->too_big)
                return capsa_error_make (err, EFBIG, "%s: the answer to %s is larger than expected", c->host, x->url);
            if (x->write_errno)
                return capsa_error_make (err, x->write_errno, "%s: writing the download", c->host);
            c->unreachable = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST
                             || rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_OPERATION_TIMEDOUT;
            return capsa_error_make (err, 0, "cannot reach %s: %s", c->host, *errbuf ? errbuf : curl_easy_strerror (rc));
        }
        if (x->status == 401 && allow_auth && attempt == 0 && x->www_auth != NULL) {
            if (authenticate (c, x, err) < 0)
                return -1;
            x->send_auth = true;
            continue;
        }
        return 0;
    }
}

/* An error for an unexpected answer. */
static int
http_error (struct xfer *x, const char *doing, capsa_error_t *err)
{
    cleanup_free char *why = registry_error (x);
    struct oci_client *c = x->c;
    if (x->status == 401 || x->status == 403) {
        lookup_creds (c);
        if (c->user == NULL)
            return capsa_error_make (err, EACCES, "%s: %s: access denied (HTTP %ld%s%s); run 'capsa registry login %s'?",
                                     c->host, doing, x->status, why ? ": " : "", why ? why : "", c->host);
        return capsa_error_make (err, EACCES, "%s: %s: access denied for user '%s' (HTTP %ld%s%s)", c->host, doing,
                                 c->user, x->status, why ? ": " : "", why ? why : "");
    }
    if (x->status == 404)
        return capsa_error_make (err, ENOENT, "%s: %s: not found%s%s", c->host, doing, why ? " (" : "",
                                 why ? why : "");
    return capsa_error_make (err, 0, "%s: %s: HTTP %ld%s%s", c->host, doing, x->status, why ? ": " : "",
                             why ? why : "");
}

static void
xfer_init (struct xfer *x, struct oci_client *c, const char *method, char *url)
{
    memset (x, 0, sizeof (*x));
    x->c = c;
    x->method = method;
    x->url = url;
    x->in_fd = -1;
    x->out_fd = -1;
    x->expect_size = -1;
    x->send_auth = same_origin (c, url);
}

int
oci_client_new (const struct capsa_oci_ref *ref, const struct capsa_oci_opts *o, bool push, struct oci_client **out,
                capsa_error_t *err)
{
    static bool inited;
    if (!inited) {
        if (curl_global_init (CURL_GLOBAL_DEFAULT) != 0)
            return capsa_error_make (err, 0, "cannot initialise libcurl");
        inited = true;
    }
    struct oci_client *c = xcalloc (1, sizeof (*c));
    c->curl = curl_easy_init ();
    if (c->curl == NULL) {
        free (c);
        return capsa_error_make (err, ENOMEM, "cannot initialise libcurl");
    }
    c->host = xstrdup (ref->registry);
    const char *api = strcmp (ref->registry, "docker.io") == 0 ? "registry-1.docker.io" : ref->registry;
    c->base = xasprintf ("%s://%s", o && o->no_https ? "http" : "https", api);
    c->repo = xstrdup (ref->repository);
    c->push = push;
    c->o = o;
    *out = c;
    return 0;
}

void
oci_client_free (struct oci_client *c)
{
    if (c == NULL)
        return;
    curl_easy_cleanup (c->curl);
    set_authz (c, NULL);
    if (c->password)
        explicit_bzero (c->password, strlen (c->password));
    free (c->password);
    free (c->user);
    free (c->host);
    free (c->base);
    free (c->repo);
    free (c);
}

bool
oci_client_unreachable (const struct oci_client *c)
{
    return c->unreachable;
}

int
oci_ping (struct oci_client *c, capsa_error_t *err)
{
    struct xfer x;
    xfer_init (&x, c, "GET", xasprintf ("%s/v2/", c->base));
    x.max = 1 << 20;
    int r = perform (&x, true, err);
    if (r == 0 && !ok_status (x.status))
        r = http_error (&x, "login check", err);
    xfer_free (&x);
    return r;
}

int
oci_get_manifest (struct oci_client *c, const char *reference, struct oci_manifest *out, char **raw, size_t *rawlen,
                  char **digest, capsa_error_t *err)
{
    struct xfer x;
    char dg[OCI_DIGEST_LEN + 1];
    cleanup_free char *doing = xasprintf ("manifest of %s:%s", c->repo, reference);
    xfer_init (&x, c, "GET", xasprintf ("%s/v2/%s/manifests/%s", c->base, c->repo, reference));
    x.accept = OCI_MT_MANIFEST ", " OCI_MT_INDEX ", " DOCKER_MT_MANIFEST ", " DOCKER_MT_LIST;
    x.max = OCI_MANIFEST_MAX;
    int r = perform (&x, true, err);
    if (r < 0)
        goto out;
    if (!ok_status (x.status)) {
        r = http_error (&x, doing, err);
        goto out;
    }
    oci_digest_buf (x.buf ? x.buf : "", x.len, dg);
    if (strncmp (reference, "sha256:", 7) == 0 && strcmp (dg, reference) != 0) {
        r = capsa_error_make (err, EBADMSG, "%s: the manifest received for %s has digest %s: refusing it", c->host,
                              reference, dg);
        goto out;
    }
    r = oci_manifest_parse (x.buf ? x.buf : "", x.len, x.content_type_resp, out, err);
    if (r < 0) {
        capsa_error_wrap (err, "%s: %s", c->host, doing);
        goto out;
    }
    if (digest)
        *digest = xstrdup (dg);
    if (raw) {
        *raw = x.buf ? steal_ptr (&x.buf) : xstrdup ("");
        if (rawlen)
            *rawlen = x.len;
    }
out:
    xfer_free (&x);
    return r;
}

int
oci_get_blob_fd (struct oci_client *c, const struct oci_descriptor *d, int fd, capsa_error_t *err)
{
    struct xfer x;
    char dg[OCI_DIGEST_LEN + 1];
    cleanup_free char *doing = xasprintf ("blob %s", d->digest);
    cleanup_free char *what = xasprintf ("%s %.19s", d->title ? d->title : "blob", oci_digest_hex (d->digest));
    if (oci_digest_check (d->digest, err) < 0)
        return -1;
    xfer_init (&x, c, "GET", xasprintf ("%s/v2/%s/blobs/%s", c->base, c->repo, d->digest));
    x.out_fd = fd;
    x.expect_size = d->size;
    x.what = what;
    int r = perform (&x, true, err);
    if (r < 0)
        goto out;
    if (!ok_status (x.status)) {
        r = http_error (&x, doing, err);
        goto out;
    }
    oci_hash_final (x.hash, dg);
    x.hash = NULL;
    if (d->size >= 0 && x.received != (uint64_t) d->size) {
        r = capsa_error_make (err, EBADMSG, "%s: blob %s: received %llu bytes, expected %lld", c->host, d->digest,
                              (unsigned long long) x.received, (long long) d->size);
        goto out;
    }
    if (strcmp (dg, d->digest) != 0) {
        r = capsa_error_make (err, EBADMSG, "%s: blob %s does not match its digest (the data has %s): refusing it",
                              c->host, d->digest, dg);
        goto out;
    }
    if (c->o && c->o->progress)
        c->o->progress (what, x.received, x.received, c->o->data);
out:
    xfer_free (&x);
    return r;
}

int
oci_get_blob_mem (struct oci_client *c, const struct oci_descriptor *d, size_t max, char **out, size_t *len,
                  capsa_error_t *err)
{
    struct xfer x;
    char dg[OCI_DIGEST_LEN + 1];
    cleanup_free char *doing = xasprintf ("blob %s", d->digest);
    if (oci_digest_check (d->digest, err) < 0)
        return -1;
    if (d->size > (int64_t) max)
        return capsa_error_make (err, EFBIG, "%s: blob %s is too large (%lld bytes, at most %zu)", c->host, d->digest,
                                 (long long) d->size, max);
    xfer_init (&x, c, "GET", xasprintf ("%s/v2/%s/blobs/%s", c->base, c->repo, d->digest));
    x.max = max;
    int r = perform (&x, true, err);
    if (r < 0)
        goto out;
    if (!ok_status (x.status)) {
        r = http_error (&x, doing, err);
        goto out;
    }
    oci_digest_buf (x.buf ? x.buf : "", x.len, dg);
    if (strcmp (dg, d->digest) != 0 || (d->size >= 0 && x.len != (size_t) d->size)) {
        r = capsa_error_make (err, EBADMSG, "%s: blob %s does not match its digest or size: refusing it", c->host,
                              d->digest);
        goto out;
    }
    *out = x.buf ? steal_ptr (&x.buf) : xstrdup ("");
    *len = x.len;
out:
    xfer_free (&x);
    return r;
}

int
oci_blob_exists (struct oci_client *c, const char *digest, bool *exists, capsa_error_t *err)
{
    struct xfer x;
    xfer_init (&x, c, "HEAD", xasprintf ("%s/v2/%s/blobs/%s", c->base, c->repo, digest));
    int r = perform (&x, true, err);
    if (r == 0) {
        *exists = ok_status (x.status);
        if (!*exists && x.status != 404)
            r = http_error (&x, "blob check", err);
    }
    xfer_free (&x);
    return r;
}

/* Start an upload session; *url receives where to PUT the data. */
static int
start_upload (struct oci_client *c, char **url, capsa_error_t *err)
{
    struct xfer x;
    xfer_init (&x, c, "POST", xasprintf ("%s/v2/%s/blobs/uploads/", c->base, c->repo));
    x.max = 1 << 16;
    int r = perform (&x, true, err);
    if (r == 0 && x.status != 202)
        r = http_error (&x, "start of an upload", err);
    else if (r == 0 && (x.location == NULL || *x.location == '\0'))
        r = capsa_error_make (err, 0, "%s: the upload answer has no Location", c->host);
    else if (r == 0) {
        if (x.location[0] == '/')
            *url = xasprintf ("%s%s", c->base, x.location);
        else if (strncasecmp (x.location, "http://", 7) == 0 || strncasecmp (x.location, "https://", 8) == 0)
            *url = xstrdup (x.location);
        else
            r = capsa_error_make (err, 0, "%s: unusable upload location '%.200s'", c->host, x.location);
    }
    xfer_free (&x);
    return r;
}

static int
put_blob (struct oci_client *c, int fd, const void *buf, uint64_t size, const char *digest, const char *what,
          capsa_error_t *err)
{
    cleanup_free char *loc = NULL;
    struct xfer x;
    if (start_upload (c, &loc, err) < 0)
        return -1;
    xfer_init (&x, c, "PUT", xasprintf ("%s%sdigest=%s", loc, strchr (loc, '?') ? "&" : "?", digest));
    x.content_type = "application/octet-stream";
    x.max = 1 << 16;
    if (buf != NULL) {
        x.body = buf;
        x.bodylen = (size_t) size;
    } else {
        x.in_fd = fd;
        x.in_size = size;
        x.what = what;
    }
    int r = perform (&x, false, err);
    if (r == 0 && x.status != 201)
        r = http_error (&x, "blob upload", err);
    xfer_free (&x);
    return r;
}

int
oci_put_blob_fd (struct oci_client *c, int fd, uint64_t size, const char *digest, const char *what, capsa_error_t *err)
{
    return put_blob (c, fd, NULL, size, digest, what, err);
}

int
oci_put_blob_mem (struct oci_client *c, const void *buf, size_t len, const char *digest, capsa_error_t *err)
{
    return put_blob (c, -1, buf, len, digest, NULL, err);
}

int
oci_put_manifest (struct oci_client *c, const char *reference, const char *body, size_t len, const char *media_type,
                  capsa_error_t *err)
{
    struct xfer x;
    xfer_init (&x, c, "PUT", xasprintf ("%s/v2/%s/manifests/%s", c->base, c->repo, reference));
    x.content_type = media_type;
    x.body = body;
    x.bodylen = len;
    x.max = 1 << 16;
    int r = perform (&x, true, err);
    if (r == 0 && x.status != 201)
        r = http_error (&x, "manifest upload", err);
    xfer_free (&x);
    return r;
}

int
capsa_registry_check_login (const char *host, const char *user, const char *password,
                            const struct capsa_oci_opts *o, capsa_error_t *err)
{
    struct capsa_oci_opts copy = { 0 };
    struct capsa_oci_ref ref = { .registry = (char *) host, .repository = (char *) "" };
    struct oci_client *c = NULL;
    if (o)
        copy = *o;
    copy.username = user;
    copy.password = password;
    if (oci_client_new (&ref, &copy, false, &c, err) < 0)
        return -1;
    int r = oci_ping (c, err);
    oci_client_free (c);
    return r;
}

void
oci_notify (const struct capsa_oci_opts *o, enum capsa_oci_notice level, const char *fmt, ...)
{
    va_list ap;
    char *msg = NULL;
    if (o == NULL || o->notice == NULL)
        return;
    va_start (ap, fmt);
    if (vasprintf (&msg, fmt, ap) >= 0) {
        o->notice (level, msg, o->data);
        free (msg);
    }
    va_end (ap);
}
