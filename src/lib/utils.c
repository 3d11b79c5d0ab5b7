#include "utils.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

static void
oom (void)
{
    static const char msg[] = "FATAL:   out of memory\n";
    (void) !write (STDERR_FILENO, msg, sizeof (msg) - 1);
    abort ();
}

void *
xmalloc (size_t n)
{
    void *p = malloc (n ? n : 1);
    if (p == NULL)
        oom ();
    return p;
}

void *
xcalloc (size_t n, size_t m)
{
    void *p = calloc (n ? n : 1, m ? m : 1);
    if (p == NULL)
        oom ();
    return p;
}

void *
xrealloc (void *p, size_t n)
{
    p = realloc (p, n ? n : 1);
    if (p == NULL)
        oom ();
    return p;
}

char *
xstrdup (const char *s)
{
    char *r = strdup (s);
    if (r == NULL)
        oom ();
    return r;
}

char *
xasprintf (const char *fmt, ...)
{
    va_list ap;
    char *s;
    int r;
    va_start (ap, fmt);
    r = vasprintf (&s, fmt, ap);
    va_end (ap);
    if (r < 0)
        oom ();
    return s;
}

ssize_t
read_all (int fd, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = read (fd, (char *) buf + done, len - done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) {
            errno = EIO;
            return -1;
        }
        done += (size_t) r;
    }
    return (ssize_t) done;
}

ssize_t
pread_all (int fd, void *buf, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread (fd, (char *) buf + done, len - done, off + (off_t) done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) {
            errno = EIO;
            return -1;
        }
        done += (size_t) r;
    }
    return (ssize_t) done;
}

ssize_t
pwrite_all (int fd, const void *buf, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pwrite (fd, (const char *) buf + done, len - done, off + (off_t) done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) {
            errno = EIO;
            return -1;
        }
        done += (size_t) r;
    }
    return (ssize_t) done;
}

int
capsa_random_bytes (void *buf, size_t len, capsa_error_t *err)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = getrandom ((char *) buf + done, len - done, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return capsa_error_make (err, errno, "cannot get random bytes");
        }
        done += (size_t) r;
    }
    return 0;
}

ssize_t
write_all (int fd, const void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = write (fd, (const char *) buf + done, len - done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        done += (size_t) r;
    }
    return (ssize_t) done;
}

int
read_fd_all (int fd, size_t max, char **out, size_t *outlen, capsa_error_t *err)
{
    size_t cap = 4096, len = 0;
    char *buf = xmalloc (cap + 1);

    for (;;) {
        ssize_t r;
        if (len == cap) {
            if (cap >= max) {
                free (buf);
                return capsa_error_make (err, EFBIG, "file larger than %zu bytes", max);
            }
            cap = cap * 2 > max ? max : cap * 2;
            buf = xrealloc (buf, cap + 1);
        }
        r = read (fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            free (buf);
            return capsa_error_make (err, errno, "read");
        }
        if (r == 0)
            break;
        len += (size_t) r;
    }
    buf[len] = '\0';
    *out = buf;
    if (outlen)
        *outlen = len;
    return 0;
}

int
write_file (const char *path, const char *content, capsa_error_t *err)
{
    cleanup_close int fd = open (path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return capsa_error_make (err, errno, "open %s", path);
    if (write_all (fd, content, strlen (content)) < 0)
        return capsa_error_make (err, errno, "write %s", path);
    return 0;
}

void
strv_push_take (struct strv *s, char *str)
{
    if (s->n + 2 > s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->v = xrealloc (s->v, s->cap * sizeof (char *));
    }
    s->v[s->n++] = str;
    s->v[s->n] = NULL;
}

void
strv_push (struct strv *s, const char *str)
{
    strv_push_take (s, xstrdup (str));
}

void
strv_free (struct strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        free (s->v[i]);
    free (s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

int
parse_long (const char *s, long min, long max, long *out)
{
    char *end;
    long v;
    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtol (s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

void
str_append (char **buf, size_t *len, const char *s)
{
    size_t n = strlen (s);
    *buf = xrealloc (*buf, *len + n + 1);
    memcpy (*buf + *len, s, n + 1);
    *len += n;
}

void
str_append_shell_quoted (char **buf, size_t *len, const char *s)
{
    str_append (buf, len, "'");
    for (const char *p = s; *p; p++) {
        char ch[2] = { *p, 0 };
        str_append (buf, len, *p == '\'' ? "'\\''" : ch);
    }
    str_append (buf, len, "'");
}

void
format_size (uint64_t n, char *buf, size_t len)
{
    if (n >= (1ull << 30))
        snprintf (buf, len, "%.1f GiB", (double) n / (double) (1ull << 30));
    else if (n >= (1u << 20))
        snprintf (buf, len, "%.1f MiB", (double) n / (double) (1u << 20));
    else if (n >= 1024)
        snprintf (buf, len, "%.1f KiB", (double) n / 1024.0);
    else
        snprintf (buf, len, "%llu B", (unsigned long long) n);
}

bool
path_is_within (const char *path, const char *dir)
{
    size_t n = strlen (dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (n == 1 && dir[0] == '/')
        return true;
    return strncmp (path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

char *
trim (char *s)
{
    char *e;
    while (isspace ((unsigned char) *s))
        s++;
    e = s + strlen (s);
    while (e > s && isspace ((unsigned char) e[-1]))
        *--e = '\0';
    return s;
}

int
split_list (const char *s, char sep, int (*cb) (const char *item, void *data, capsa_error_t *err),
            void *data, capsa_error_t *err)
{
    cleanup_free char *copy = xstrdup (s);
    char *p = copy;
    for (;;) {
        char *next = strchr (p, sep);
        char *item;
        if (next)
            *next = '\0';
        item = trim (p);
        if (*item != '\0' && cb (item, data, err) < 0)
            return -1;
        if (next == NULL)
            break;
        p = next + 1;
    }
    return 0;
}

int
write_file_atomic (const char *path, const char *text, uid_t uid, gid_t gid, mode_t mode, capsa_error_t *err)
{
    cleanup_free char *dir = xstrdup (path);
    char *slash = strrchr (dir, '/');
    const char *base = slash ? slash + 1 : path;
    if (slash)
        *slash = '\0';
    cleanup_free char *tmp = xasprintf ("%s/.%s.capsa-XXXXXX", slash ? (dir[0] ? dir : "/") : ".", base);
    cleanup_close int fd = mkostemp (tmp, O_CLOEXEC);
    if (fd < 0)
        return capsa_error_make (err, errno, "cannot create a temporary file beside %s", path);
    if (fchown (fd, uid, gid) < 0 || fchmod (fd, mode & 07777) < 0 || write_all (fd, text, strlen (text)) < 0
        || fsync (fd) < 0) {
        int e = errno;
        unlink (tmp);
        return capsa_error_make (err, e, "cannot write %s", tmp);
    }
    if (rename (tmp, path) < 0) {
        int e = errno;
        unlink (tmp);
        return capsa_error_make (err, e, "cannot replace %s", path);
    }
    cleanup_close int dfd = open (slash ? (dir[0] ? dir : "/") : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0)
        fsync (dfd);
    return 0;
}

/* Undo the octal escapes (\040 for a space...) of a mountinfo field, in
 * place. */
void
mountinfo_unescape (char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
            *o++ = (char) ((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 3;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}
